"""Passes without a reading (issue 14 point 3) and WeCom's open_userid
(point 5): the field cases (tests/fixtures/field-cases/, copies of
shared/field-cases) are published byte for byte, with siblings of each kind
in the other vendor formats.

A gate event without a temperature that names a card or a person is stored
with temp_c NULL and the gate rules run on it (sealed_gate, unknown_card,
isolation_breach); one that names nobody is no pass (missing_temperature).
Alerts are read from the alerts table; every wait is bounded, nothing is
timed."""

from decimal import Decimal
import json

from harness import field, gate_event, import_households, publish_many, wait_until

PHONE = "18012341999"


def start(env, cordond):
    """A cordond that has loaded the register (made before it starts)."""
    d = cordond()
    wait_until(lambda: "register loaded" in d.log(), what="cordond loading the register")
    return d


def alerts(env, site):
    return sorted(env.pg.query(
        "SELECT kind, subject, state, coalesce(reason, ''), coalesce(card, ''), event_key"
        " FROM alerts WHERE site = %s", (site,)))


def wait_alerts(env, site, n):
    return wait_until(lambda: len(alerts(env, site)) >= n and alerts(env, site),
                      what=lambda: "%d alerts of %s (have %r)" % (n, site, alerts(env, site)))


def rows(env, site):
    return sorted(env.pg.query(
        "SELECT event_key, gate, coalesce(card, ''), coalesce(person, ''), temp_c, vendor"
        " FROM gate_events WHERE site = %s", (site,)))


def rejects(env, site):
    return sorted(env.pg.query("SELECT topic, reason FROM rejects WHERE topic LIKE %s",
                               ("cordon/%s/%%" % site,)))


def test_field_case_03_unknown_card_at_sealed_gate(env, cordond, ctl):
    """03: a Hikvision access event (5/9, invalid card) without a
    temperature block, on a sealed gate, the card not registered: one pass
    without a reading, sealed_gate and unknown_card. Sibling: a Dahua card
    reader's AccessControl event without ManTemperatureInfo on another
    sealed gate, the card registered: the pass and sealed_gate only."""
    site = "nr3"
    ctl("gate", "add", site, "G31", "--sealed")
    ctl("gate", "add", site, "G32", "--sealed")
    import_households(env, ctl, site, [("3-2-401", ["C-0412"])], PHONE)
    d = start(env, cordond)
    dahua = json.dumps({"Action": "Pulse", "Code": "AccessControl", "Index": 0,
                        "Data": {"RecNo": 5200, "UTC": 1581849120, "CardNo": "C-0412",
                                 "Door": 0, "ErrorCode": 0, "Method": 1, "ReaderID": "1",
                                 "Status": 1, "Type": "Entry", "UserID": "1042"}}).encode()
    publish_many(env.broker.port, [
        ("cordon/%s/gate/G31/event" % site, field("03-hik-unknown-card-no-temperature.json")),
        ("cordon/%s/gate/G32/event" % site, dahua)])
    wait_until(lambda: len(rows(env, site)) == 2, what=lambda: "the two passes (have %r)"
               % rows(env, site))
    assert rows(env, site) == [
        ("nr3/G31/5531", "G31", "C-9901", "", None, "hikvision"),
        ("nr3/G32/5200", "G32", "C-0412", "1042", None, "dahua")]
    got = wait_alerts(env, site, 3)
    assert got == [
        ("sealed_gate", "gate:G31", "raised", "", "C-9901", "nr3/G31/5531"),
        ("sealed_gate", "gate:G32", "raised", "", "C-0412", "nr3/G32/5200"),
        ("unknown_card", "card:C-9901", "raised", "unregistered", "C-9901", "nr3/G31/5531")], got
    assert rejects(env, site) == []
    # The daily report counts it as a pass, not as screened (03 is dated
    # 2024-08-26 +08:00, the site's zone; its clock is flagged skewed).
    out = ctl("report", "daily", "--site", site, "--date", "2024-08-26", "--csv").stdout
    gates = [line for line in out.splitlines() if line.startswith("gates,")]
    assert gates == ["gates,gate,passes,screened,fevers,implausible,out,clock_skew",
                     "gates,G31,1,0,0,0,0,1", "gates,G32,0,0,0,0,0,0"], out
    assert d.alive()


def test_passes_without_reading_in_other_formats(env, cordond, ctl):
    """Siblings: a canonical card reader's pass (no temp_c) going out of a
    household in isolation raises isolation_breach; an EZVIZ element and a
    DIY reading without a temperature are stored as passes; a Hikvision door
    event (5/21, nobody named) and a canonical payload naming nobody are
    not passes: missing_temperature, nothing stored."""
    site, hh = "nr4", "5-3-101"
    import_households(env, ctl, site, [(hh, ["IB-1"])], PHONE)
    ctl("isolate", site, "--household", hh)
    env.pg.query("UPDATE isolation_orders SET starts_at = starts_at - interval '1 minute'"
                 " WHERE site = %s", (site,))
    d = start(env, cordond)
    ezviz = {"header": {"messageId": "m-1", "type": "ys.open.face", "deviceId": "E61923481",
                        "channelNo": 1, "messageTime": 1581849124998},
             "content": json.dumps([{"id": "e-1", "faceTime": "2020-02-16 18:32:00.123",
                                     "cardNo": "IB-1", "mask": "yes"}])}
    door = {"ipAddress": "10.6.1.21", "dateTime": "2020-02-16T18:32:00+08:00",
            "eventType": "AccessControllerEvent",
            "AccessControllerEvent": {"majorEventType": 5, "subEventType": 21, "serialNo": 77,
                                      "mask": "unknown"}}
    ev = "cordon/%s/gate/%%s/event" % site
    publish_many(env.broker.port, [
        gate_event(site, "G41", "R-1", card="IB-1", person="", direction="out",
                   drop=("temp_c",)),
        (ev % "G42", json.dumps(ezviz).encode()),
        (ev % "G43", b'{"temp":null,"card":"IB-1","id":"r-1"}'),
        (ev % "G44", json.dumps(door).encode()),
        gate_event(site, "G41", "R-2", card="", person="", drop=("temp_c",)),
    ])
    wait_until(lambda: len(rows(env, site)) == 3 and len(rejects(env, site)) == 2,
               what=lambda: "3 passes and 2 rejects (have %r, %r)"
               % (rows(env, site), rejects(env, site)))
    assert rows(env, site) == [
        ("nr4/G41/R-1", "G41", "IB-1", "", None, "canonical"),
        ("nr4/G42/e-1", "G42", "IB-1", "", None, "ezviz"),
        ("nr4/G43/r-1", "G43", "IB-1", "", None, "diy")]
    assert rejects(env, site) == [(ev % "G41", "missing_temperature"),
                                  (ev % "G44", "missing_temperature")]
    got = wait_alerts(env, site, 1)
    assert got == [("isolation_breach", "household:" + hh, "raised", "", "IB-1",
                    "nr4/G41/R-1")], got
    ctl("release", site, "--household", hh)
    assert d.alive()


def test_passes_without_reading_in_envelopes(env, cordond, ctl):
    """Envelopes (issue 14 point 6) hold passes without a reading too: a
    Hikvision AcsEvent search answer with a reading, a refused card without
    currTemperature and a door unlocked (5/21, nobody named), and a Dahua
    RPC2 notification with a card reader's AccessControl element (no
    ManTemperatureInfo) and a remote open (CardNo ""). The two card passes
    are rows with temp_c NULL and raise unknown_card; the door events are
    skipped; an answer holding door events only is the reject no_events."""
    site = "nr6"
    import_households(env, ctl, site, [("6-1-101", ["C-0412"])], PHONE)
    d = start(env, cordond)
    hik, dahua = "cordon/%s/gate/G61/event" % site, "cordon/%s/gate/G62/event" % site

    def acs(*records):
        return json.dumps({"AcsEvent": {"searchID": "7", "responseStatusStrg": "OK",
                                        "numOfMatches": len(records), "totalMatches": 9,
                                        "InfoList": list(records)}}).encode()
    door = {"major": 5, "minor": 21, "time": "2020-02-16T18:31:58+08:00", "doorNo": 1,
            "serialNo": 6001}
    answer = acs(door,
                 {"major": 5, "minor": 9, "time": "2020-02-16T18:32:00+08:00",
                  "cardNo": "C-9911", "cardType": 1, "doorNo": 1, "serialNo": 6002,
                  "mask": "unknown"},
                 {"major": 5, "minor": 75, "time": "2020-02-16T18:32:05+08:00",
                  "cardNo": "C-0412", "employeeNoString": "7003", "serialNo": 6003,
                  "currTemperature": 36.6, "thermometryUnit": "celsius"})
    rpc2 = json.dumps({"id": 4, "method": "client.notifyEventStream", "params": {
        "SID": 513, "eventList": [
            {"Action": "Pulse", "Code": "AccessControl", "Index": 0,
             "Data": {"RecNo": 7901, "UTC": 1581849118, "CardNo": "", "Method": 4,
                      "Status": 1, "Door": 0}},
            {"Action": "Pulse", "Code": "AccessControl", "Index": 0,
             "Data": {"RecNo": 7902, "UTC": 1581849121, "CardNo": "C-9912", "UserID": "",
                      "Method": 1, "Status": 0, "ErrorCode": 16, "Type": "Entry"}}]},
        "session": 2147483638}).encode()
    publish_many(env.broker.port, [(hik, answer), (dahua, rpc2),
                                   (hik, acs(door, dict(door, minor=23, serialNo=6004)))])
    want_rows = [("nr6/G61/6002", "G61", "C-9911", "", None, "hikvision"),
                 ("nr6/G61/6003", "G61", "C-0412", "7003", Decimal("36.6"), "hikvision"),
                 ("nr6/G62/7902", "G62", "C-9912", "", None, "dahua")]
    wait_until(lambda: rows(env, site) == want_rows and rejects(env, site) == [(hik, "no_events")],
               what=lambda: "3 passes and 1 reject (have %r, %r)"
               % (rows(env, site), rejects(env, site)))
    got = wait_alerts(env, site, 2)
    assert got == [
        ("unknown_card", "card:C-9911", "raised", "unregistered", "C-9911", "nr6/G61/6002"),
        ("unknown_card", "card:C-9912", "raised", "unregistered", "C-9912", "nr6/G62/7902")], got
    assert d.alive()


def test_field_cases_07_wecom_open_userid_rechecked(env, cordond):
    """07a then 07b (five minutes later on the device's clock): WeCom names
    the person by open_userid; the fever's subject is that person and the
    normal re-check resolves it as rechecked. Both device times are years
    off (clock_skew): the rules use the receive times, seconds apart."""
    site = "nr7"
    topic = "cordon/%s/gate/G71/event" % site
    d = cordond()
    publish_many(env.broker.port, [(topic, field("07a-wecom-open-userid-fever.json"))])
    got = wait_alerts(env, site, 1)
    assert [(k, s, st) for k, s, st, *_ in got] == [("fever", "person:wo-7Hq2xK", "raised")], got
    publish_many(env.broker.port, [(topic, field("07b-wecom-open-userid-recheck.json"))])

    def resolved():
        a = alerts(env, site)
        return len(a) == 1 and a[0][2] == "resolved" and a
    got = wait_until(resolved, what=lambda: "the fever rechecked (have %r)" % alerts(env, site))
    assert [(k, s, st, r) for k, s, st, r, *_ in got] == [
        ("fever", "person:wo-7Hq2xK", "resolved", "rechecked")], got
    assert sorted((p, str(t)) for _, _, _, p, t, _ in rows(env, site)) == [
        ("wo-7Hq2xK", "36.6"), ("wo-7Hq2xK", "38.1")]
    assert rejects(env, site) == []
    assert d.alive()
