"""Three cordond instances share 200 sites (issue 19, docs/scaling.md).

One PostgreSQL, 16 shards, a stream of keyed gate events with fevers over
every site; on one Mosquitto, and on a two-node ejabberd cluster (each
instance's [mqtt] uri lists both nodes, in different orders):

- SIGKILL one instance while the stream runs: its shards are owned by the
  others, and a fever at one of its sites is raised by its new owner (the
  time from the SIGKILL is printed; the issue's bound is 15 s, not asserted:
  the tests never time anything);
- the killed instance started again: its spool drains into PostgreSQL; every
  event is stored exactly once; no alert id is raised twice, and every fever
  is raised or counted as acknowledged-but-not-judged by the restarted
  instance (cordon_cluster_events_not_judged_total: docs/scaling.md, the
  machine-loss window);
- (ejabberd) node 1 stopped: every instance's sessions come back on node 2;
  what ejabberd dropped with the node's sessions (docs/scaling.md, "The
  broker") is published again by the gate, and every event is still stored
  exactly once;
- no two instances ever held a shard's lease at once (lease_history)."""

import collections
import json
import os
import re
import time

import pytest
import xxhash

import harness
from harness import (Broker, Collector, Cordond, Postgres, Stream, free_port, make_tmpdir,
                     metric, scrape, wait_until)

SITES = ["cl%03d" % i for i in range(200)]
SHARDS = 16
LEASE = "5s"
LONG = 120


def shard_of(site):
    """cluster_shard_of(): XXH3-64 of the site, modulo the shards."""
    return xxhash.xxh3_64_intdigest(site.encode()) % SHARDS


def is_fever(i):
    return i % 20 == 0


def events(start, n, tag):
    """n keyed gate events over every site; every 20th a fever of a person
    never seen again (one alert each, never resolved by a re-check)."""
    out = []
    for i in range(start, start + n):
        site = SITES[i % len(SITES)]
        fever = is_fever(i)
        out.append(harness.gate_event(
            site, "G1", "%s-%07d" % (tag, i), drop=("card",),
            person=("F-%s-%07d" % (tag, i)) if fever else "P-%05d" % (i % 997),
            temp_c=38.0 if fever else 36.5, ts=harness.now_ts()))
    return out


class Cluster:
    def __init__(self, dir, kind):
        self.dir = dir
        self.kind = kind
        os.mkdir(os.path.join(dir, "pg"))
        self.pg = Postgres(os.path.join(dir, "pg"))
        self.daemons = {}
        if kind == "mosquitto":
            os.mkdir(os.path.join(dir, "broker"))
            self.broker = Broker(os.path.join(dir, "broker"))
            self.ports = [self.broker.port]
        else:
            self.broker = harness.Ejabberd(os.path.join(dir, "ejabberd"))
            self.ports = [n.port for n in self.broker.nodes]

    def start(self):
        self.broker.start()
        self.pg.start()
        self.ctl_conf = harness.cordonctl_config(self.dir, self.pg.conninfo)
        harness.cordonctl(self.ctl_conf, "migrate")
        self.pg.query("INSERT INTO sites (site) SELECT unnest(%s::text[])", (SITES,))
        self.pg.query("SELECT pg_notify('cordon_register', '')")

    def instance(self, name, index):
        wd = os.path.join(self.dir, name)
        os.makedirs(wd, exist_ok=True)
        port = free_port()
        mqtt = {"client_id": name}
        if self.kind == "mosquitto":
            mqtt["uri"] = "tcp://127.0.0.1:%d" % self.broker.port
        else:   # the nodes in another order for each instance
            order = [index % 2, (index + 1) % 2]
            mqtt.update(uri=self.broker.uris(order), username=self.broker.user,
                        password_file=self.broker.password_file)
        d = Cordond(wd, 0, self.pg.conninfo, {
            "mqtt": mqtt, "cluster": {"shards": str(SHARDS), "lease_time": LEASE},
            "metrics": {"listen": "127.0.0.1:%d" % port}})
        d.metrics_port = port
        self.daemons[name] = d
        return d

    def owners(self):
        """{shard: owner} of the leases not expired, on PostgreSQL's clock."""
        return dict(self.pg.query(
            "SELECT shard, owner FROM shard_leases"
            " WHERE owner IS NOT NULL AND expires_at > clock_timestamp()"))

    def settled(self, names):
        """Every shard owned by one of `names`, each at its fair share (the
        first one up takes every shard, then gives the others theirs), each
        instance's sessions all connected and subscribed, every site
        subscribed once."""
        owned = up = sites = 0
        for n in names:
            d = self.daemons[n]
            assert d.alive(), "%s exited:\n%s" % (n, harness.tail(d.logfile))
            text = scrape(d.metrics_port)
            if not text or metric(text, 'cordon_mqtt_subscriptions{state="pending"}'):
                return False
            mine = metric(text, "cordon_cluster_shards_owned") or 0
            if not SHARDS // len(names) <= mine <= -(-SHARDS // len(names)):
                return False
            owned += mine
            up += metric(text, 'cordon_cluster_sessions{state="connected"}') or 0
            sites += metric(text, "cordon_cluster_sites_subscribed") or 0
        o = self.owners()
        return (owned == up == SHARDS and sites == len(SITES) and len(o) == SHARDS
                and set(o.values()) <= set(names))

    def close(self):
        for d in self.daemons.values():
            if d.alive():
                d.kill()
        if self.kind == "mosquitto":
            self.broker.stop()
        else:
            self.broker.close()
        self.pg.stop()


@pytest.fixture(params=["mosquitto", "ejabberd"])
def cluster(request):
    c = Cluster(make_tmpdir("cordon-it-"), request.param)
    failed = request.session.testsfailed
    try:
        c.start()
        yield c
    finally:
        c.close()
        logs = [d.logfile for d in c.daemons.values()]
        found = harness.sanitizer_reports(logs)
        assert not found, "sanitizer report in a cordond log:\n" + "\n".join(found[:20])
        if request.session.testsfailed == failed and not os.environ.get("CORDON_KEEP"):
            import shutil
            shutil.rmtree(c.dir, ignore_errors=True)
        else:
            print("\nkept %s for inspection" % c.dir)


def raised_messages(collector):
    """(alert_id, payload) of each `raised` transition the alert topics carried."""
    for topic, payload in collector.snapshot():
        try:
            a = json.loads(payload)
        except ValueError:
            continue
        if a.get("transition") == "raised":
            yield a["alert_id"], payload


def raised(collector):
    """alert_id -> how many `raised` transitions the alert topics carried."""
    return collections.Counter(aid for aid, _ in raised_messages(collector))


def raised_distinct(collector):
    """alert_id -> how many different `raised` messages (payloads) it had."""
    seen = {}
    for aid, payload in raised_messages(collector):
        seen.setdefault(aid, set()).add(payload)
    return {k: len(v) for k, v in seen.items()}


def stored(c):
    return c.pg.scalar("SELECT count(*) FROM gate_events WHERE site LIKE 'cl%%'")


def check_lease_history(c):
    """No two leases of one shard overlap."""
    bad = c.pg.query(
        "SELECT a.shard, a.epoch, a.owner, b.epoch, b.owner FROM lease_history a"
        " JOIN lease_history b ON a.shard = b.shard AND a.epoch < b.epoch"
        " WHERE tstzrange(a.acquired_at, a.ended_at, '[)')"
        "    && tstzrange(b.acquired_at, b.ended_at, '[)')")
    assert not bad, "overlapping leases: %s" % bad
    n = c.pg.scalar("SELECT count(*) FROM lease_history")
    print("lease history: %d leases, none overlapping" % n)


def test_three_instances_kill_restart_and_broker_node(cluster):
    c = cluster
    names = ["cl-a", "cl-b", "cl-c"]
    for i, n in enumerate(names):
        c.instance(n, i).start()
    wait_until(lambda: c.settled(names), LONG, what="16 shards owned and subscribed by 3")
    owned = c.owners()
    victim = "cl-b"
    vshards = sorted(s for s, o in owned.items() if o == victim)
    assert vshards and len(set(owned.values())) == 3, owned
    vsite = next(s for s in SITES if shard_of(s) in vshards)
    pub = c.ports[-1]   # on ejabberd: node 2, so that node 1 can be stopped under it

    with Collector(pub, "cordon/+/alert/fever") as alerts:
        first = events(0, 4000, "K")
        s = Stream(pub, first, "cl-gate-1", rate=500).start()
        wait_until(lambda: s.acked >= 1500, LONG, what=s.progress)
        c.daemons[victim].kill()
        t_kill = time.monotonic()
        wait_until(lambda: all(c.owners().get(k) not in (None, victim) for k in vshards),
                   LONG, what="the victim's shards owned by the others")
        t_owned = time.monotonic()
        # A fever at one of the victim's sites is raised by its new owner.
        probe = harness.gate_event(vsite, "G1", "PROBE-1", drop=("card",), person="F-PROBE-1",
                                   temp_c=39.0, ts=harness.now_ts())
        harness.publish_many(pub, [probe])
        alerts.wait_for(lambda t, p: b"F-PROBE-1" in p, timeout=LONG)
        print("[%s] %s SIGKILLed: its %d shards owned elsewhere after %.1f s, a fever at %s"
              " raised after %.1f s (the issue's bound: 15 s)"
              % (c.kind, victim, len(vshards), t_owned - t_kill, vsite,
                 time.monotonic() - t_kill))
        s.wait(LONG * 2)

        # The victim back: its spool drains, whoever owns its sites now.
        c.daemons[victim].start()
        total = len(first) + 1
        wait_until(lambda: stored(c) >= total, LONG, what="every event in PostgreSQL")
        wait_until(lambda: c.settled(names), LONG, what="the three settled again")

        if c.kind == "ejabberd":
            # Node 1 stopped: its sessions die with it (ejabberd keeps a
            # session on its node only); every instance comes back on node 2.
            second = events(len(first), 2000, "K")
            s2 = Stream(pub, second, "cl-gate-2", rate=500).start()
            wait_until(lambda: s2.acked >= 500, LONG, what=s2.progress)
            node_stop = c.pg.scalar("SELECT clock_timestamp()")
            c.broker.stop_node(0)
            wait_until(lambda: c.settled(names), LONG, what="every session back on node 2")
            s2.wait(LONG * 2)
            lost = len(first) + 1 + len(second) - stored(c)
            # What ejabberd dropped with node 1's sessions, the gate sends
            # again (keyed: what arrived already is not doubled).
            harness.publish_many(pub, second)
            total += len(second)
            wait_until(lambda: stored(c) >= total, LONG, what="every event in PostgreSQL")
            print("[ejabberd] node 1 stopped: %d of %d events dropped by ejabberd with its"
                  " sessions, published again" % (lost, len(second)))

        rows = stored(c)
        keys = c.pg.scalar("SELECT count(DISTINCT event_key) FROM gate_events"
                           " WHERE site LIKE 'cl%%'")
        assert rows == keys == total, "stored %d rows, %d keys, of %d events" % (rows, keys, total)
        # One fever a person: its alert is known by its subject.
        fevers = {"person:F-K-%07d" % i for i in range(total - 1) if is_fever(i)}
        fevers.add("person:F-PROBE-1")

        def not_judged():   # /metrics is rendered every 2 s
            return metric(scrape(c.daemons[victim].metrics_port),
                          "cordon_cluster_events_not_judged_total") or 0

        def lost_with_node():
            """Fevers raised (in PostgreSQL) from 2 s before node 1 was
            stopped, whose `raised` never reached the collector: ejabberd
            loses what its stopped node had taken and not yet passed to
            another node (docs/scaling.md, "ejabberd"); the consoles read
            them from PostgreSQL. None on Mosquitto, never before that."""
            if c.kind != "ejabberd":
                return set()
            ids = {r[0] for r in c.pg.query(
                "SELECT alert_id FROM alerts WHERE kind = 'fever' AND site LIKE 'cl%%'"
                " AND raised_at >= %s - interval '2 seconds'", (node_stop,))}
            return ids - set(raised(alerts))
        def on_mqtt():
            return {json.loads(p)["subject"] for _, p in raised_messages(alerts)}

        def in_pg():
            """subject -> alert_id of the fever alerts in PostgreSQL: final,
            as every event is stored, each with its alerts in its batch."""
            return dict(c.pg.query("SELECT subject, alert_id FROM alerts WHERE kind = 'fever'"
                                   " AND site LIKE 'cl%%'"))

        def unaccounted():
            """Fevers not raised on MQTT: (those with an alert not lost with
            node 1, how many have no alert) -- set by set, so that a fever
            raised twice cannot stand in for one never raised."""
            missing, db, lost = fevers - on_mqtt(), in_pg(), lost_with_node()
            return ({x for x in missing if x in db and db[x] not in lost},
                    sum(1 for x in missing if x not in db))
        # Every fever raised on MQTT, or raised and lost with ejabberd's node
        # 1, or without an alert at all: no more of those than the records
        # the restarted victim stored unjudged (fevers and others).
        wait_until(lambda: (lambda bad, none: not bad and none <= not_judged())(*unaccounted()),
                   LONG, what=lambda: "every fever raised on MQTT, lost with node 1 or unjudged"
                   " (not raised though in PostgreSQL, and not judged: %r; %d unjudged records)"
                   % (unaccounted(), not_judged()))
        assert on_mqtt() - fevers == set(), "alerts of no fever: %s" % (on_mqtt() - fevers)
        n = raised(alerts)
        # Two instances never raise one alert. One instance may raise an
        # alert again after its own SIGKILL: its spool is replayed from the
        # committed checkpoint, and an alert published but not yet committed
        # is judged and published again under the same id, as a single
        # cordond does after a crash (docs/scaling.md, "Limits"). Printed,
        # and told apart by the instances' logs.
        by = {}
        for name, d in c.daemons.items():
            for aid in re.findall(r"alert fever raised \(.*\) ([0-9a-f]{32})$", d.log(), re.M):
                by.setdefault(aid, set()).add(name)
        two = {aid: sorted(names) for aid, names in by.items() if len(names) > 1}
        assert not two, "alert ids raised by two instances: %s" % two
        # A `raised` message may also arrive twice with the same bytes: QoS 1
        # is at least once, and the victim SIGKILLed before the broker's
        # PUBACK reached it sends the PUBLISH again from its outbound queue
        # (on disk) when it comes back. Either way, only the victim's.
        again = {k: v for k, v in n.items() if v > 1}
        assert set(again) <= {aid for aid, names in by.items() if names == {victim}}, again
        print("[%s] alert messages that arrived twice with the same bytes: %d"
              % (c.kind, sum(1 for k, v in raised_distinct(alerts).items() if n[k] > v)))
        print("[%s] alert ids raised again by %s after its restart (replayed, uncommitted): %d"
              % (c.kind, victim, len(again)))
        db_raised = c.pg.scalar("SELECT count(*) FROM alerts WHERE kind = 'fever'"
                                " AND site LIKE 'cl%%'")
        print("[%s] fevers %d: %d raised on MQTT, %d in PostgreSQL, %d records the restarted"
              " victim stored without judging (%d fevers without an alert), %d raised and lost"
              " with node 1" % (c.kind, len(fevers), len(n), db_raised, not_judged(),
                                unaccounted()[1], len(lost_with_node())))
    check_lease_history(c)


def test_session_taken_over_is_given_up(cluster):
    """The broker's fence (docs/scaling.md, "Fencing"): another connection
    resumes a shard's session (DISCONNECT 0x8E to cordond's). cordond gives the
    shard up at once (lease_history: `lost`), never reconnects that session
    under that lease, and owns the shard again only through a new lease,
    whose session then takes the session back. On ejabberd only: Debian's
    Mosquitto 2.0.11 closes a taken-over connection without a DISCONNECT."""
    c = cluster
    if c.kind != "ejabberd":
        pytest.skip("Mosquitto 2.0.11 sends no DISCONNECT 0x8E")
    from test_ejabberd import V5, after_this_second
    d = c.instance("cl-t", 0).start()
    wait_until(lambda: c.settled(["cl-t"]), LONG, what="cl-t owning every shard")
    shard = 3
    epoch = c.pg.scalar("SELECT epoch FROM shard_leases WHERE shard = %s", (shard,))
    after_this_second(time.time())   # ejabberd orders takeovers within a second at random

    class Shim:
        ej = c.broker
    impostor = V5(Shim, c.broker.nodes[1], "cordon-shard-%03d" % shard, clean_start=False)
    assert impostor.connack[0] == 1, "the shard's session should be present"
    wait_until(lambda: "shard %d: its session was taken over by another instance" % shard
               in d.log(), LONG, what="cl-t giving shard %d up" % shard)
    wait_until(lambda: c.pg.query(
        "SELECT how FROM lease_history WHERE shard = %s AND epoch = %s", (shard, epoch))
        == [("lost",)], LONG, what="the lease of epoch %d ended as lost" % epoch)
    # Owned again only under a newer lease, whose session takes the session
    # back from the impostor.
    wait_until(impostor.gone.is_set, LONG, what="the new lease's session resuming it")
    assert impostor.disconnect[0] == 0x8E, impostor.disconnect
    new = c.pg.scalar("SELECT epoch FROM shard_leases WHERE shard = %s AND owner = 'cl-t'",
                      (shard,))
    assert new > epoch
    started = d.log().count("shard %d: its session cordon-shard-%03d starts" % (shard, shard))
    assert started == 2, "one session per lease: %d starts" % started
    check_lease_history(c)
