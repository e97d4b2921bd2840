"""A device that reuses a record id (issue 14 point 7): a terminal reset to
serial 1, a firmware update, a replaced terminal given the old gate id. The
same event key comes again with other content: both readings are stored
(the later one under "<key>~<12 hex digits of its content hash>"), an alert
the later one raises names its own row, each reuse is counted, and a
redelivery of either reading adds nothing."""

import json
import re

from harness import free_port, gate_event, metric, publish_many, scrape, wait_until

DERIVED = re.compile(r"^(.*)~([0-9a-f]{12})$")


def reused(port, type_):
    return metric(scrape(port), 'cordon_events_key_reused_total{type="%s"}' % type_)


def wait_reused(port, type_, n):
    """The counter once it reads n (the page is rendered every 2 s)."""
    wait_until(lambda: reused(port, type_) == n, what="cordon_events_key_reused_total{type=%s}"
               " = %d (now %r)" % (type_, n, reused(port, type_)))


def hik(serial, when, person, temp):
    """A Hikvision ISAPI push (the envelope of docs/topics.md) of one pass."""
    return json.dumps({
        "ipAddress": "10.6.1.21", "dateTime": when, "eventType": "AccessControllerEvent",
        "AccessControllerEvent": {"majorEventType": 5, "subEventType": 75, "serialNo": serial,
                                  "employeeNoString": person, "currTemperature": temp,
                                  "thermometryUnit": "celsius", "mask": "yes"}}).encode()


def rows(env, table, key):
    """{event_key: row} of the rows stored for a device's key, the derived
    ones included (env: anything with .pg)."""
    return {r[0]: r[1:] for r in env.pg.query(
        "SELECT event_key, * FROM %s WHERE event_key = %%s OR event_key LIKE %%s" % table,
        (key, key.replace("%", r"\%").replace("_", r"\_") + "~%"))}


def settle(env, site, tag):
    """Publish a marker gate event and wait until it is stored: cordond
    commits in arrival order, so everything published before it is in."""
    publish_many(env.broker.port, [gate_event(site, "GZ", tag)])
    wait_until(lambda: env.pg.count("gate_events", "event_key = %s", ("%s/GZ/%s" % (site, tag),)),
               what="marker %s stored" % tag)


def test_gate_serial_reused_after_reset(env, cordond):
    """A Hikvision terminal reset to serial 1: first a normal reading of P-1,
    then (after the reset) a fever of P-2 with serialNo 1 again."""
    port = free_port()
    d = cordond({"metrics": {"listen": "127.0.0.1:%d" % port}})
    site, topic = "ru", "cordon/ru/gate/G01/event"
    key = "ru/G01/1"
    normal = hik(1, "2020-02-16T08:00:00+08:00", "P-1", 36.5)
    fever = hik(1, "2020-02-17T09:30:00+08:00", "P-2", 38.6)

    publish_many(env.broker.port, [(topic, normal)])
    wait_until(lambda: env.pg.count("gate_events", "event_key = %s", (key,)) == 1,
               what="the first reading stored")
    publish_many(env.broker.port, [(topic, fever)])
    wait_until(lambda: len(rows(env, "gate_events", key)) == 2, what="the second reading stored")
    got = rows(env, "gate_events", key)
    temps = {k: float(env.pg.scalar("SELECT temp_c FROM gate_events WHERE event_key = %s", (k,)))
             for k in got}
    assert temps[key] == 36.5, "the first reading keeps the key"
    (derived,) = [k for k in got if k != key]
    m = DERIVED.match(derived)
    assert m and m.group(1) == key, derived
    assert temps[derived] == 38.6
    assert env.pg.scalar("SELECT person FROM gate_events WHERE event_key = %s", (derived,)) == "P-2"

    # The fever alert names the fever's own row.
    wait_until(lambda: env.pg.count("alerts", "site = %s AND kind = 'fever'", (site,)) == 1,
               what="the fever alert stored")
    assert env.pg.scalar("SELECT subject FROM alerts WHERE site = %s AND kind = 'fever'",
                         (site,)) == "person:P-2"
    wait_until(lambda: env.pg.scalar("SELECT event_key FROM alerts WHERE site = %s"
                                     " AND kind = 'fever'", (site,)) == derived,
               what="the alert pointing at the derived row")
    assert env.pg.query("SELECT event_key, derived_key, event_table FROM event_keys_reused"
                        " WHERE event_key = %s", (key,)) == [(key, derived, "gate_events")]
    wait_reused(port, "gate_event", 1)
    assert "record id their device had used for other content" in d.log()

    # Redeliveries of either reading add nothing and count nothing.
    publish_many(env.broker.port, [(topic, normal), (topic, fever), (topic, normal)])
    settle(env, site, "M-1")
    assert set(rows(env, "gate_events", key)) == {key, derived}
    assert env.pg.count("alerts", "site = %s AND kind = 'fever'", (site,)) == 1
    wait_reused(port, "gate_event", 1)

    # A third reading under the same serial: a key of its own; two readings
    # with one serial in one message burst (one batch, likely) as well.
    third = hik(1, "2020-02-18T10:00:00+08:00", "P-3", 36.7)
    a2 = hik(2, "2020-02-18T10:01:00+08:00", "P-4", 36.4)
    b2 = hik(2, "2020-02-18T10:02:00+08:00", "P-5", 39.1)
    publish_many(env.broker.port, [(topic, third), (topic, a2), (topic, b2)])
    wait_until(lambda: len(rows(env, "gate_events", key)) == 3, what="the third reading")
    wait_until(lambda: len(rows(env, "gate_events", "ru/G01/2")) == 2, what="both serial 2")
    assert env.pg.scalar("SELECT person FROM gate_events WHERE event_key = 'ru/G01/2'") == "P-4"
    wait_reused(port, "gate_event", 3)
    wait_until(lambda: env.pg.count("alerts", "site = %s AND kind = 'fever'", (site,)) == 2,
               what="the second fever alert")
    ek2 = env.pg.scalar("SELECT event_key FROM alerts WHERE site = %s AND kind = 'fever'"
                        " AND subject = 'person:P-5'", (site,))
    assert DERIVED.match(ek2).group(1) == "ru/G01/2"
    assert env.pg.scalar("SELECT person FROM gate_events WHERE event_key = %s", (ek2,)) == "P-5"
    assert d.alive()


def test_reuse_survives_restart_and_replay(env, cordond):
    """The first reading is stored by one run; the reused id comes after a
    restart (nothing in memory): still told apart, and a SIGKILL before the
    checkpoint moves replays the spool onto the same rows."""
    d = cordond()
    site, key = "rr", "rr/G01/7"
    publish_many(env.broker.port, [gate_event(site, "G01", "7", person="P-1", temp_c=36.6)])
    wait_until(lambda: env.pg.count("gate_events", "event_key = %s", (key,)) == 1,
               what="the first reading")
    d.stop()
    env.restart(d)
    publish_many(env.broker.port, [gate_event(site, "G01", "7", person="P-1", temp_c=38.0,
                                              ts="2020-02-17T08:00:00+08:00")])
    wait_until(lambda: len(rows(env, "gate_events", key)) == 2, what="the reused id stored")
    # A redelivery after a restart: the same rows.
    d.stop()
    env.restart(d)
    publish_many(env.broker.port, [gate_event(site, "G01", "7", person="P-1", temp_c=38.0,
                                              ts="2020-02-17T08:00:00+08:00"),
                                   gate_event(site, "G01", "7", person="P-1", temp_c=36.6)])
    settle(env, site, "M-2")
    assert len(rows(env, "gate_events", key)) == 2
    assert env.pg.count("event_keys_reused", "event_key = %s", (key,)) == 1


def test_other_tables(env, cordond):
    """The same mechanism on every event table: a disinfection, an isolation
    check (whose fever alert names its row), a hotline step (whose call
    folds it) and a gate state with a reused id; a redelivery of each adds
    nothing. (Acks carry no record id: their keys are hashes, never reused.)"""
    port = free_port()
    d = cordond({"metrics": {"listen": "127.0.0.1:%d" % port}})
    site = "ro"
    dis = "cordon/ro/disinfection/Z1"
    chk = "cordon/ro/isolation/3-2-401/check"
    hot = "cordon/ro/hotline"
    sts = "cordon/ro/gate/G02/status"
    first = [
        (dis, b'{"id":"D-1","ts":"2020-02-16T09:00:00+08:00","crew":"crew-2","agent":"chlorine"}'),
        (chk, b'{"id":"K-1","ts":"2020-02-16T09:00:00+08:00","person":"P-7","temp_c":36.5}'),
        (hot, b'{"call_id":"H-1","id":"1","action":"open","ts":"2020-02-16T09:00:00+08:00",'
              b'"household":"3-2-401","category":"other","urgent":false}'),
        (sts, b'{"state":"open","ts":"2020-02-16T09:00:00+08:00","id":"ST-1"}'),
    ]
    second = [
        (dis, b'{"id":"D-1","ts":"2020-02-17T09:00:00+08:00","crew":"crew-5","agent":"chlorine"}'),
        (chk, b'{"id":"K-1","ts":"2020-02-17T09:00:00+08:00","person":"P-7","temp_c":38.2}'),
        (hot, b'{"call_id":"H-1","id":"1","action":"resolve","ts":"2020-02-17T09:00:00+08:00"}'),
        (sts, b'{"state":"closed","ts":"2020-02-17T09:00:00+08:00","id":"ST-1"}'),
    ]
    keys = {"disinfections": "ro/Z1/D-1", "isolation_checks": "ro/3-2-401/K-1",
            "hotline_events": "ro/hotline/H-1/1", "gate_status": "ro/G02/ST-1"}
    publish_many(env.broker.port, first)
    for table, key in keys.items():
        wait_until(lambda: env.pg.count(table, "event_key = %s", (key,)) == 1,
                   what="%s %s stored" % (table, key))
    publish_many(env.broker.port, second)
    for table, key in keys.items():
        wait_until(lambda: len(rows(env, table, key)) == 2, what="%s: both rows" % table)
    for type_ in ("disinfection", "isolation_check", "hotline", "gate_status"):
        wait_reused(port, type_, 1)
    assert env.pg.scalar("SELECT crew FROM disinfections WHERE event_key LIKE 'ro/Z1/D-1~%'") \
        == "crew-5"
    # The check's fever alert names the check's own row; the call folds the
    # reused step (it ends resolved).
    wait_until(lambda: env.pg.count("alerts", "site = %s AND kind = 'fever'", (site,)) == 1,
               what="the check's fever alert")
    wait_until(lambda: DERIVED.match(env.pg.scalar(
        "SELECT event_key FROM alerts WHERE site = %s AND kind = 'fever'", (site,)) or ""),
        what="the alert pointing at the derived row")
    ek = env.pg.scalar("SELECT event_key FROM alerts WHERE site = %s AND kind = 'fever'", (site,))
    assert float(env.pg.scalar("SELECT temp_c FROM isolation_checks WHERE event_key = %s",
                               (ek,))) == 38.2
    assert env.pg.scalar("SELECT status FROM hotline_calls WHERE site = %s AND call_id = 'H-1'",
                         (site,)) == "resolved"
    assert env.pg.count("event_keys_reused", "event_key LIKE 'ro/%%'") == 4

    # Redeliveries: nothing new.
    publish_many(env.broker.port, first + second)
    settle(env, site, "M-3")
    for table, key in keys.items():
        assert len(rows(env, table, key)) == 2, table
    for type_ in ("disinfection", "isolation_check", "hotline", "gate_status"):
        wait_reused(port, type_, 1)
    assert d.alive()


def test_reuse_in_the_row_pass(private_env):
    """A batch that PostgreSQL refuses for one row's data is written row by
    row: a reused id in that batch is stored under its derived key there
    too, a redelivery in it adds nothing, and the refused row becomes a
    store_failed reject. (PostgreSQL is stopped while the messages are
    spooled, so that they are one batch.)"""
    e, site = private_env, "rp"
    e.broker.start()
    e.pg.start()
    port = free_port()
    d = e.cordond({"metrics": {"listen": "127.0.0.1:%d" % port}})
    publish_many(e.broker.port, [gate_event(site, "G01", "1", person="P-1", temp_c=36.5)])
    wait_until(lambda: e.pg.count("gate_events", "event_key = 'rp/G01/1'") == 1,
               what="the first reading")
    e.pg.query("ALTER TABLE gate_events ADD CONSTRAINT below_40 CHECK (temp_c < 40.0)")
    e.pg.stop()
    msgs = [gate_event(site, "G01", "2", person="P-2", temp_c=41.0),       # refused
            gate_event(site, "G01", "1", person="P-3", temp_c=38.1,       # reused
                       ts="2020-02-17T08:00:00+08:00"),
            gate_event(site, "G01", "1", person="P-1", temp_c=36.5),       # redelivered
            gate_event(site, "G01", "3", person="P-4", temp_c=36.6)]       # new
    publish_many(e.broker.port, msgs)
    wait_until(lambda: (metric(scrape(port), "cordon_messages_received_total") or 0) >= 1 + len(msgs),
               what="the messages spooled")
    e.pg.start()
    wait_until(lambda: e.pg.count("gate_events", "event_key = 'rp/G01/3'") == 1,
               what="the batch written")
    assert e.pg.count("rejects", "reason = 'store_failed'") == 1
    got = rows(e, "gate_events", "rp/G01/1")
    assert len(got) == 2, got
    (derived,) = [k for k in got if k != "rp/G01/1"]
    assert e.pg.scalar("SELECT person FROM gate_events WHERE event_key = %s", (derived,)) == "P-3"
    assert "writing it row by row" in d.log()
    wait_reused(port, "gate_event", 1)
    wait_until(lambda: e.pg.scalar("SELECT event_key FROM alerts WHERE site = %s AND kind ="
                                   " 'fever' AND subject = 'person:P-3'", (site,)) == derived,
               what="the fever alert naming its row")
