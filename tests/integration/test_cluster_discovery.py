"""Sites nobody registered, and the hand-over of a site registered while
its devices publish (include/handover.h; docs/scaling.md, "Sites nobody
registered, and the hand-over"), on one Mosquitto and one PostgreSQL with
[cluster] discovery on: shard 0's session subscribes to every site and
serves those no other shard serves; a registered site moves to its own
shard's session at a marker both streams see at one point.

- one instance, 16 shards: sites nobody registered are stored and judged
  as by an instance not clustered; a site registered in the middle of a
  stream of its events moves to its shard's session at the marker, and every
  event is stored once, every fever alert raised once;
- two instances, the site's shard owned by the one that does not own shard
  0: the same across processes, and an alert raised under shard 0 before
  the hand-over is acked after it (the new owner loaded its state);
- a restart of the instance owning both: the hand-over is remembered (no
  marker again, the site's messages through its own shard only)."""

import json
import os
import threading
import time

import paho.mqtt.client as paho
import xxhash

import harness
from harness import Collector, free_port, gate_event, metric, publish_many, scrape, wait_until

SHARDS = 16
LEASE = "3s"
LONG = 90


def shard_of(site):
    """cluster_shard_of(): XXH3-64 of the site's name modulo the shards."""
    return xxhash.xxh3_64_intdigest(site.encode()) % SHARDS


def site_in(prefix, want):
    """The first name prefix-N whose shard is in `want` (a set)."""
    for n in range(10000):
        s = "%s-%d" % (prefix, n)
        if shard_of(s) in want:
            return s
    raise AssertionError("no site of shards %r" % want)


def start(cordond, env, name, prefix):
    port = free_port()
    d = cordond({"mqtt": {"client_id": name},
                 "spool": {"dir": os.path.join(env.dir, "spool-" + name)},
                 "metrics": {"listen": "127.0.0.1:%d" % port},
                 "cluster": {"shards": str(SHARDS), "lease_time": LEASE,
                             "session_prefix": prefix, "discovery": "yes"}},
                wait=False)
    d.metrics_port = port
    return d


def leases(ctl):
    out = json.loads(ctl("cluster", "--json").stdout)
    return {x["shard"]: x["owner"] for x in out["leases"]}


def connected(ds, owned):
    """Every instance's owned shards' sessions connected, SUBACKs in, and
    `owned` shards owned over them."""
    total = 0
    for d in ds:
        assert d.alive(), "%s exited:\n%s" % (d.client_id, harness.tail(d.logfile))
        text = scrape(d.metrics_port)
        if not text:
            return False
        n = metric(text, "cordon_cluster_shards_owned") or 0
        if (metric(text, 'cordon_cluster_sessions{state="connected"}') or 0) != n:
            return False
        if metric(text, 'cordon_mqtt_subscriptions{state="pending"}'):
            return False
        total += n
    return total == owned


def handover(env, site):
    """site_handovers' (sent, cut) for the site, or None."""
    rows = env.pg.query("SELECT sent_at IS NOT NULL, discovery_cut_at IS NOT NULL"
                        " FROM site_handovers WHERE site = %s", (site,))
    return tuple(rows[0]) if rows else None


class Stream(threading.Thread):
    """Publishes gate events of `site` one after another at QoS 1 (each
    PUBACKed before the next), a fever every 10th, until stop(); keeps what
    it published."""

    def __init__(self, port, site):
        super().__init__(daemon=True)
        self.site = site
        self.sent = []
        self.halt = threading.Event()
        self.client = harness._client(port, "stream")
        self.start()

    def run(self):
        n = 0
        while not self.halt.is_set():
            fever = n % 10 == 5
            topic, payload = gate_event(self.site, "G01", "ST-%05d" % n,
                                        person="P-%05d" % n,
                                        temp_c=38.2 if fever else 36.6)
            info = self.client.publish(topic, payload, qos=1)
            info.wait_for_publish(harness.TIMEOUT)
            assert info.rc == paho.MQTT_ERR_SUCCESS
            self.sent.append((n, fever))
            n += 1
            time.sleep(0.004)

    def stop(self):
        self.halt.set()
        self.join()
        self.client.loop_stop()
        self.client.disconnect()

    def fevers(self):
        return sum(1 for _, f in self.sent if f)


def raised(col, site):
    """The fever alerts raised for site, from the MQTT transitions."""
    return [json.loads(p) for t, p in col.snapshot()
            if t.startswith("cordon/%s/" % site) and json.loads(p)["transition"] == "raised"]


def check_once(env, col, site, stream):
    """Every event of the stream stored once, each fever alert raised once."""
    n = len(stream.sent)
    where = "site = '%s'" % site
    wait_until(lambda: env.pg.count("gate_events", where) == n, LONG,
               what=lambda: "%d events of %s in PostgreSQL (have %d)"
               % (n, site, env.pg.count("gate_events", where)))
    wait_until(lambda: len(raised(col, site)) >= stream.fevers(), LONG,
               what=lambda: "%d fever alerts of %s (have %d)"
               % (stream.fevers(), site, len(raised(col, site))))
    ids = [x["alert_id"] for x in raised(col, site)]
    assert len(ids) == len(set(ids)) == stream.fevers(), sorted(ids)
    assert env.pg.scalar("SELECT count(*) FROM alerts WHERE site = %s AND kind = 'fever'",
                         (site,)) == stream.fevers()


def test_one_instance_serves_every_site(env, cordond, ctl):
    prefix = "cd1-shard-"
    col = Collector(env.broker.port, "cordon/+/alert/fever")
    try:
        d = start(cordond, env, "cd1-a", prefix)
        wait_until(lambda: connected([d], SHARDS), LONG, what="16 shards owned and connected")
        # shard 0's session subscribed to every site, the others to none yet
        assert "cordon/+/gate/+/event" in env.broker.log()
        # Sites nobody registered: stored and judged.
        msgs = [gate_event("cd1-u%d" % i, "G01", "U-1", person="P-u%d" % i, temp_c=38.5)
                for i in range(30)]
        publish_many(env.broker.port, msgs)
        wait_until(lambda: env.pg.count("gate_events", "site LIKE 'cd1-u%%'") == 30, LONG,
                   what="30 events of unregistered sites")
        wait_until(lambda: sum(len(raised(col, "cd1-u%d" % i)) for i in range(30)) == 30,
                   LONG, what="30 fever alerts of unregistered sites")

        # A site of shard 3 registered in the middle of its stream.
        site = site_in("cd1-r", {3})
        st = Stream(env.broker.port, site)
        try:
            wait_until(lambda: len(st.sent) >= 100, LONG, what="100 events published")
            ctl("site", "add", site)
            wait_until(lambda: handover(env, site) == (True, True), LONG,
                       what=lambda: "the hand-over of %s recorded (%r)"
                       % (site, handover(env, site)))
            at = len(st.sent)
            wait_until(lambda: len(st.sent) >= at + 100, LONG, what="100 more published")
        finally:
            st.stop()
        check_once(env, col, site, st)
        # After the hand-over, shard 3's session took the site's messages. The
        # metrics are rendered every few seconds, not at each scrape: wait for them.
        key = 'cordon_cluster_shard_messages_received_total{shard="3"}'
        wait_until(lambda: metric(scrape(d.metrics_port), key) >= 100, LONG,
                   what=lambda: "shard 3 took >= 100 (%s)" % metric(scrape(d.metrics_port), key))
        assert d.stop() == 0, harness.tail(d.logfile)   # every alert it had is out
        ids = [x["alert_id"] for x in raised(col, site)]
        assert len(ids) == len(set(ids)) == st.fevers(), sorted(ids)
    finally:
        col.close()


def test_handover_across_instances(env, cordond, ctl):
    prefix = "cd2-shard-"
    col = Collector(env.broker.port, "cordon/+/alert/fever")
    try:
        a = start(cordond, env, "cd2-a", prefix)
        wait_until(lambda: connected([a], SHARDS), LONG, what="cd2-a owns every shard")
        b = start(cordond, env, "cd2-b", prefix)
        wait_until(lambda: connected([a, b], SHARDS) and
                   list(leases(ctl).values()).count("cd2-b") == SHARDS // 2, LONG,
                   what=lambda: "the shards shared (%r)" % leases(ctl))
        owner = leases(ctl)
        other = {k for k, o in owner.items() if o != owner[0]}
        site = site_in("cd2-r", other)

        # An alert of the site raised under shard 0 (nobody registered it).
        publish_many(env.broker.port, [gate_event(site, "G02", "PRE-1", person="P-pre",
                                                  temp_c=39.0)])
        wait_until(lambda: raised(col, site), LONG, what="the alert raised under shard 0")
        pre = raised(col, site)[0]["alert_id"]

        st = Stream(env.broker.port, site)
        try:
            wait_until(lambda: len(st.sent) >= 100, LONG, what="100 events published")
            ctl("site", "add", site)
            wait_until(lambda: handover(env, site) == (True, True), LONG,
                       what=lambda: "the hand-over of %s recorded (%r)"
                       % (site, handover(env, site)))
            at = len(st.sent)
            wait_until(lambda: len(st.sent) >= at + 100, LONG, what="100 more published")
        finally:
            st.stop()
        # The stream's events and fevers, and the one before.
        n = len(st.sent)
        wait_until(lambda: env.pg.count("gate_events", "site = '%s'" % site) == n + 1, LONG,
                   what="every event of the site in PostgreSQL")
        wait_until(lambda: len(raised(col, site)) >= st.fevers() + 1, LONG,
                   what=lambda: "%d fever alerts (have %d)" % (st.fevers() + 1,
                                                               len(raised(col, site))))
        ids = [x["alert_id"] for x in raised(col, site)]
        assert len(ids) == len(set(ids)) == st.fevers() + 1, sorted(ids)

        # The owner of the site's shard acks the alert raised under shard 0:
        # it loaded the site's state when the hand-over was done.
        publish_many(env.broker.port, [("cordon/%s/ack" % site, json.dumps(
            {"alert_id": pre, "by": "op-1", "action": "ack"}).encode())])
        wait_until(lambda: env.pg.scalar("SELECT state FROM alerts WHERE alert_id = %s",
                                         (pre,)) == "acked", LONG,
                   what="the alert raised before the hand-over acked after it")
        for d in (a, b):
            assert d.stop() == 0, harness.tail(d.logfile)
        ids = [x["alert_id"] for x in raised(col, site)]
        assert len(ids) == len(set(ids)) == st.fevers() + 1, sorted(ids)
        assert env.pg.scalar("SELECT count(*) FROM rejects WHERE topic LIKE %s",
                             ("cordon/%s/%%" % site,)) == 0
    finally:
        col.close()


def test_restart_remembers_the_handover(env, cordond, ctl):
    prefix = "cd3-shard-"
    site = site_in("cd3-r", {5})
    ctl("site", "add", site)
    d = start(cordond, env, "cd3-a", prefix)
    wait_until(lambda: connected([d], SHARDS), LONG, what="16 shards owned and connected")
    wait_until(lambda: handover(env, site) == (True, True), LONG,
               what=lambda: "the hand-over of %s recorded (%r)" % (site, handover(env, site)))
    assert d.stop() == 0, harness.tail(d.logfile)
    d = start(cordond, env, "cd3-a", prefix)
    wait_until(lambda: connected([d], SHARDS), LONG, what="16 shards owned and connected")
    publish_many(env.broker.port, [gate_event(site, "G01", "AFTER-%d" % i) for i in range(20)])
    wait_until(lambda: env.pg.count("gate_events", "site = '%s'" % site) == 20, LONG,
               what="20 events after the restart")
    wait_until(lambda: metric(scrape(d.metrics_port),
                              'cordon_cluster_shard_messages_received_total{shard="5"}') == 20,
               LONG, what="shard 5's session took the site's 20 messages")
    # and shard 0's session none of them (its gate knew the hand-over done)
    text = scrape(d.metrics_port)
    assert metric(text, 'cordon_cluster_shard_messages_received_total{shard="0"}') == 0
    assert (metric(text, "cordon_cluster_handover_markers_published_total") or 0) == 0
    assert d.stop() == 0, harness.tail(d.logfile)


def test_upgrade_from_one_instance(env, cordond, ctl):
    """A single cordond of before (shards = 0: its own session subscribed to
    every site) upgraded to the clustered default: what its session queued
    while it was down is stored and judged once, then that client drops
    what still comes and unsubscribes; nothing is lost or judged twice."""
    col = Collector(env.broker.port, "cordon/+/alert/fever")
    try:
        old = cordond({"mqtt": {"client_id": "cd4-a"}, "cluster": {"shards": "0"},
                       "spool": {"dir": os.path.join(env.dir, "spool-cd4-a")}})
        assert old.stop() == 0
        # Down: its session queues these.
        publish_many(env.broker.port, [gate_event("cd4-s", "G01", "DOWN-%d" % i,
                                                  person="P-d%d" % i, temp_c=38.4)
                                       for i in range(20)])
        new = start(cordond, env, "cd4-a", "cd4-shard-")
        wait_until(lambda: connected([new], SHARDS), LONG, what="16 shards owned and connected")
        # From here the old subscriptions' copies are dropped (logged when
        # set): the events below must come once, through shard 0's session.
        wait_until(lambda: "own client (subscriptions of a run before clustering)" in
                   new.log().replace("\n", " "), LONG, what="the instance's old inbound dropped")
        publish_many(env.broker.port, [gate_event("cd4-s", "G01", "UP-%d" % i,
                                                  person="P-u%d" % i, temp_c=38.4)
                                       for i in range(20)])
        wait_until(lambda: env.pg.count("gate_events", "site = 'cd4-s'") == 40, LONG,
                   what=lambda: "40 events (have %d)"
                   % env.pg.count("gate_events", "site = 'cd4-s'"))
        wait_until(lambda: len(raised(col, "cd4-s")) >= 40, LONG,
                   what=lambda: "40 fever alerts (have %d)" % len(raised(col, "cd4-s")))
        assert new.stop() == 0, harness.tail(new.logfile)   # every alert it had is out
        ids = [x["alert_id"] for x in raised(col, "cd4-s")]
        assert len(ids) == len(set(ids)) == 40, sorted(ids)
    finally:
        col.close()
