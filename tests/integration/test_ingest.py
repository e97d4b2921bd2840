"""Issue "cordond end to end": MQTT in -> PostgreSQL exactly once, rejects,
fever alerts, and start-up before PostgreSQL or the broker is reachable.

Tests sharing the module's broker and PostgreSQL use their own site name and
count only that site's rows. "Wait for a marker" = publish one more event last
and wait until it is stored: the spool and the writer keep arrival order, so
everything published before it has been handled by then.
"""

import json
import time

import harness
from harness import Collector, event_key, gate_event, publish_many, wait_until

REASONS = {"empty_payload", "not_json", "invalid_utf8", "payload_too_large", "not_object",
           "missing_temperature", "bad_temperature", "missing_time", "bad_time", "bad_direction"}
LONG = 180


def stored(pg, site):
    """Rows of site in gate_events, the marker excluded."""
    return pg.count("gate_events", "site = %s AND gate <> 'MARK'", (site,))


def wait_stored(env, d, site, n, timeout=LONG):
    """Wait until site has at least n rows (cordond must stay alive meanwhile); return the count."""
    def enough():
        assert d.alive(), "cordond exited with %r" % d.returncode()
        return stored(env.pg, site) >= n
    wait_until(enough, timeout, what=lambda: "%d rows for %s (have %d)" % (n, site, stored(env.pg, site)))
    return stored(env.pg, site)


def publish_marked(env, d, site, messages, timeout=LONG):
    """Publish messages and then a marker event; return once the marker is stored."""
    topic, payload = gate_event(site, "MARK", "M-1")
    publish_many(env.broker.port, list(messages) + [(topic, payload)])

    def marker():
        assert d.alive(), "cordond exited with %r" % d.returncode()
        return env.pg.count("gate_events", "event_key = %s", (event_key(site, "MARK", "M-1"),))
    wait_until(marker, timeout, what="marker event of %s stored" % site)


def events(site, n, prefix="E"):
    return [gate_event(site, "G%02d" % (i % 16 + 1), "%s-%06d" % (prefix, i),
                       card="C-%04d" % (i % 700), person="P-%05d" % (i % 900),
                       direction=("in", "out")[i % 2], temp_c=round(36.0 + (i % 10) / 10, 1))
            for i in range(n)]


def test_10000_events_stored_exactly_once(env, cordond):
    d = cordond()
    publish_marked(env, d, "t1", events("t1", 10000))
    assert wait_stored(env, d, "t1", 10000) == 10000
    assert env.pg.scalar("SELECT count(DISTINCT event_key) FROM gate_events "
                         "WHERE site = 't1' AND gate <> 'MARK'") == 10000
    assert env.pg.scalar("SELECT count(*) FROM gate_events WHERE event_key = %s",
                         (event_key("t1", "G03", "E-000002"),)) == 1


def test_duplicates_stored_once(env, cordond):
    d = cordond()
    batch = events("t2", 1000)
    publish_many(env.broker.port, batch)
    publish_marked(env, d, "t2", batch)
    assert stored(env.pg, "t2") == 1000
    assert env.pg.count("gate_events", "site = 't2'") == 1000 + 1
    # The second copies make the fast path (COPY straight into gate_events)
    # fail; the batch goes through the staging table instead, whole: no
    # reject, no batch written row by row, no error.
    assert env.pg.count("rejects", "topic LIKE %s", ("cordon/t2/%",)) == 0
    log = d.log()
    assert "row by row" not in log
    assert [line for line in log.splitlines() if " error: " in line] == []


def bad_payloads(site):
    """One payload per reject reason: {reason: (topic, payload)}."""
    def ev(n, **kw):
        return gate_event(site, "G07", "B-%02d" % n, **kw)

    topic = ev(0)[0]
    pad = b"x" * (1024 * 1024 - len(ev(4)[1]) - len(b', "pad": ""'))
    big = ev(4)[1][:-1] + b', "pad": "' + pad + b'"}'
    assert len(big) == 1024 * 1024
    return {
        "empty_payload": (topic, b""),
        "not_json": (topic, b"card=C-0412 temp=36.6"),
        "invalid_utf8": (topic, ev(3, card="C-XX")[1].replace(b"C-XX", b"C-\xff\xfe")),
        "payload_too_large": (topic, big),
        "not_object": (topic, b'[1, "garbage", {"temp_c": 36.6}]'),
        # no reading and nobody named (with a card or person it would be
        # a pass without a reading)
        "missing_temperature": ev(6, drop=("temp_c", "card", "person")),
        "bad_temperature": ev(7, temp_c={"value": 36.6}),
        "missing_time": ev(8, drop=("ts",)),
        "bad_time": ev(9, ts="sometime on tuesday"),
        "bad_direction": ev(10, direction="sideways"),
    }


def test_malformed_payloads_rejected(env, cordond):
    bad = bad_payloads("t3")
    assert set(bad) == REASONS
    assert b"\xff\xfe" in bad["invalid_utf8"][1]
    good = events("t3", len(bad) + 1, prefix="OK")
    mixed = [good[0]]
    for g, b in zip(good[1:], bad.values()):
        mixed += [b, g]

    d = cordond()
    publish_marked(env, d, "t3", mixed)
    assert wait_stored(env, d, "t3", len(good)) == len(good)

    def rejects():
        return env.pg.query("SELECT reason, octet_length(payload) FROM rejects WHERE topic LIKE 'cordon/t3/%%'")
    wait_until(lambda: len(rejects()) >= 10, what=lambda: "10 rejects (have %r)" % rejects())
    rows = rejects()
    assert len(rows) == 10
    assert {r for r, _ in rows} == REASONS
    assert all(n <= 64 * 1024 for _, n in rows), rows  # raw bytes kept up to 64 KiB
    assert d.alive()
    assert d.stop() == 0


def test_fever_alert(env, cordond):
    normal = gate_event("t4", "G05", "N-0001", card="C-0001", person="P-00001", temp_c=36.6)
    fever = gate_event("t4", "G03", "F-0001", card="C-0412", person="P-10233", temp_c=38.6)

    def fever_alerts(c):
        out = []
        for topic, payload in c.snapshot():
            if topic == "cordon/t4/alert/fever":
                out.append(json.loads(payload))
        return out

    with Collector(env.broker.port, "cordon/+/alert/#") as alerts:
        d = cordond()
        publish_many(env.broker.port, [normal, fever])
        a = wait_until(lambda: [a for a in fever_alerts(alerts) if a.get("temp_c") == 38.6],
                       what="fever alert for 38.6")[0]
        assert a["kind"] == "fever"
        assert a["severity"] == "critical"
        assert a["state"] == "raised"
        assert a["site"] == "t4"
        assert a["gate"] == "G03"
        assert type(a["temp_c"]) is float and a["temp_c"] == 38.6
        assert "F-0001" in str(a["event_id"])
        assert a["alert_id"] and a["subject"] and isinstance(a["text"], str) and a["text"]

        wait_until(lambda: env.pg.count("gate_events", "event_key = %s", (event_key("t4", "G05", "N-0001"),)),
                   what="the 36.6 reading stored")
        # Alerts leave in event order: one for the 36.6 reading would precede the 38.6 one.
        for other in fever_alerts(alerts):
            assert "N-0001" not in str(other.get("event_id")) and other.get("temp_c") != 36.6, other
            assert "C-0001" not in json.dumps(other) and "P-00001" not in json.dumps(other), other
        assert d.alive()


def test_starts_before_postgres(private_env):
    """Not clustered ([cluster] shards = 0): its own session takes every
    site from the start, and what comes is spooled while PostgreSQL is down."""
    e = private_env
    e.broker.start()
    e.pg.start()   # creates database `cordon`
    e.pg.stop()
    d = e.cordond({"cluster": {"shards": "0"}})
    publish_many(e.broker.port, events("t5", 100))    # spooled while PostgreSQL is down
    time.sleep(3)
    assert d.alive(), "cordond exited with %r without PostgreSQL" % d.returncode()
    e.pg.start()
    publish_many(e.broker.port, events("t5", 200)[100:])
    assert wait_stored(e, d, "t5", 200) == 200
    assert e.pg.scalar("SELECT count(DISTINCT event_key) FROM gate_events WHERE site = 't5'") == 200
    assert d.alive()
    assert d.stop() == 0


def test_clustered_starts_before_postgres(private_env):
    """Clustered (the default): an instance takes its shards' sessions only
    once PostgreSQL answers (the leases are there); until then the broker
    keeps what comes in the shard sessions a previous run left, and nothing
    is lost (docs/scaling.md, "Setting it up")."""
    e = private_env
    e.broker.start()
    e.pg.start()
    d = e.cordond({"cluster": harness.CLUSTERED})   # the first run: the shard sessions exist
    assert d.stop() == 0
    e.pg.stop()
    since = e.broker.log_size()
    d = e.cordond({"cluster": harness.CLUSTERED}, wait=False)
    publish_many(e.broker.port, events("t7", 100))    # queued in shard 0's session
    # It is up, and no session of a shard is connected: no lease without PostgreSQL.
    wait_until(lambda: "PostgreSQL" in d.log(), what="cordond trying PostgreSQL")
    assert d.alive(), "cordond exited with %r without PostgreSQL" % d.returncode()
    assert not e.broker.subscribed(d.inbound_id, since)
    e.pg.start()
    e.wait_connected(d, since)
    publish_many(e.broker.port, events("t7", 200)[100:])
    assert wait_stored(e, d, "t7", 200) == 200
    assert e.pg.scalar("SELECT count(DISTINCT event_key) FROM gate_events WHERE site = 't7'") == 200
    assert d.stop() == 0


def test_starts_before_broker(private_env):
    e = private_env
    e.pg.start()
    d = e.cordond(wait=False)
    time.sleep(3)
    assert d.alive(), "cordond exited with %r without a broker" % d.returncode()
    e.broker.start()
    e.wait_connected(d)
    publish_many(e.broker.port, events("t6", 300))
    assert wait_stored(e, d, "t6", 300) == 300
    assert d.alive()
    assert d.stop() == 0
