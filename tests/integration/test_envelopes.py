"""Envelopes that bridges forward as they are (issue 14 point 6): a
Hikvision AcsEvent search answer (field case 01) and a Dahua RPC2
client.notifyEventStream (field case 05), published byte for byte from
tests/fixtures/field-cases/ (copies of shared/field-cases): one row per
element at the right UTC time and temperature, a fever alert for the
feverish one only, and an empty answer in rejects as no_events; an EZVIZ
body array retried by EZVIZ (same messageId) stored once; WeCom's
get_temperature_data reply (temperature_data.items[]) one row per item,
a fever alert for the feverish one, and a WeCom error reply in rejects as
vendor_error. Waits are bounded; nothing is timed."""

import datetime
import json

import harness
from harness import field, publish_many, wait_until


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


def test_ezviz_retry_of_a_list(env, cordond):
    """EZVIZ retries a message with the same header.messageId (a new
    publish, not a broker replay): the elements of a body array without
    their own id are keyed <messageId>:<i>, so the retry stores nothing
    twice; before, each element had a per-delivery key and every row
    doubled. A later message (an event with its own id) is the marker that
    the retry was processed: rows are stored in the order they arrive."""
    d = cordond()
    site = "ez"
    topic = "cordon/%s/gate/G11/event" % site

    def message(mid, events):
        return json.dumps({"header": {"type": "ys.open.face", "deviceId": "E61923481",
                                      "channelNo": 1, "messageId": mid,
                                      "messageTime": 1581849121456},
                           "body": events}).encode()

    two = [{"faceTime": "2020-02-16 18:32:01.250", "employeeNo": "2405", "mask": "Yes ",
            "temperature": {"currTemperature": 38.2, "thermometryUnit": "celsius",
                            "isAbnomalTemperature": True}},
           {"faceTime": "2020-02-16 18:32:03.500", "cardNo": "C-6"}]
    publish_many(env.broker.port, [(topic, message("5e57f239793f2b007fecb0de", two))])
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (site,)) == 2,
               what="one row per body element")
    # The retry, then the marker.
    marker = [{"id": "mark-1", "faceTime": "2020-02-16 18:33:00.000", "employeeNo": "2406",
               "temperature": {"currTemperature": 36.5}}]
    publish_many(env.broker.port, [(topic, message("5e57f239793f2b007fecb0de", two)),
                                   (topic, message("5e57f239793f2b007fecb0df", marker))])
    wait_until(lambda: env.pg.count("gate_events", "event_key = %s",
                                    ("%s/G11/mark-1" % site,)) == 1,
               what="the marker row")
    got = env.pg.query("SELECT event_key, temp_c::text, person, card, mask FROM gate_events"
                       " WHERE site = %s ORDER BY event_key", (site,))
    assert got == [
        ("%s/G11/5e57f239793f2b007fecb0de:0" % site, "38.2", "2405", None, True),
        ("%s/G11/5e57f239793f2b007fecb0de:1" % site, None, None, "C-6", None),
        ("%s/G11/mark-1" % site, "36.5", "2406", None, None),
    ], got
    wait_until(lambda: len(fevers(env, site)) == 1, what="the fever alert")
    assert fevers(env, site) == [("person:2405", "38.2",
                                  "%s/G11/5e57f239793f2b007fecb0de:0" % site, "G11")]
    assert env.pg.count("rejects", "topic = %s", (topic,)) == 0
    assert d.alive()


def test_wecom_get_temperature_data_reply(env, cordond):
    """WeCom's get_temperature_data reply as a bridge polling the API
    forwards it: each element of temperature_data.items is a record (the
    open_userid is the person), the one WeCom marks fever (status 1, 38.1)
    raises the fever alert for person:<open_userid>; an error reply
    (errcode != 0) carries no data: vendor_error with its errmsg. A record
    in the next, overlapping poll is stored once (key person@time)."""
    d = cordond()
    site = "ew"
    topic = "cordon/%s/gate/G15/event" % site
    now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
    reply = json.dumps({"errcode": 0, "errmsg": "ok", "temperature_data": {"items": [
        {"open_userid": "wo-userid1", "user_type": 0, "timestamp": now - 30,
         "temperature": "36.7", "status": 0},
        {"open_userid": "wo-userid2", "user_type": 2, "timestamp": now - 20,
         "temperature": "38.1", "status": 1}]}, "next_cursor": "c2V0MQ"}).encode()
    error = json.dumps({"errcode": 40014, "errmsg": "invalid access_token"}).encode()
    publish_many(env.broker.port, [(topic, reply), (topic, error)])
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (site,)) == 2,
               what="one row per item")
    wait_until(lambda: env.pg.count("rejects", "topic = %s", (topic,)) == 1, what="the reject")
    got = [r[1:] for r in rows(env, site)]
    assert sorted(got) == [
        ("G15", now - 30, "36.7", "wo-userid1", None, None, None, False, "wecom"),
        ("G15", now - 20, "38.1", "wo-userid2", None, None, None, True, "wecom"),
    ], got
    wait_until(lambda: len(fevers(env, site)) == 1, what="the fever alert")
    subject, temp, key, gate = fevers(env, site)[0]
    assert (subject, temp, gate) == ("person:wo-userid2", "38.1", "G15")
    assert key == env.pg.query("SELECT event_key FROM gate_events WHERE site = %s"
                               " AND person = 'wo-userid2'", (site,))[0][0]
    reason, detail = env.pg.query("SELECT reason, detail FROM rejects WHERE topic = %s",
                                  (topic,))[0]
    assert reason == "vendor_error"
    assert "40014" in detail and "invalid access_token" in detail, detail
    assert key == "%s/G15/wo-userid2@%d000" % (site, now - 20)
    # The API "may return the same records again": the next poll's window
    # overlaps; each person measured at one instant is stored once.
    again = json.dumps({"errcode": 0, "errmsg": "ok", "temperature_data": {"items": [
        {"open_userid": "wo-userid2", "user_type": 2, "timestamp": now - 20,
         "temperature": "38.1", "status": 1},
        {"open_userid": "wo-userid3", "user_type": 0, "timestamp": now - 10,
         "temperature": "36.5", "status": 0}]}}).encode()
    publish_many(env.broker.port, [(topic, again)])
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (site,)) == 3,
               what="the new record of the overlapping poll")
    assert env.pg.count("gate_events", "site = %s AND person = 'wo-userid2'", (site,)) == 1
    assert len(fevers(env, site)) == 1
    assert d.alive()
