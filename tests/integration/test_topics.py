"""Every inbound topic of SPEC 2 stored in its table, and the register
cached by cordond and reloaded on NOTIFY without a restart."""

import json

from harness import gate_event, publish_many, wait_until


def pub(env, topic, body):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    publish_many(env.broker.port, [(topic, payload)])


def test_every_topic_stored(env, cordond):
    d = cordond()
    site = "tp"
    msgs = [
        ("cordon/tp/gate/G01/status", b"offline"),                      # a device's will
        ("cordon/tp/gate/G01/status", json.dumps(
            {"state": "forced", "ts": "2020-02-16T18:40:00+08:00", "id": "ST-1"}).encode()),
        ("cordon/tp/disinfection/Z03", json.dumps(
            {"id": "D-1", "ts": "2020-02-16T09:00:00+08:00", "crew": "crew-2",
             "agent": "chlorine 500 mg/L"}).encode()),
        ("cordon/tp/hotline", json.dumps(
            {"call_id": "H-7", "id": "1", "action": "open", "ts": "2020-02-16T10:00:00+08:00",
             "household": "3-2-401", "category": "medical", "urgent": True,
             "note": "fever since morning"}).encode()),
        ("cordon/tp/hotline", json.dumps(
            {"call_id": "H-7", "id": "2", "action": "update",
             "ts": "2020-02-16T10:10:00+08:00", "note": "doctor called back"}).encode()),
        ("cordon/tp/hotline", json.dumps(
            {"call_id": "H-7", "id": "3", "action": "resolve",
             "ts": "2020-02-16T10:25:00+08:00"}).encode()),
        ("cordon/tp/isolation/3-2-401/check", json.dumps(
            {"id": "K-1", "ts": "2020-02-16T08:00:00+08:00", "person": "P-00007",
             "temp_c": 37.9, "symptoms": ["cough", "fatigue"]}).encode()),
        ("cordon/tp/ack", json.dumps(
            {"alert_id": "0123abcd", "by": "op-7", "action": "ack", "note": "on my way"}).encode()),
    ]
    publish_many(env.broker.port, msgs)
    # the hotline fold and the ack are last: wait for them
    wait_until(lambda: env.pg.count("acks", "site = %s", (site,)) == 1, what="the ack stored")
    wait_until(lambda: env.pg.count("hotline_events", "site = %s", (site,)) == 3,
               what="three hotline steps")

    rows = env.pg.query("SELECT state, ts IS NOT NULL FROM gate_status WHERE site = %s "
                        "ORDER BY state", (site,))
    assert rows == [("forced", True), ("offline", True)]
    assert env.pg.query("SELECT zone, crew, agent FROM disinfections WHERE site = %s",
                        (site,)) == [("Z03", "crew-2", "chlorine 500 mg/L")]
    calls = env.pg.query("SELECT call_id, household, category, urgent, status,"
                         " resolved_at - opened_at FROM hotline_calls WHERE site = %s", (site,))
    assert len(calls) == 1
    call_id, hh, cat, urgent, status, took = calls[0]
    assert (call_id, hh, cat, urgent, status) == ("H-7", "3-2-401", "medical", True, "resolved")
    assert took.total_seconds() == 25 * 60
    checks = env.pg.query("SELECT household, person, temp_c::text, symptoms FROM isolation_checks"
                          " WHERE site = %s", (site,))
    assert checks == [("3-2-401", "P-00007", "37.9", ["cough", "fatigue"])]
    assert env.pg.query("SELECT alert_id, by_whom, action, note FROM acks WHERE site = %s",
                        (site,)) == [("0123abcd", "op-7", "ack", "on my way")]

    # The whole lot published again: what has a record id changes nothing
    # (the hotline fold included); the bare will is a device going away
    # again, a new row (issue 14.2; the broker's own redeliveries are
    # test_replays.py's).
    publish_many(env.broker.port, msgs + [gate_event(site, "G01", "MARK")])
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (site,)) == 1,
               what="the marker after the messages published again")
    assert env.pg.count("hotline_events", "site = %s", (site,)) == 3
    assert sorted(r[0] for r in env.pg.query("SELECT state FROM gate_status WHERE site = %s",
                                             (site,))) == ["forced", "offline", "offline"]
    assert env.pg.scalar("SELECT status FROM hotline_calls WHERE site = %s", (site,)) == "resolved"
    assert d.alive()


def test_register_reload_without_restart(env, cordond):
    """A site's time zone comes from the register; a change is picked up
    through NOTIFY cordon_register while cordond runs."""
    d = cordond()
    wait_until(lambda: "register loaded" in d.log(), what="the first register load")
    naive = "2020-07-16T12:00:00"

    # Unregistered site: the configured default zone (Asia/Shanghai, +08:00).
    publish_many(env.broker.port, [gate_event("tz1", "G01", "A", ts=naive)])
    wait_until(lambda: env.pg.count("gate_events", "site = 'tz1'"), what="first event")
    assert env.pg.scalar("SELECT to_char(ts AT TIME ZONE 'UTC', 'HH24:MI') FROM gate_events "
                         "WHERE event_key = 'tz1/G01/A'") == "04:00"

    env.pg.query("INSERT INTO sites (site, timezone) VALUES ('tz1', 'America/New_York');"
                 " NOTIFY cordon_register, 'tz1'")
    wait_until(lambda: d.log().count("register loaded") >= 2, what="the register reloaded")
    publish_many(env.broker.port, [gate_event("tz1", "G01", "B", ts=naive)])
    wait_until(lambda: env.pg.count("gate_events", "event_key = 'tz1/G01/B'"), what="second event")
    # July in New York is EDT (-04:00): 12:00 local is 16:00 UTC.
    assert env.pg.scalar("SELECT to_char(ts AT TIME ZONE 'UTC', 'HH24:MI') FROM gate_events "
                         "WHERE event_key = 'tz1/G01/B'") == "16:00"
    assert d.alive()


def test_topic_rejects(env, cordond):
    d = cordond()
    bad = [
        ("cordon/tr/gate/G01/status", b"exploded", "not_json"),
        ("cordon/tr/gate/G01/status", b'{"state":"exploded"}', "bad_state"),
        ("cordon/tr/disinfection/Z01", b'{"crew":"c"}', "missing_time"),
        ("cordon/tr/hotline", b'{"action":"open","ts":1581849120}', "bad_field"),
        ("cordon/tr/isolation/3-2-401/check", b'{"ts":1581849120}', "missing_temperature"),
        ("cordon/tr/ack", b'{"alert_id":"x","action":"ack"}', "bad_field"),
        ("cordon/tr/gate/G 1/event", b'{}', "unknown_topic"),
    ]
    publish_many(env.broker.port, [(t, p) for t, p, _ in bad] + [gate_event("tr", "G01", "MARK")])
    wait_until(lambda: env.pg.count("gate_events", "site = 'tr'") == 1, what="the marker")
    wait_until(lambda: env.pg.count("rejects", "topic LIKE 'cordon/tr/%%'") == len(bad),
               what="all rejects")
    got = sorted(env.pg.query("SELECT topic, reason FROM rejects WHERE topic LIKE 'cordon/tr/%%'"))
    assert got == sorted((t, r) for t, _, r in bad)
    assert d.alive()
