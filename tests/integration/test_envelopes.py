"""Envelopes that bridges forward as they are (issue 14 point 6): a
Hikvision AcsEvent search answer (field case 01) and a Dahua RPC2
client.notifyEventStream (field case 05), published byte for byte from
tests/fixtures/field-cases/ (copies of shared/field-cases): one row per
element at the right UTC time and temperature, a fever alert for the
feverish one only, and an empty answer in rejects as no_events. Waits are
bounded; nothing is timed."""

import datetime
import json
import os

import harness
from harness import publish_many, wait_until

FIELD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "field-cases")


def field(name):
    with open(os.path.join(FIELD, name), "rb") as f:
        return f.read()


def rows(env, site):
    return env.pg.query(
        "SELECT event_key, gate, extract(epoch FROM ts)::bigint, temp_c::text, person, card,"
        " mask, direction, 'device_abnormal' = ANY(flags), vendor"
        " FROM gate_events WHERE site = %s ORDER BY event_key", (site,))


def fevers(env, site):
    return env.pg.query(
        "SELECT subject, temp_c::text, event_key, gate FROM alerts"
        " WHERE site = %s AND kind = 'fever' ORDER BY subject", (site,))


def test_hikvision_acsevent_search_response(env, cordond):
    d = cordond()
    site = "eh"
    topic = "cordon/%s/gate/G03/event" % site
    # Field case 01, then the same answer again (a bridge that polls the
    # same window twice): its serialNo keys store each record once.
    publish_many(env.broker.port, [(topic, field("01-hik-acsevent-search-response.json"))])
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (site,)) == 2,
               what="one row per InfoList element")
    wait_until(lambda: len(fevers(env, site)) == 1, what="the fever alert")
    # 2024-01-09T16:51:51-00:00 and 16:52:10 UTC.
    assert rows(env, site) == [
        ("%s/G03/4101" % site, "G03", 1704819111, "37.9", "7001", None, True, None, True,
         "hikvision"),
        ("%s/G03/4102" % site, "G03", 1704819130, "36.4", "7002", None, False, None, False,
         "hikvision"),
    ]
    assert fevers(env, site) == [("person:7001", "37.9", "%s/G03/4101" % site, "G03")]

    # An answer with nothing in it ("NO MATCH") carries no event: a reject
    # with a reason that says so; the answer polled again stores nothing new.
    empty = json.dumps({"AcsEvent": {"searchID": "1", "responseStatusStrg": "NO MATCH",
                                     "numOfMatches": 0, "totalMatches": 0}}).encode()
    publish_many(env.broker.port, [(topic, empty),
                                   (topic, field("01-hik-acsevent-search-response.json"))])
    wait_until(lambda: env.pg.count("rejects", "topic = %s", (topic,)) == 1, what="the reject")
    assert env.pg.query("SELECT reason FROM rejects WHERE topic = %s", (topic,)) == \
        [("no_events",)]
    assert env.pg.count("gate_events", "site = %s", (site,)) == 2
    assert len(fevers(env, site)) == 1
    assert d.alive()


def test_dahua_rpc2_notify_eventlist(env, cordond):
    d = cordond()
    site = "ed"
    topic = "cordon/%s/gate/G07/event" % site
    # Field case 05, and a sibling: a client attached to codes [All] gets
    # other kinds in the same list (skipped), and two access events.
    sibling = json.dumps({"id": 3, "method": "client.notifyEventStream", "params": {
        "SID": 513, "eventList": [
            {"Action": "Start", "Code": "VideoMotion", "Index": 0,
             "Data": {"UTC": 1585587530}},
            {"Action": "Pulse", "Code": "AccessControl", "Index": 0,
             "Data": {"RecNo": 7723, "UTC": 1585587531, "CardNo": "C-0890", "UserID": "3303",
                      "Type": "Exit",
                      "ManTemperatureInfo": {"CurrentTemperature": 36.6, "TemperatureUnit": 0}}},
            {"Action": "Pulse", "Code": "AccessControl", "Index": 0,
             "Data": {"RecNo": 7724, "UTC": 1585587533, "CardNo": "C-0891", "UserID": "3304",
                      "Type": "Entry", "CurrentTemperature": 101.3, "TemperatureUnit": 1}}]},
        "session": 2147483638}).encode()
    publish_many(env.broker.port, [(topic, field("05-dahua-rpc2-notify-eventlist.json")),
                                   (topic, sibling)])
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (site,)) == 3,
               what="one row per AccessControl element")
    wait_until(lambda: len(fevers(env, site)) == 2, what="the fever alerts")
    assert rows(env, site) == [
        ("%s/G07/7722" % site, "G07", 1585587525, "38.0", "3302", "C-0889", None, "in", True,
         "dahua"),
        ("%s/G07/7723" % site, "G07", 1585587531, "36.6", "3303", "C-0890", None, "out", False,
         "dahua"),
        ("%s/G07/7724" % site, "G07", 1585587533, "38.5", "3304", "C-0891", None, "in", False,
         "dahua"),
    ]
    assert fevers(env, site) == [("person:3302", "38.0", "%s/G07/7722" % site, "G07"),
                                 ("person:3304", "38.5", "%s/G07/7724" % site, "G07")]
    assert env.pg.count("rejects", "topic = %s", (topic,)) == 0
    assert d.alive()


def test_diy_firmware_json_on_pinned_gate(env, cordond):
    """Tasmota's SENSOR telemetry and ESPHome's web server state on a gate
    registered --format diy; the same Tasmota message on an unpinned gate is
    not taken by shape."""
    site = "ey"
    conf = harness.cordonctl_config(env.dir, env.pg.conninfo, name="envelopes-ctl.conf")
    harness.cordonctl(conf, "migrate", expect=0)
    harness.cordonctl(conf, "gate", "add", site, "G22", "--format", "diy", expect=0)
    d = cordond()
    wait_until(lambda: d.log().count("register loaded") >= 1, what="cordond loading the register")
    # Tasmota's Time is the device's local time: the site's zone (Asia/Shanghai).
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    local = (now + datetime.timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S")
    tasmota = json.dumps({"Time": local, "SHT3X": {"Temperature": 22.1, "Humidity": 40.2},
                          "MLX90614": {"OBJTMP": 37.6, "AMBTMP": 22.0},
                          "TempUnit": "C"}).encode()
    esphome = json.dumps({"id": "sensor-gate_body_temperature", "value": 97.7,
                          "state": "97.7 \u00b0F"}).encode()
    pinned = "cordon/%s/gate/G22/event" % site
    unpinned = "cordon/%s/gate/G23/event" % site
    publish_many(env.broker.port, [(pinned, tasmota), (pinned, esphome), (unpinned, tasmota)])
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (site,)) == 2, what="two readings")
    wait_until(lambda: env.pg.count("rejects", "topic = %s", (unpinned,)) == 1, what="the reject")
    got = env.pg.query("SELECT temp_c::text, extract(epoch FROM ts)::bigint, vendor"
                       " FROM gate_events WHERE site = %s ORDER BY temp_c", (site,))
    assert [(t, v) for t, _, v in got] == [("36.5", "diy"), ("37.6", "diy")]
    assert got[1][1] == int(now.timestamp())
    assert env.pg.query("SELECT reason FROM rejects WHERE topic = %s", (unpinned,)) == \
        [("unknown_format",)]
    wait_until(lambda: len(fevers(env, site)) == 1, what="the fever alert")
    assert fevers(env, site)[0][1] == "37.6"
    assert d.alive()
