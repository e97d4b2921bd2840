"""Shard sessions (src/sessions.c; docs/scaling.md, "A shard session's life"):
cordond instances with [cluster] shards = 8 on one Mosquitto and one
PostgreSQL, each receiving through one persistent MQTT session per shard it
owns (client id <session_prefix><shard>), subscribed to its shard's sites.

- two instances, 40 registered sites, events for every site: each event once
  in PostgreSQL, each instance received only its shards' messages (its
  per-shard metrics against the sites of each shard), each fever alert
  published once, and Mosquitto saw every shard's client id connect;
- SIGTERM one while events stream in: the other takes its shards through the
  sessions it gave back (graceful release), and nothing published meanwhile
  is lost (counted in PostgreSQL), each alert once.

With discovery off, as here, only registered sites are heard; discovery
(the default) is test_cluster_discovery.py's."""

import json
import os
import signal
import threading

import harness
from harness import Collector, free_port, gate_event, metric, publish_many, scrape, wait_until

SHARDS = 8
LEASE = "3s"
LONG = 60


def start(cordond, env, name, prefix):
    """A clustered cordond named `name` (its own spool directory and metrics
    port), its shard sessions named prefix000.."""
    port = free_port()
    d = cordond({"mqtt": {"client_id": name},
                 "spool": {"dir": os.path.join(env.dir, "spool-" + name)},
                 "metrics": {"listen": "127.0.0.1:%d" % port},
                 # discovery off: each shard's session subscribes to its
                 # registered sites only, what these tests count (with it,
                 # shard 0's takes every site: test_cluster_discovery.py)
                 "cluster": {"shards": str(SHARDS), "lease_time": LEASE,
                             "session_prefix": prefix, "discovery": "no"}},
                wait=False)   # its own client subscribes to nothing
    d.metrics_port = port
    return d


def leases(ctl):
    """cordonctl cluster --json's leases: {shard: {"owner", "epoch", "sites"}}."""
    out = json.loads(ctl("cluster", "--json").stdout)
    return {x["shard"]: x for x in out["leases"]}


def settled(env, ds):
    """Every shard owned once over `ds`, each instance at its fair share (the
    first one up takes every shard, then gives the others theirs), each owned
    shard's session connected and subscribed (no SUBACK pending), every
    registered site subscribed."""
    nsites = env.pg.count("sites")
    owned = sessions = up = sites = 0
    for d in ds:
        assert d.alive(), "%s exited:\n%s" % (d.client_id, harness.tail(d.logfile))
        text = scrape(d.metrics_port)
        if not text:
            return False
        mine = metric(text, "cordon_cluster_shards_owned") or 0
        if not SHARDS // len(ds) <= mine <= -(-SHARDS // len(ds)):
            return False
        owned += mine
        sessions += metric(text, "cordon_cluster_sessions") or 0
        up += metric(text, 'cordon_cluster_sessions{state="connected"}') or 0
        sites += metric(text, "cordon_cluster_sites_subscribed") or 0
        if metric(text, 'cordon_mqtt_subscriptions{state="pending"}'):
            return False
    return owned == SHARDS and sessions == SHARDS and up == SHARDS and sites == nsites


class Health(threading.Thread):
    """Polls d's /healthz every 50 ms until close(); keeps what was not 200."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.url = "http://127.0.0.1:%d/healthz" % d.metrics_port
        self.polls = 0
        self.bad = []
        self.stop = threading.Event()
        self.start()

    def run(self):
        while not self.stop.wait(0.05):
            try:
                code, text = harness.http_get(self.url)
            except OSError as e:
                code, text = None, repr(e)
            self.polls += 1
            if code != 200:
                self.bad.append((code, text))

    def close(self):
        self.stop.set()
        self.join()


def register(ctl, sites):
    for s in sites:
        ctl("site", "add", s)


class Alerts:
    """Every fever transition published under cordon/<tag>-*/alert/fever."""

    def __init__(self, port):
        self.col = Collector(port, "cordon/+/alert/fever")

    def raised(self):
        return [json.loads(p) for _, p in self.col.snapshot()
                if json.loads(p)["transition"] == "raised"]

    def close(self):
        self.col.close()


def test_two_instances_share_the_sites(env, cordond, ctl):
    prefix = "cs1-shard-"
    sites = ["cs1-%02d" % i for i in range(40)]
    register(ctl, sites)
    al = Alerts(env.broker.port)
    try:
        since = env.broker.log_size()
        a = start(cordond, env, "cs1-a", prefix)
        b = start(cordond, env, "cs1-b", prefix)
        wait_until(lambda: settled(env, [a, b]), LONG,
                   what=lambda: "8 shards owned over cs1-a and cs1-b, every session subscribed")
        # Mosquitto saw each shard's client id connect and subscribe; the
        # instances' own clients connected and subscribed to nothing.
        for k in range(SHARDS):
            assert env.broker.subscribed("%s%03d" % (prefix, k), since), k
        log = env.broker.log()
        assert not any(env.broker.subscribed(x, since) for x in ("cs1-a", "cs1-b")), log[-3000:]
        assert "cordon/cs1-00/gate/+/event" in log and "cordon/+/gate/+/event" not in log[since:]
        owner = {k: x["owner"] for k, x in leases(ctl).items()}
        assert sorted(owner.values()) == ["cs1-a"] * 4 + ["cs1-b"] * 4, owner

        # 5 readings a site, one of them a fever of a person of its own.
        msgs = []
        for i, s in enumerate(sites):
            for n in range(5):
                msgs.append(gate_event(s, "G%02d" % (n % 2 + 1), "E-%d" % n,
                                       person="P-%d-%d" % (i, n),
                                       temp_c=38.0 if n == 2 else 36.5))
        publish_many(env.broker.port, msgs)
        wait_until(lambda: env.pg.count("gate_events", "site LIKE 'cs1-%%'") == len(msgs), LONG,
                   what=lambda: "%d events in PostgreSQL (have %d)" % (
                       len(msgs), env.pg.count("gate_events", "site LIKE 'cs1-%%'")))
        assert env.pg.scalar("SELECT count(DISTINCT event_key) FROM gate_events"
                             " WHERE site LIKE 'cs1-%%'") == len(msgs)
        wait_until(lambda: len(al.raised()) >= len(sites), LONG,
                   what=lambda: "40 fever alerts (have %d)" % len(al.raised()))

        # Each instance received exactly its shards' messages: 5 per site of
        # each shard it owns, none of the others' (the metrics are rendered
        # every 2 s: waited for).
        per_shard = {k: x["sites"] for k, x in leases(ctl).items()}
        assert sum(per_shard.values()) == len(sites)
        for d in (a, b):
            mine = [k for k in range(SHARDS) if owner[k] == d.client_id]
            want = {'cordon_cluster_shard_messages_received_total{shard="%d"}' % k:
                    5 * per_shard[k] if k in mine else 0 for k in range(SHARDS)}
            want["cordon_messages_received_total"] = 5 * sum(per_shard[k] for k in mine)
            want["cordon_cluster_sites_subscribed"] = sum(per_shard[k] for k in mine)
            want['cordon_mqtt_subscriptions{state="granted"}'] = \
                9 * sum(per_shard[k] for k in mine)

            def seen(d=d):
                text = scrape(d.metrics_port)
                return {name: metric(text, name) for name in want}
            wait_until(lambda: seen() == want, LONG,
                       what=lambda: "%s's metrics %r (want %r)" % (d.client_id, seen(), want))
        # A site registered while they run: its shard's session subscribes to
        # it (the register's NOTIFY, then a SUBSCRIBE of its 9 filters).
        register(ctl, ["cs1-40"])
        wait_until(lambda: settled(env, [a, b]), LONG, what="cs1-40 subscribed")
        publish_many(env.broker.port, [gate_event("cs1-40", "G01", "N-1")])
        wait_until(lambda: env.pg.count("gate_events", "site = 'cs1-40'") == 1, LONG,
                   what="cs1-40's event in PostgreSQL")

        # Both stopped: every alert they were to publish is out.
        for d in (a, b):
            assert d.stop() == 0, harness.tail(d.logfile)
        raised = al.raised()
    finally:
        al.close()
    ids = [x["alert_id"] for x in raised]
    assert len(ids) == len(sites) and len(set(ids)) == len(sites), sorted(ids)
    assert sorted(x["site"] for x in raised) == sites
    assert env.pg.scalar("SELECT count(*) FROM alerts WHERE site LIKE 'cs1-%%'"
                         " AND kind = 'fever'") == len(sites)


def test_sigterm_hands_the_shards_over(env, cordond, ctl):
    prefix = "cs2-shard-"
    sites = ["cs2-%02d" % i for i in range(40)]
    register(ctl, sites)
    al = Alerts(env.broker.port)
    try:
        hand_over(env, cordond, ctl, prefix, sites, al)
    finally:
        al.close()


def hand_over(env, cordond, ctl, prefix, sites, al):
    a = start(cordond, env, "cs2-a", prefix)
    b = start(cordond, env, "cs2-b", prefix)
    wait_until(lambda: settled(env, [a, b]), LONG,
               what="8 shards owned over cs2-a and cs2-b, every session subscribed")
    b_shards = sorted(k for k, x in leases(ctl).items() if x["owner"] == "cs2-b")
    assert len(b_shards) == 4

    # 40 sites × 100 readings, every 10th a fever of its own person, at
    # 400/s: the stream runs before, during and after the hand-over.
    msgs = []
    for n in range(100):
        for i, s in enumerate(sites):
            msgs.append(gate_event(s, "G01", "H-%03d" % n, person="P-%d-%d" % (i, n),
                                   temp_c=38.0 if n % 10 == 0 else 36.5))
    stream = harness.Stream(env.broker.port, msgs, "cs2-stream", rate=400).start()
    health = Health(a)
    try:
        wait_until(lambda: stream.acked >= len(msgs) // 4, LONG, what=stream.progress)
        # b's leases at its SIGTERM (under load b may have been first up and
        # given shards back to a before: the history has those too)
        held = env.pg.query("SELECT shard, epoch FROM lease_history WHERE owner = 'cs2-b'"
                            " AND ended_at IS NULL ORDER BY shard")
        assert [k for k, _ in held] == b_shards, held
        b.send_signal(signal.SIGTERM)
        assert b.wait(LONG) == 0, harness.tail(b.logfile)
        # b gave every shard back after its rules passed what its sessions took
        # (lease history 'released'); a took them.
        hist = env.pg.query("SELECT shard, epoch, how FROM lease_history WHERE owner = 'cs2-b'")
        assert sorted((k, e) for k, e, how in hist if (k, e) in set(held)) == held and \
            all(how == "released" for k, e, how in hist if (k, e) in set(held)), hist
        wait_until(lambda: settled(env, [a]), LONG,
                   what="cs2-a owns every shard, every session subscribed")
        stream.wait(LONG)
    finally:
        stream.close()
        health.close()
    # a's /healthz said nothing but ok all along: b's sessions ending and a's
    # new ones connecting are a hand-over, not a broker down.
    assert health.polls > 10 and health.bad == [], (health.polls, health.bad[:5])
    wait_until(lambda: env.pg.count("gate_events", "site LIKE 'cs2-%%'") == len(msgs), LONG,
               what=lambda: "%d events in PostgreSQL (have %d)" % (
                   len(msgs), env.pg.count("gate_events", "site LIKE 'cs2-%%'")))
    assert env.pg.scalar("SELECT count(DISTINCT event_key) FROM gate_events"
                         " WHERE site LIKE 'cs2-%%'") == len(msgs)
    fevers = len(sites) * 10
    wait_until(lambda: len(al.raised()) >= fevers, LONG,
               what=lambda: "%d fever alerts (have %d)" % (fevers, len(al.raised())))
    assert a.stop() == 0
    raised = al.raised()
    ids = [x["alert_id"] for x in raised]
    assert len(ids) == fevers and len(set(ids)) == fevers
    # Both instances received: b before its stop, a all along and after.
    assert "shard %d: its session ends (the lease is given back)" % b_shards[0] in b.log()
    assert "its records are through the rules and in PostgreSQL: releasing the lease" in b.log()
    print("\nhand-over: b's %d shards; %d events, %d fever alerts, each once"
          % (len(b_shards), len(msgs), fevers))


def test_a_paused_instance_does_not_take_its_sessions_back(env, cordond, ctl):
    """SIGSTOP b past its leases: a takes b's shards, resuming their sessions
    (Mosquitto 2.0.11 closes b's connections without a reason); events
    published meanwhile reach PostgreSQL. SIGCONT b: its sessions are past
    their lease's deadline, so they do not reconnect (which would take the
    sessions back from a: a's would drop), and end once b learns the leases
    are gone. b then rejoins, and the shards are shared again."""
    prefix = "cs3-shard-"
    sites = ["cs3-%02d" % i for i in range(40)]
    register(ctl, sites)
    a = start(cordond, env, "cs3-a", prefix)
    b = start(cordond, env, "cs3-b", prefix)
    wait_until(lambda: settled(env, [a, b]), LONG,
               what="8 shards owned over cs3-a and cs3-b, every session subscribed")
    b_shards = sorted(k for k, x in leases(ctl).items() if x["owner"] == "cs3-b")
    b.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: all(x["owner"] == "cs3-a" for x in leases(ctl).values()), LONG,
                   what="cs3-a holds every lease")
        wait_until(lambda: settled(env, [a]), LONG,
                   what="cs3-a owns every shard, every session subscribed")
        msgs = [gate_event(s, "G01", "P-%d" % n) for n in range(20) for s in sites]
        publish_many(env.broker.port, msgs[:400])
        paused_log = len(b.log())
    finally:
        b.send_signal(signal.SIGCONT)
    # b learns it lost them and ends those sessions, without a reconnect
    # before that.
    for k in b_shards:
        end = "shard %d: its session ends (the lease is not ours)" % k
        wait_until(lambda: end in b.log(), LONG, what="cs3-b ends shard %d's session" % k)
        after = b.log()[paused_log:]
        assert "as %s%03d" % (prefix, k) not in after[:after.index(end)], after
    publish_many(env.broker.port, msgs[400:])
    wait_until(lambda: settled(env, [a, b]), LONG,
               what="the shards shared again over cs3-a and cs3-b")
    wait_until(lambda: env.pg.count("gate_events", "site LIKE 'cs3-%%'") == len(msgs), LONG,
               what=lambda: "%d events in PostgreSQL (have %d)" % (
                   len(msgs), env.pg.count("gate_events", "site LIKE 'cs3-%%'")))
    # a's sessions were never taken from it (shards it gave back to b end
    # as "given back", never as a lost connection).
    assert "MQTT connection lost" not in a.log(), harness.tail(a.logfile)
    assert b.stop() == 0 and a.stop() == 0


def test_a_session_forgets_what_another_owner_held(env, cordond, ctl):
    """A shard session's packet identifier table and replay memory describe
    what this instance saw: kept when the shard comes back to it under the
    next epoch (nobody held it in between), started empty when another
    instance held it since (a redelivery must never be dropped as a replay
    of something seen long ago). a alone, a again, then b, then a: each owns
    every shard in turn."""
    prefix = "cs4-shard-"
    register(ctl, ["cs4-00"])
    fresh = "started empty, with the packet identifiers, for a session another owner held"

    def run(name):
        port = free_port()
        d = cordond({"mqtt": {"client_id": name},
                     "spool": {"dir": os.path.join(env.dir, "spool-" + name)},
                     "metrics": {"listen": "127.0.0.1:%d" % port},
                     "cluster": {"shards": str(SHARDS), "lease_time": LEASE,
                                 "session_prefix": prefix}},
                    wait=False)
        d.metrics_port = port
        wait_until(lambda: metric(scrape(port), 'cordon_cluster_sessions{state="connected"}')
                   == SHARDS, LONG, what="%s's sessions of every shard connected" % name)
        assert d.stop() == 0
        return d.log()

    assert fresh in run("cs4-a")          # the first session of its directory
    assert fresh not in run("cs4-a")      # its next epoch: kept
    assert fresh in run("cs4-b")          # b's first
    assert fresh in run("cs4-a")          # b held it since: forgotten
    hist = env.pg.query("SELECT owner, how FROM lease_history WHERE shard = 0"
                        " AND owner LIKE 'cs4-%%' ORDER BY epoch")
    assert hist == [("cs4-a", "released"), ("cs4-a", "released"), ("cs4-b", "released"),
                    ("cs4-a", "released")], hist


def test_shards_differ_from_the_database(env, cordond, ctl):
    """Every instance must split the sites the same way: one with another
    number of shards than the database's cluster says so and exits 1."""
    d = cordond({"mqtt": {"client_id": "cs5-a"},
                 "spool": {"dir": os.path.join(env.dir, "spool-cs5-a")},
                 "cluster": {"shards": "4", "lease_time": LEASE}}, wait=False)
    assert d.wait(LONG) == 1
    assert "[cluster] shards = 4 but the database's cluster has 8" in d.log(), d.log()
