"""Vendor variants (issue 14 point 5): status words as real firmwares send
them, and one rule for numbers written as strings on every topic. The field
cases (tests/fixtures/field-cases/, copies of shared/field-cases) are
published byte for byte."""

import json

from harness import field, gate_event, publish_many, wait_until


def states(env, site, gate):
    return [r[0] for r in env.pg.query(
        "SELECT state FROM gate_status WHERE site = %s AND gate = %s ORDER BY received_at",
        (site, gate))]


def publish_in_order(env, site, gate, payloads):
    """Each status payload once, the next only after the previous is stored
    (their order is then the order of received_at)."""
    topic = "cordon/%s/gate/%s/status" % (site, gate)
    for n, p in enumerate(payloads, 1):
        publish_many(env.broker.port, [(topic, p)])
        wait_until(lambda: env.pg.count("gate_status", "site = %s AND gate = %s",
                                        (site, gate)) == n,
                   what="status %d of %s stored" % (n, gate))


def test_status_words(env, cordond):
    d = cordond()
    site = "vw"
    # Field cases 09a then 09b: Tasmota's default will, then its birth.
    publish_in_order(env, site, "G09", [field("09a-tasmota-lwt-offline.txt"),
                                        field("09b-tasmota-lwt-online.txt")])
    assert states(env, site, "G09") == ["offline", "online"]
    # The other way round: the gate ends offline.
    publish_in_order(env, site, "G10", [field("09b-tasmota-lwt-online.txt"),
                                        field("09a-tasmota-lwt-offline.txt")])
    assert states(env, site, "G10") == ["online", "offline"]
    # Siblings: capitals, blanks and line ends, JSON quotes, the state
    # object, Shelly's true/false on its online topic.
    publish_in_order(env, site, "G11", [b"ONLINE\r\n", b" Forced ", b'"Closed"',
                                        b'{"state":"Open"}', b"false", b"True\n"])
    assert states(env, site, "G11") == ["online", "forced", "closed", "open", "offline",
                                        "online"]
    # Still not states: rejected, nothing stored.
    bad = [(b"Onlin", "not_json"), (b"on line", "not_json"), (b'"Exploded"', "bad_state")]
    topic = "cordon/%s/gate/G12/status" % site
    publish_many(env.broker.port, [(topic, p) for p, _ in bad])
    wait_until(lambda: env.pg.count("rejects", "topic = %s", (topic,)) == len(bad),
               what="the rejects")
    assert sorted(r[0] for r in env.pg.query("SELECT reason FROM rejects WHERE topic = %s",
                                            (topic,))) == sorted(r for _, r in bad)
    assert states(env, site, "G12") == []
    assert d.alive()


def test_numbers_as_strings(env, cordond):
    d = cordond()
    site = "vn"
    check = "cordon/%s/isolation/3-2-401/check" % site
    msgs = [
        (check, field("20b-check-temp-as-string.json")),            # field case 20b
        gate_event(site, "G01", "E-1", temp_c="37.8"),              # the same on a gate
        gate_event(site, "G01", "E-2", temp_c=" 36.6 "),
        ("cordon/%s/gate/G02/event" % site, json.dumps(              # Hikvision
            {"ipAddress": "10.6.1.21", "dateTime": "2020-02-16T18:32:00+08:00",
             "eventType": "AccessControllerEvent",
             "AccessControllerEvent": {"majorEventType": 5, "subEventType": 75,
                                       "serialNo": 8, "currTemperature": "37.800000"}}).encode()),
    ]
    bad = [
        (check, json.dumps({"id": "K-21", "ts": 1581849120, "person": "P-1",
                            "temp_c": "0x25"}).encode()),
        (check, json.dumps({"id": "K-22", "ts": 1581849120, "person": "P-1",
                            "temp_c": "3.78e1"}).encode()),
        gate_event(site, "G01", "E-3", temp_c="37,8"),
        gate_event(site, "G01", "E-4", temp_c="37.8C"),
    ]
    publish_many(env.broker.port, msgs + bad)
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (site,)) == 3,
               what="the gate events")
    wait_until(lambda: env.pg.count("isolation_checks", "site = %s", (site,)) == 1,
               what="the check")
    wait_until(lambda: env.pg.count("rejects", "topic LIKE %s", ("cordon/%s/%%" % site,))
               == len(bad), what="the rejects")
    assert env.pg.query("SELECT person, temp_c::text FROM isolation_checks WHERE site = %s",
                        (site,)) == [("P-2001", "37.8")]
    assert sorted(env.pg.query("SELECT gate, temp_c::text FROM gate_events WHERE site = %s",
                               (site,))) == [("G01", "36.6"), ("G01", "37.8"), ("G02", "37.8")]
    assert [r[0] for r in env.pg.query("SELECT DISTINCT reason FROM rejects WHERE topic LIKE %s",
                                       ("cordon/%s/%%" % site,))] == ["bad_temperature"]
    assert d.alive()
