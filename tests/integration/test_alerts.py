"""The alert engine end to end (SPEC 2 outbound topics, 4 catalogue, G2, G3):
every kind raised and resolved through a real broker, PostgreSQL and
cordond; the lifecycle (dedupe, retained state, acks), alerts during a
PostgreSQL outage, across SIGKILL and across a restart; reject notices.

Each test works on its own site and looks only at that site's topics and
rows: the module's broker and PostgreSQL are shared, and cordond restores
the open alerts of earlier tests at start. Timer rules are driven by short
intervals in config overrides or in register rows written by SQL (cordonctl
refuses intervals under a minute). Waits are bounded; nothing is timed.
"""

import datetime
import json
import os
import re
import signal
import subprocess
import time

from harness import (Collector, Stream, field, gate_event, import_households, now_ts,
                     publish_many, register_loads, wait_register_loaded, wait_until)

LONG = 120
PHONE = "18012341999"          # a household's contact phone: must never leave the database
ALERT_KEYS = {"alert_id", "kind", "severity", "state", "transition", "site", "subject",
              "raised_at", "updated_at", "count", "event_id", "gate", "household", "temp_c",
              "text"}
OLD_TS = "2020-02-16T18:32:00.123+08:00"   # skewed: rules use the receive time


# ---------------------------------------------------------------- helpers

def pub(env, topic, body):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    publish_many(env.broker.port, [(topic, payload)])


def changed(d, fn):
    """Run fn (a register change that NOTIFYs) and wait until cordond reloaded."""
    before = register_loads(d)
    out = fn()
    wait_until(lambda: register_loads(d) > before, what="cordond reloading the register")
    return out


def notify(env, site):
    env.pg.query("NOTIFY cordon_register, %s", (site,))


class Alerts:
    """Alert transitions of one site (or _daemon) as received on
    cordon/<site>/alert/#, plus that site's reject notices."""

    def __init__(self, port, site):
        self.site = site
        self.col = Collector(port, "cordon/%s/#" % site)

    def close(self):
        self.col.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def all(self, kind=None):
        out = []
        prefix = "cordon/%s/alert/" % self.site
        for topic, payload in self.col.snapshot():
            if not topic.startswith(prefix):
                continue
            assert PHONE.encode() not in payload, "an alert carries a phone number: %r" % payload
            a = json.loads(payload)
            assert topic == prefix + a["kind"], (topic, a)
            if kind is None or a["kind"] == kind:
                out.append(a)
        return out

    def wait(self, kind, transition, pred=lambda a: True, timeout=LONG):
        def found():
            return next((a for a in self.all(kind)
                         if a["transition"] == transition and pred(a)), None)
        return wait_until(found, timeout, what=lambda: "%s %s on %s (have %r)" % (
            kind, transition, self.site,
            [(a["kind"], a["transition"], a["subject"]) for a in self.all()]))

    def rejects(self):
        topic = "cordon/%s/reject" % self.site
        return [p for t, p in self.col.snapshot() if t == topic]

    def retained(self):
        prefix = "cordon/%s/alerts/" % self.site
        return [(t, p) for t, p in self.col.snapshot() if t.startswith(prefix)]


def check_message(a, kind, site, severity, subject, state, transition):
    missing = ALERT_KEYS - set(a)
    assert not missing, "alert lacks %s: %r" % (missing, a)
    assert a["kind"] == kind, a
    assert a["site"] == site, a
    assert a["severity"] == severity, a
    assert a["subject"] == subject, a
    assert a["state"] == state, a
    assert a["transition"] == transition, a
    assert re.fullmatch(r"[0-9a-f]{32}", a["alert_id"]), a
    assert isinstance(a["text"], str) and a["text"], a
    assert isinstance(a["count"], int) and a["count"] >= 1, a


def row(env, alert_id):
    rows = env.pg.query("SELECT site, kind, severity, state, subject, count, reason, by_whom"
                        " FROM alerts WHERE alert_id = %s", (alert_id,))
    if not rows:
        return None
    keys = ("site", "kind", "severity", "state", "subject", "count", "reason", "by_whom")
    return dict(zip(keys, rows[0]))


def wait_row(env, alert_id, state, timeout=LONG):
    def ok():
        r = row(env, alert_id)
        return r if r and r["state"] == state else None
    return wait_until(ok, timeout, what=lambda: "alert %s %s in PostgreSQL (row %r)"
                      % (alert_id, state, row(env, alert_id)))


def resealed_by(env, al, site, alert_id, status_id):
    """Wait until sealed_gate alert_id is resolved "re-sealed" on the broker
    and in PostgreSQL, and check that it was resolved at the time of the
    gate status message status_id (its ts), not of another one."""
    res = al.wait("sealed_gate", "resolved", lambda x: x["alert_id"] == alert_id)
    assert res["reason"] == "re-sealed", res
    wait_row(env, alert_id, "resolved")
    at, ts = env.pg.query(
        "SELECT a.resolved_at, s.ts FROM alerts a, gate_status s WHERE a.alert_id = %s"
        " AND s.site = %s AND s.event_key LIKE %s", (alert_id, site, "%" + status_id))[0]
    assert at == ts, (at, ts)


def transitions(env, alert_id):
    return [t for (t,) in env.pg.query("SELECT transition FROM alert_transitions"
                                       " WHERE alert_id = %s ORDER BY at, count", (alert_id,))]


def wait_transitions(env, alert_id, expected, timeout=LONG):
    wait_until(lambda: set(expected) <= set(transitions(env, alert_id)), timeout,
               what=lambda: "transitions %r of %s (have %r)"
               % (expected, alert_id, transitions(env, alert_id)))


def ack(env, site, alert_id, action, by="op-1", note=None):
    body = {"alert_id": alert_id, "by": by, "action": action}
    if note:
        body["note"] = note
    pub(env, "cordon/%s/ack" % site, body)


def check(site, hh, kid, person=None, temp_c=None, symptoms=None, ts=OLD_TS):
    body = {"id": kid, "ts": ts}
    if person:
        body["person"] = person
    if temp_c is not None:
        body["temp_c"] = temp_c
    if symptoms is not None:
        body["symptoms"] = symptoms
    return "cordon/%s/isolation/%s/check" % (site, hh), json.dumps(body).encode()


def daytime_zone():
    """A time zone where it is now between 07:00 and 20:59 local time."""
    from zoneinfo import ZoneInfo
    for name in ("Asia/Shanghai", "Europe/London", "America/New_York", "Asia/Tokyo",
                 "America/Los_Angeles", "Asia/Kolkata", "Europe/Moscow", "Pacific/Auckland",
                 "America/Sao_Paulo", "Asia/Dubai", "Pacific/Honolulu", "Europe/Berlin"):
        if 7 <= datetime.datetime.now(ZoneInfo(name)).hour <= 20:
            return name
    raise AssertionError("no daytime zone found")


# ---------------------------------------------------------------- fever

def test_fever_threshold_between_tenths(env, cordond):
    """The rules take [rules] fever_c to a tenth as --check-config and the
    reload log print it (temp.c, one rounding): 36.6499999 is printed 36.7,
    so 36.6 is no fever and 36.7 is one. (The rules had their own rounding,
    fever_c * 10 + 0.5 truncated: 366, a fever at 36.6.)"""
    site = "aft"
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"fever_c": "36.6499999"}})
        shown = subprocess.run([os.environ["CORDOND"], "--check-config", "-c", d.conffile],
                               capture_output=True, text=True, check=True).stdout
        assert "\nfever_c = 36.7\n" in shown, shown
        wait_register_loaded(d)
        publish_many(env.broker.port, [
            gate_event(site, "G03", "T-1", card="C-0412", person="P-1", temp_c=36.6),
            gate_event(site, "G03", "T-2", card="C-0413", person="P-2", temp_c=36.7),
        ])
        warn = al.wait("fever", "raised", lambda a: a["subject"] == "person:P-2")
        assert warn["temp_c"] == 36.7
        # One publisher, one topic, QoS 1: a fever of T-1 (judged first)
        # would have come before T-2's.
        assert [a["subject"] for a in al.all("fever")] == ["person:P-2"], al.all("fever")


def test_fever_raised_and_resolved(env, cordond):
    site = "af"
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"recheck_window": "10m"}})
        wait_register_loaded(d)
        publish_many(env.broker.port, [
            gate_event(site, "G03", "F-1", card="C-0412", person="P-1", temp_c=38.6),
            gate_event(site, "G03", "F-2", card="C-0413", person="P-2", temp_c=37.5),
        ])
        crit = al.wait("fever", "raised", lambda a: a["subject"] == "person:P-1")
        check_message(crit, "fever", site, "critical", "person:P-1", "raised", "raised")
        assert crit["temp_c"] == 38.6 and crit["gate"] == "G03" and crit["card"] == "C-0412"
        assert crit["event_id"] == "%s/G03/F-1" % site
        assert crit["count"] == 1
        assert "38.6" in crit["text"] and "G03" in crit["text"], crit["text"]
        warn = al.wait("fever", "raised", lambda a: a["subject"] == "person:P-2")
        check_message(warn, "fever", site, "warning", "person:P-2", "raised", "raised")
        assert warn["temp_c"] == 37.5
        assert crit["alert_id"] != warn["alert_id"]

        # A normal re-check of P-1 within recheck_window: rechecked.
        pub(env, *gate_event(site, "G01", "F-3", card="C-0412", person="P-1", temp_c=36.5))
        res = al.wait("fever", "resolved", lambda a: a["alert_id"] == crit["alert_id"])
        check_message(res, "fever", site, "critical", "person:P-1", "resolved", "resolved")
        assert res["reason"] == "rechecked", res
        # The operator resolves P-2's.
        ack(env, site, warn["alert_id"], "resolve", by="op-9")
        res2 = al.wait("fever", "resolved", lambda a: a["alert_id"] == warn["alert_id"])
        assert res2["reason"] == "operator" and res2["by"] == "op-9", res2

        r = wait_row(env, crit["alert_id"], "resolved")
        assert (r["site"], r["kind"], r["severity"], r["subject"], r["reason"]) == \
            (site, "fever", "critical", "person:P-1", "rechecked")
        r = wait_row(env, warn["alert_id"], "resolved")
        assert (r["severity"], r["reason"], r["by_whom"]) == ("warning", "operator", "op-9")
        wait_transitions(env, crit["alert_id"], ["raised", "resolved"])
        wait_transitions(env, warn["alert_id"], ["raised", "resolved"])
        assert env.pg.scalar("SELECT temp_c::text FROM alerts WHERE alert_id = %s",
                             (crit["alert_id"],)) == "38.6"
        assert d.alive()


# ---------------------------------------------------------------- isolation

def test_isolation_overdue_raised_and_resolved(env, cordond, ctl):
    site, hh = "aio", "5-1-101"
    import_households(env, ctl, site, [(hh, ["IO-1"])], PHONE)
    env.pg.query("INSERT INTO isolation_orders (site, household, person, ends_at, check_interval_s)"
                 " VALUES (%s, %s, 'P-51', now() + interval '1 day', 3)", (site, hh))
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"check_grace": "1s"}})
        wait_register_loaded(d)
        a = al.wait("isolation_overdue", "raised")
        check_message(a, "isolation_overdue", site, "warning", "person:P-51", "raised", "raised")
        assert a["household"] == hh
        assert "P-51" in a["text"] and hh in a["text"], a["text"]

        pub(env, *check(site, hh, "K-1", person="P-51", temp_c=36.4))
        res = al.wait("isolation_overdue", "resolved", lambda x: x["alert_id"] == a["alert_id"])
        assert res["reason"] == "checked in", res
        r = wait_row(env, a["alert_id"], "resolved")
        assert r["kind"] == "isolation_overdue" and r["reason"] == "checked in"
        wait_transitions(env, a["alert_id"], ["raised", "resolved"])
        ctl("release", site, "--household", hh)
        assert d.alive()


def test_isolation_symptom_raised_and_resolved(env, cordond, ctl):
    site, hh = "ais", "5-2-101"
    import_households(env, ctl, site, [(hh, ["IS-1"])], PHONE)
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        pub(env, *check(site, hh, "K-1", person="P-52", symptoms=["cough", "fatigue"]))
        a = al.wait("isolation_symptom", "raised")
        check_message(a, "isolation_symptom", site, "warning", "person:P-52", "raised", "raised")
        assert a["household"] == hh
        assert "cough" in a["text"], a["text"]
        ack(env, site, a["alert_id"], "resolve")
        res = al.wait("isolation_symptom", "resolved")
        assert res["alert_id"] == a["alert_id"] and res["reason"] == "operator"
        r = wait_row(env, a["alert_id"], "resolved")
        assert r["by_whom"] == "op-1"
        assert d.alive()


def test_isolation_breach_raised_and_resolved(env, cordond, ctl):
    site, hh = "aib", "5-3-101"
    import_households(env, ctl, site, [(hh, ["IB-1"]), ("5-3-102", ["IB-2"])], PHONE)
    ctl("isolate", site, "--household", hh)
    # backdated: an order that starts at this very moment is the next test's case
    env.pg.query("UPDATE isolation_orders SET starts_at = starts_at - interval '1 minute'"
                 " WHERE site = %s", (site,))
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        publish_many(env.broker.port, [
            gate_event(site, "G01", "B-1", card="IB-1", person="P-1", direction="in"),
            gate_event(site, "G01", "B-2", card="IB-2", person="P-2", direction="out"),
            gate_event(site, "G01", "B-3", card="IB-1", person="P-1", direction="out"),
        ])
        a = al.wait("isolation_breach", "raised")
        check_message(a, "isolation_breach", site, "critical", "household:" + hh, "raised", "raised")
        assert a["event_id"] == "%s/G01/B-3" % site, a   # not the inward pass, not 5-3-102
        assert a["card"] == "IB-1" and a["gate"] == "G01" and a["household"] == hh
        ack(env, site, a["alert_id"], "resolve")
        res = al.wait("isolation_breach", "resolved")
        assert res["alert_id"] == a["alert_id"]
        wait_row(env, a["alert_id"], "resolved")
        assert len(al.all("isolation_breach")) == 2, al.all("isolation_breach")
        ctl("release", site, "--household", hh)
        assert d.alive()


def test_isolation_breach_just_after_order_start(env, cordond, ctl):
    """An outward pass right after an order was made (same second) is a
    breach. The order is made at .6 s past a whole second, so that a start
    time rounded to whole seconds would lie after the pass."""
    site, hh = "aib2", "5-4-101"
    import_households(env, ctl, site, [(hh, ["IB-9"])], PHONE)
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        wait_until(lambda: 0.55 <= time.time() % 1 <= 0.65, interval=0.005,
                   what="the wall clock at .6 s")
        changed(d, lambda: env.pg.query(
            "INSERT INTO isolation_orders (site, household, ends_at) VALUES"
            " (%s, %s, now() + interval '1 day'); NOTIFY cordon_register, %s", (site, hh, site)))
        pub(env, *gate_event(site, "G01", "B-9", card="IB-9", person="P-9", direction="out"))
        a = al.wait("isolation_breach", "raised", timeout=15)
        assert a["event_id"] == "%s/G01/B-9" % site
        ctl("release", site, "--household", hh)
        assert d.alive()


# ---------------------------------------------------------------- gates

def test_sealed_gate_raised_and_resealed(env, cordond, ctl):
    site = "asg"
    ctl("gate", "add", site, "G09", "--sealed")
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        pub(env, *gate_event(site, "G09", "S-1", card="C-0412", person="P-1"))
        a = al.wait("sealed_gate", "raised")
        check_message(a, "sealed_gate", site, "critical", "gate:G09", "raised", "raised")
        assert a["gate"] == "G09" and "G09" in a["text"]
        pub(env, "cordon/%s/gate/G09/status" % site, b"closed")
        res = al.wait("sealed_gate", "resolved")
        assert res["alert_id"] == a["alert_id"] and res["reason"] == "re-sealed", res
        r = wait_row(env, a["alert_id"], "resolved")
        assert r["reason"] == "re-sealed"

        pub(env, "cordon/%s/gate/G09/status" % site,
            {"state": "forced", "ts": now_ts(), "id": "ST-1"})
        f = al.wait("sealed_gate", "raised", lambda x: x["alert_id"] != a["alert_id"])
        check_message(f, "sealed_gate", site, "critical", "gate:G09", "raised", "raised")
        assert "forced" in f["text"], f["text"]
        wait_row(env, f["alert_id"], "raised")
        pub(env, "cordon/%s/gate/G09/status" % site, {"state": "closed", "ts": now_ts(), "id": "ST-2"})
        al.wait("sealed_gate", "resolved", lambda x: x["alert_id"] == f["alert_id"])
        wait_row(env, f["alert_id"], "resolved")
        assert d.alive()


def test_sealed_gate_states_out_of_order(env, cordond, ctl):
    """Issue 14.4: a gate's `closed` (dated later) arrives before its
    `forced` (dated earlier): the forced is on record (raised, then
    resolved re-sealed at the closed's time) and no alert stays open. Then
    a forced arrives before an older closed: the alert stays open."""
    site = "aso"
    topic = "cordon/%s/gate/G09/status" % site
    ctl("gate", "add", site, "G09", "--sealed")
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        pub(env, topic, {"state": "closed", "ts": now_ts(-20), "id": "ST-2"})
        wait_until(lambda: env.pg.count("gate_status", "site = %s", (site,)) == 1, LONG,
                   what="the closed stored")
        pub(env, topic, {"state": "forced", "ts": now_ts(-40), "id": "ST-1"})
        a = al.wait("sealed_gate", "raised")
        res = al.wait("sealed_gate", "resolved")
        assert res["alert_id"] == a["alert_id"] and res["reason"] == "re-sealed", res
        wait_row(env, a["alert_id"], "resolved")
        # now the other way: forced (later) first, then an older closed
        pub(env, topic, {"state": "forced", "ts": now_ts(-5), "id": "ST-4"})
        f = al.wait("sealed_gate", "raised", lambda x: x["alert_id"] != a["alert_id"])
        wait_row(env, f["alert_id"], "raised")
        pub(env, topic, {"state": "closed", "ts": now_ts(-10), "id": "ST-3"})
        wait_until(lambda: env.pg.count("gate_status", "site = %s", (site,)) == 4, LONG,
                   what="the older closed stored")
        # a marker the same rules pass must handle after ST-3: a newer closed
        pub(env, topic, {"state": "closed", "ts": now_ts(), "id": "ST-5"})
        resealed_by(env, al, site, f["alert_id"], "ST-5")   # not by ST-3
        assert d.alive()


def test_sealed_gate_states_across_restart(env, cordond, ctl):
    """Issue 14.4: a sealed gate's latest `closed` and breach are restored
    at start (from gate_status). A `closed` stored before a restart, then a
    `forced` dated before it arriving after: raised and resolved re-sealed
    at once, nothing left open. A `forced` stored before a restart, then an
    older `closed` arriving after: the alert stays open (a newer closed
    resolves it, at its own time)."""
    site = "asr"
    topic = "cordon/%s/gate/G09/status" % site
    ctl("gate", "add", site, "G09", "--sealed")
    ctl("gate", "add", site, "G10", "--sealed")
    topic2 = "cordon/%s/gate/G10/status" % site
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        pub(env, topic, {"state": "closed", "ts": now_ts(-20), "id": "ST-2"})
        pub(env, topic2, {"state": "forced", "ts": now_ts(-5), "id": "ST-4"})
        f = al.wait("sealed_gate", "raised", lambda x: x["subject"] == "gate:G10")
        wait_row(env, f["alert_id"], "raised")
        wait_until(lambda: env.pg.count("gate_status", "site = %s", (site,)) == 2, LONG,
                   what="the closed and the forced stored")
        d.stop()
        before = register_loads(d)
        env.restart(d)
        wait_until(lambda: register_loads(d) > before, what="the register after the restart")
        pub(env, topic, {"state": "forced", "ts": now_ts(-40), "id": "ST-1"})
        a = al.wait("sealed_gate", "raised", lambda x: x["subject"] == "gate:G09")
        res = al.wait("sealed_gate", "resolved", lambda x: x["alert_id"] == a["alert_id"])
        assert res["reason"] == "re-sealed", res
        wait_row(env, a["alert_id"], "resolved")
        # G10: an older closed after the restart resolves nothing; a newer one does
        pub(env, topic2, {"state": "closed", "ts": now_ts(-10), "id": "ST-3"})
        wait_until(lambda: env.pg.count("gate_status", "site = %s", (site,)) == 4, LONG,
                   what="the older closed stored")
        pub(env, topic2, {"state": "closed", "ts": now_ts(), "id": "ST-5"})
        resealed_by(env, al, site, f["alert_id"], "ST-5")
        assert env.pg.count("alerts", "site = %s AND state <> 'resolved'", (site,)) == 0
        assert d.alive()


def test_sealed_gate_forced_twice(env, cordond, ctl):
    """A terminal that sends the bare word `forced` twice (resolved in
    between) must get a second alert that is stored as open: the second
    alert may not collide with the first one's id."""
    site = "asg2"
    ctl("gate", "add", site, "G09", "--sealed")
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        topic = "cordon/%s/gate/G09/status" % site
        pub(env, topic, b"forced")
        a = al.wait("sealed_gate", "raised")
        pub(env, topic, b"closed")
        al.wait("sealed_gate", "resolved")
        wait_row(env, a["alert_id"], "resolved")
        pub(env, topic, b"forced")
        wait_until(lambda: len([x for x in al.all("sealed_gate") if x["transition"] == "raised"]) == 2,
                   what="the second sealed_gate alert")
        second = [x for x in al.all("sealed_gate") if x["transition"] == "raised"][1]
        # Stored as an open alert (not folded into the resolved first one).
        wait_until(lambda: env.pg.count("alerts", "site = %s AND kind = 'sealed_gate'"
                                        " AND state = 'raised'", (site,)) == 1,
                   timeout=15, what=lambda: "the second alert stored open (ids %s, %s; rows %r)" % (
                       a["alert_id"], second["alert_id"],
                       env.pg.query("SELECT alert_id, state FROM alerts WHERE site = %s", (site,))))
        assert d.alive()


def test_gate_silent_raised_and_resolved(env, cordond, ctl):
    site = "agsl"
    ctl("gate", "add", site, "G05")
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"silence_timeout": "2s"}})
        wait_register_loaded(d)
        a = al.wait("gate_silent", "raised")
        check_message(a, "gate_silent", site, "warning", "gate:G05", "raised", "raised")
        assert a["gate"] == "G05" and "G05" in a["text"]
        pub(env, "cordon/%s/gate/G05/status" % site, {"state": "online", "ts": now_ts(), "id": "HB-1"})
        res = al.wait("gate_silent", "resolved")
        assert res["alert_id"] == a["alert_id"] and res["reason"] == "message received"
        wait_row(env, a["alert_id"], "resolved")
        wait_transitions(env, a["alert_id"], ["raised", "resolved"])
        # A sealed or inactive gate is never "silent".
        assert all(x["subject"] == "gate:G05" for x in al.all("gate_silent"))
        assert d.alive()


def test_unknown_card_raised_and_resolved(env, cordond, ctl):
    site = "auc"
    import_households(env, ctl, site, [("6-1-101", ["UC-1", "UC-2"])], PHONE)
    ctl("card", "revoke", site, "UC-2")
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        publish_many(env.broker.port, [
            gate_event(site, "G01", "U-1", card="UC-1", person="P-1"),      # registered
            gate_event(site, "G01", "U-2", card="XX-9", person="P-2"),      # not registered
            gate_event(site, "G01", "U-3", card="UC-2", person="P-3"),      # revoked
        ])
        wait_until(lambda: len(al.all("unknown_card")) >= 2, what="two unknown_card alerts")
        got = {a["subject"]: a for a in al.all("unknown_card")}
        assert set(got) == {"card:XX-9", "card:UC-2"}, got
        check_message(got["card:XX-9"], "unknown_card", site, "warning", "card:XX-9", "raised", "raised")
        assert "unregistered" in got["card:XX-9"]["text"], got["card:XX-9"]["text"]
        check_message(got["card:UC-2"], "unknown_card", site, "warning", "card:UC-2", "raised", "raised")
        assert "revoked" in got["card:UC-2"]["text"], got["card:UC-2"]["text"]
        ack(env, site, got["card:XX-9"]["alert_id"], "resolve")
        res = al.wait("unknown_card", "resolved")
        assert res["alert_id"] == got["card:XX-9"]["alert_id"] and res["reason"] == "operator"
        wait_row(env, res["alert_id"], "resolved")
        wait_row(env, got["card:UC-2"]["alert_id"], "raised")
        assert d.alive()


def test_exit_quota_raised_and_window_ends(env, cordond, ctl):
    site, hh = "aeq", "7-1-101"
    import_households(env, ctl, site, [(hh, ["EQ-1", "EQ-2"])], PHONE)
    # a carer's exception card: its passes do not count against the quota
    ctl("card", "add", site, "EQ-C", "--household", hh, "--extra")
    with Alerts(env.broker.port, site) as al:
        # exit_window is at least 60 s ([rules] refuses less). The passes are
        # dated 50 s ago (within max_clock_skew, so their device time is their
        # rule time): the window ends some 10 s after they are published.
        d = cordond({"rules": {"exit_quota": "1", "exit_window": "60s"}})
        wait_register_loaded(d)
        ts = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=50)
        ts = ts.isoformat(timespec="milliseconds")
        publish_many(env.broker.port, [
            # in order on one connection: were they counted, the second would raise
            gate_event(site, "G02", "C-1", card="EQ-C", person="P-9", direction="out", ts=ts),
            gate_event(site, "G02", "C-2", card="EQ-C", person="P-9", direction="out", ts=ts),
            gate_event(site, "G02", "C-3", card="EQ-C", person="P-9", direction="out", ts=ts),
            gate_event(site, "G01", "X-1", card="EQ-1", person="P-1", direction="out", ts=ts),
            gate_event(site, "G01", "X-2", card="EQ-1", person="P-1", direction="in", ts=ts),
            gate_event(site, "G01", "X-3", card="EQ-2", person="P-2", direction="out", ts=ts),
        ])
        a = al.wait("exit_quota", "raised")
        check_message(a, "exit_quota", site, "warning", "household:" + hh, "raised", "raised")
        assert a["event_id"] == "%s/G01/X-3" % site and a["household"] == hh
        res = al.wait("exit_quota", "resolved", timeout=LONG)
        assert res["alert_id"] == a["alert_id"] and res["reason"] == "window ended", res
        wait_row(env, a["alert_id"], "resolved")
        # one exit_quota alert, the ordinary card's: none from the carer's passes
        assert [x["event_id"] for x in al.all("exit_quota") if x["transition"] == "raised"] \
            == ["%s/G01/X-3" % site]
        assert d.alive()


def test_card_exception_once_across_restart(env, cordond, ctl):
    """card_exception is judged on the register (issue 16): a second
    ordinary card raises it once; resolved by an operator, neither a reload
    nor a restart raises it again (the row is read back at start); another
    household's second card, marked extra afterwards, is corrected."""
    site, a_hh, b_hh = "ace", "3-2-401", "3-2-402"
    import_households(env, ctl, site, [(a_hh, ["CE-1"]), (b_hh, ["CE-8"])], PHONE)
    with Alerts(env.broker.port, site) as al:
        d = cordond()   # [rules] cards_per_household = 1, the default
        wait_register_loaded(d)
        changed(d, lambda: ctl("card", "add", site, "CE-2", "--household", a_hh))
        a = al.wait("card_exception", "raised")
        check_message(a, "card_exception", site, "warning", "household:" + a_hh, "raised",
                      "raised")
        assert a["household"] == a_hh and a["event_id"].startswith("cards:"), a
        assert a["text"] == "Household %s holds 2 ordinary cards (1 allowed): CE-1, CE-2" % a_hh, a
        wait_row(env, a["alert_id"], "raised")
        ack(env, site, a["alert_id"], "resolve")
        res = al.wait("card_exception", "resolved", lambda x: x["alert_id"] == a["alert_id"])
        assert res["reason"] == "operator", res
        wait_row(env, a["alert_id"], "resolved")
        # a reload of the register: not raised again
        changed(d, lambda: notify(env, site))
        d.stop()
        before = register_loads(d)
        env.restart(d)
        wait_until(lambda: register_loads(d) > before, what="the register after the restart")
        # household B's second card: its alert comes after the restart's judgement of A
        changed(d, lambda: ctl("card", "add", site, "CE-9", "--household", b_hh))
        b = al.wait("card_exception", "raised", lambda x: x["subject"] == "household:" + b_hh)
        assert b["text"] == "Household %s holds 2 ordinary cards (1 allowed): CE-8, CE-9" % b_hh, b
        raised_a = [x for x in al.all("card_exception")
                    if x["subject"] == "household:" + a_hh and x["transition"] == "raised"]
        assert [x["alert_id"] for x in raised_a] == [a["alert_id"]], raised_a
        assert env.pg.query("SELECT count(*) FROM alerts WHERE site = %s AND kind ="
                            " 'card_exception' AND household = %s", (site, a_hh))[0][0] == 1
        # B's second card marked extra (a carer's): the register is corrected
        ctl("card", "add", site, "CE-9", "--household", b_hh, "--extra")
        res = al.wait("card_exception", "resolved", lambda x: x["alert_id"] == b["alert_id"])
        assert res["reason"] == "register corrected", res
        wait_row(env, b["alert_id"], "resolved")
        assert d.alive()


# ---------------------------------------------------------------- zones, hotline

def test_disinfection_overdue_raised_and_resolved(env, cordond):
    site = "adz"
    zone = daytime_zone()
    env.pg.query("INSERT INTO sites (site, timezone) VALUES (%s, %s)", (site, zone))
    env.pg.query("INSERT INTO zones (site, zone, interval_s) VALUES (%s, 'Z07', 2)", (site,))
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        a = al.wait("disinfection_overdue", "raised")
        check_message(a, "disinfection_overdue", site, "warning", "zone:Z07", "raised", "raised")
        assert a["zone"] == "Z07" and "Z07" in a["text"], a
        pub(env, "cordon/%s/disinfection/Z07" % site,
            {"id": "D-1", "ts": now_ts(), "crew": "crew-2", "agent": "chlorine 500 mg/L"})
        res = al.wait("disinfection_overdue", "resolved")
        assert res["alert_id"] == a["alert_id"] and res["reason"] == "disinfected", res
        wait_row(env, a["alert_id"], "resolved")
        env.pg.query("DELETE FROM zones WHERE site = %s", (site,))
        notify(env, site)
        assert d.alive()


def test_hotline_unresolved_raised_and_resolved(env, cordond):
    site = "ahl"
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"hotline_medical_limit": "2s"}})
        wait_register_loaded(d)
        pub(env, "cordon/%s/hotline" % site,
            {"call_id": "H-7", "id": "1", "action": "open", "ts": now_ts(), "household": "3-2-401",
             "category": "medical", "urgent": True, "note": "call back " + PHONE})
        # a non-urgent call never raises
        pub(env, "cordon/%s/hotline" % site,
            {"call_id": "H-8", "id": "1", "action": "open", "ts": now_ts(),
             "category": "medical", "urgent": False})
        a = al.wait("hotline_unresolved", "raised")
        check_message(a, "hotline_unresolved", site, "critical", "call:H-7", "raised", "raised")
        assert a["call_id"] == "H-7" and a["household"] == "3-2-401"
        pub(env, "cordon/%s/hotline" % site,
            {"call_id": "H-7", "id": "2", "action": "resolve", "ts": now_ts()})
        res = al.wait("hotline_unresolved", "resolved")
        assert res["alert_id"] == a["alert_id"] and res["reason"] == "call resolved", res
        wait_row(env, a["alert_id"], "resolved")
        assert all(x["subject"] == "call:H-7" for x in al.all("hotline_unresolved"))
        assert d.alive()


def hotline_steps(env, site, call):
    return env.pg.count("hotline_events", "site = %s AND call_id = %s", (site, call))


def call_row(env, site, call):
    r = env.pg.query("SELECT status, opened_at IS NOT NULL, resolved_at IS NOT NULL"
                     " FROM hotline_calls WHERE site = %s AND call_id = %s", (site, call))
    return tuple(r[0]) if r else None


def no_alert_past_marker(env, al, site, call):
    """Open a marker call (urgent, medical) now: the tick that finds it
    overdue finds any earlier call overdue too, so once its alert is out
    (MQTT and row) an alert of `call` would be out as well."""
    pub(env, "cordon/%s/hotline" % site,
        {"call_id": "M-1", "id": "1", "action": "open", "ts": now_ts(),
         "category": "medical", "urgent": True})
    m = al.wait("hotline_unresolved", "raised", lambda a: a["subject"] == "call:M-1")
    wait_row(env, m["alert_id"], "raised")
    subject = "call:%s" % call
    assert [a for a in al.all("hotline_unresolved") if a["subject"] == subject] == []
    assert env.pg.count("alerts", "site = %s AND kind = 'hotline_unresolved' AND subject = %s",
                        (site, subject)) == 0


def test_hotline_resolve_before_open(env, cordond):
    """Field case 16: the resolve step arrives before the open step (brokers
    and bridges reorder; both are dated 2020, so the rules use the receive
    times). The call ends resolved and hotline_unresolved is never raised."""
    site = "ahr"
    topic = "cordon/%s/hotline" % site
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"hotline_medical_limit": "2s"}})
        wait_register_loaded(d)
        pub(env, topic, field("16a-hotline-resolve-first.json"))
        wait_until(lambda: hotline_steps(env, site, "H-16") == 1, LONG, what="the resolve stored")
        pub(env, topic, field("16b-hotline-open-late.json"))
        wait_until(lambda: hotline_steps(env, site, "H-16") == 2, LONG, what="the open stored")
        assert call_row(env, site, "H-16") == ("resolved", True, True)
        no_alert_past_marker(env, al, site, "H-16")
        assert not al.rejects(), al.rejects()
        assert d.alive()


def test_hotline_open_after_resolve_across_restart(env, cordond):
    """A sibling: the resolve is stored, cordond restarts, then the late
    open and a late update arrive. The restore at start knows the call is
    resolved (hotline_calls), so neither opens it."""
    site = "ahs"
    topic = "cordon/%s/hotline" % site
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"hotline_medical_limit": "2s"}})
        wait_register_loaded(d)
        pub(env, topic, {"call_id": "H-1", "id": "3", "action": "resolve", "ts": now_ts()})
        wait_until(lambda: call_row(env, site, "H-1") == ("resolved", False, True), LONG,
                   what="the resolve stored")
        d.stop()
        before = register_loads(d)
        env.restart(d)
        wait_until(lambda: register_loads(d) > before, what="the register after the restart")
        pub(env, topic, {"call_id": "H-1", "id": "1", "action": "open", "ts": now_ts(-60),
                         "household": "5-1-302", "category": "medical", "urgent": True})
        pub(env, topic, {"call_id": "H-1", "id": "2", "action": "update", "ts": now_ts(-30),
                         "category": "medical", "urgent": True})
        wait_until(lambda: hotline_steps(env, site, "H-1") == 3, LONG, what="the late steps stored")
        assert call_row(env, site, "H-1") == ("resolved", True, True)
        no_alert_past_marker(env, al, site, "H-1")
        assert d.alive()


# ---------------------------------------------------------------- backlog

def test_backlog_raised_and_recovered(private_env):
    """The spool passing 80 % of max_bytes while PostgreSQL is down.

    16 MiB with max_payload 1 KiB: intake pauses at 16 MiB - 1000 x 1.5 KiB
    (90.8 %), so the spool can pass 80 % without pausing; with 1 MiB the
    pause comes at 75 % (the headroom is capped at a quarter) and the spool
    passes 80 % only when a burst overshoots between two 100 ms ticks."""
    e = private_env
    e.broker.start()
    e.pg.start()
    d = e.cordond({"spool": {"max_bytes": "16MiB"}, "site": {"max_payload": "1KiB"}})
    wait_register_loaded(d)
    with Alerts(e.broker.port, "_daemon") as al:
        e.pg.stop("fast")
        topic = "cordon/bk/gate/G01/event"
        size = 16 * 1024 * 1024
        n = int(size * 0.85) // (32 + len(topic) + 900)    # spool records: 32-byte header
        msgs = []
        for i in range(n):
            t, p = gate_event("bk", "G01", "BK-%06d" % i)
            p = p[:-1] + b', "note": "' + b"x" * (900 - len(p) - 12) + b'"}'
            assert len(p) == 900
            msgs.append((t, p))
        assert 0.80 * size < n * (32 + len(topic) + 900) < 0.90 * size
        publish_many(e.broker.port, msgs, timeout=300)
        a = al.wait("backlog", "raised", timeout=300)
        check_message(a, "backlog", "_daemon", "critical", "instance:cordond-test", "raised", "raised")
        assert "80" in a["text"], a["text"]
        assert d.alive()
        e.pg.start()
        res = al.wait("backlog", "resolved", timeout=300)
        assert res["alert_id"] == a["alert_id"] and res["reason"] == "recovered", res
        wait_until(lambda: e.pg.count("gate_events", "site = 'bk'") == n, 300,
                   what="every spooled event stored")
        r = wait_row(e, a["alert_id"], "resolved")
        assert (r["site"], r["kind"]) == ("_daemon", "backlog")
        assert d.alive()
        assert d.stop() == 0


# ---------------------------------------------------------------- lifecycle

def test_dedupe_one_alert_per_subject(env, cordond):
    site = "add"
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"repeat_interval": "3s"}})
        wait_register_loaded(d)
        publish_many(env.broker.port, [
            gate_event(site, "G02", "R-%03d" % i, card="C-1", person="P-1", temp_c=38.0)
            for i in range(50)])
        first = al.wait("fever", "raised")
        # the count reaches 50 with a later "updated" (repeat_interval)
        last = al.wait("fever", "updated", lambda a: a["count"] == 50, timeout=LONG)
        assert last["alert_id"] == first["alert_id"]
        wait_until(lambda: (row(env, first["alert_id"]) or {}).get("count") == 50,
                   what=lambda: "count 50 in alerts (row %r)" % row(env, first["alert_id"]))
        assert env.pg.count("alerts", "site = %s", (site,)) == 1
        assert first["event_id"] == "%s/G02/R-000" % site
        msgs = al.all("fever")
        assert {a["alert_id"] for a in msgs} == {first["alert_id"]}
        assert len(msgs) <= 3, [(a["transition"], a["count"]) for a in msgs]
        assert d.alive()


def test_retained_state_topic(env, cordond):
    site = "art"
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        publish_many(env.broker.port, [
            gate_event(site, "G01", "T-1", card="C-1", person="P-1", temp_c=38.1),
            gate_event(site, "G01", "T-2", card="C-2", person="P-2", temp_c=38.2)])
        a1 = al.wait("fever", "raised", lambda a: a["subject"] == "person:P-1")
        a2 = al.wait("fever", "raised", lambda a: a["subject"] == "person:P-2")
        ack(env, site, a2["alert_id"], "resolve")
        al.wait("fever", "resolved")
        # The early subscriber saw the zero-length retained message clearing a2.
        wait_until(lambda: ("cordon/%s/alerts/%s" % (site, a2["alert_id"]), b"") in al.retained(),
                   what="a zero-length message on alerts/<id> of the resolved alert")
        # Wait until both transitions are stored: by then the broker has them too.
        wait_row(env, a2["alert_id"], "resolved")

    with Collector(env.broker.port, "cordon/%s/alerts/#" % site) as late:
        want = "cordon/%s/alerts/%s" % (site, a1["alert_id"])
        topic, payload = late.wait_for(lambda t, p: t == want)
        time.sleep(1)    # any other retained message is delivered with the same SUBACK
        got = late.snapshot()
        assert [t for t, _ in got] == [want], got
        state = json.loads(payload)
        assert state["alert_id"] == a1["alert_id"] and state["state"] == "raised"
        assert state["kind"] == "fever" and state["subject"] == "person:P-1"
    assert d.alive()


def test_ack_round_trip(env, cordond):
    site = "aak"
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        pub(env, *gate_event(site, "G01", "A-1", card="C-1", person="P-1", temp_c=38.7))
        a = al.wait("fever", "raised")
        ack(env, site, a["alert_id"], "ack", note="on my way")
        acked = al.wait("fever", "acked")
        check_message(acked, "fever", site, "critical", "person:P-1", "acked", "acked")
        assert acked["by"] == "op-1" and acked["alert_id"] == a["alert_id"]
        r = wait_row(env, a["alert_id"], "acked")
        assert r["by_whom"] == "op-1"
        # the retained state follows
        wait_until(lambda: any(json.loads(p).get("state") == "acked" for t, p in al.retained() if p),
                   what="the retained state acked")

        ack(env, site, a["alert_id"], "resolve", by="op-2")
        res = al.wait("fever", "resolved")
        check_message(res, "fever", site, "critical", "person:P-1", "resolved", "resolved")
        assert res["by"] == "op-2" and res["reason"] == "operator"
        r = wait_row(env, a["alert_id"], "resolved")
        assert r["by_whom"] == "op-2"
        wait_transitions(env, a["alert_id"], ["raised", "acked", "resolved"])

        # Unknown id, and a resolved one: a reject notice, cordond goes on.
        ack(env, site, "0123456789abcdef0123456789abcdef", "ack")
        ack(env, site, a["alert_id"], "resolve")
        wait_until(lambda: len(al.rejects()) >= 2, what="two reject notices for the acks")
        for p in al.rejects():
            n = json.loads(p)
            assert n["reason"] == "unknown_alert", n
            assert "no open alert" in n["detail"], n
        assert "0123456789abcdef" in al.rejects()[0].decode()
        assert len(al.all("fever")) == 3    # raised, acked, resolved: nothing more
        pub(env, *gate_event(site, "G01", "A-2", card="C-3", person="P-3", temp_c=39.0))
        al.wait("fever", "raised", lambda x: x["subject"] == "person:P-3")
        assert d.alive()


def test_reject_notice_masks_numbers(env, cordond):
    site = "arj"
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        topic = "cordon/%s/gate/G01/event" % site
        bad = [
            # the phone inside a string of a payload that is not JSON
            ('{"id":"R-1","ts":"%s","temp_c":36.6,"phone":"%s",}' % (OLD_TS, PHONE)).encode(),
            # the phone is the token the JSON parser stumbles on
            ('{"id":"R-2","ts":"%s","temp_c":36.6,"phone" %s}' % (OLD_TS, PHONE)).encode(),
            # valid JSON, bad direction
            json.dumps({"id": "R-3", "ts": OLD_TS, "temp_c": 36.6, "direction": PHONE}).encode(),
        ]
        publish_many(env.broker.port, [(topic, p) for p in bad])
        wait_until(lambda: len(al.rejects()) >= 3, what="three reject notices")
        notices = [json.loads(p) for p in al.rejects()]
        for n, p in zip(notices, al.rejects()):
            assert n["topic"] == topic, n
            assert n["reason"] in ("not_json", "bad_direction"), n
            assert n["length"] > 0 and isinstance(n["excerpt"], str)
            assert "180****1999" in n["excerpt"], n
            assert PHONE.encode() not in p, "reject notice carries an unmasked number: %s" % p.decode()
        assert [n["reason"] for n in notices] == ["not_json", "not_json", "bad_direction"]
        wait_until(lambda: env.pg.count("rejects", "topic = %s", (topic,)) == 3, what="three rejects")
        assert d.alive()
        assert PHONE not in d.log(), "cordond logged an unmasked phone number"


# ---------------------------------------------------------------- outages, crashes, restarts

def test_fever_while_postgres_down(private_env):
    e = private_env
    e.broker.start()
    e.pg.start()
    d = e.cordond()
    wait_register_loaded(d)
    with Alerts(e.broker.port, "apg") as al:
        e.pg.stop("fast")
        pub(e, *gate_event("apg", "G01", "PG-1", card="C-1", person="P-1", temp_c=38.9))
        a = al.wait("fever", "raised")      # G2: without PostgreSQL
        check_message(a, "fever", "apg", "critical", "person:P-1", "raised", "raised")
        assert e.pg.proc is None
        e.pg.start()
        r = wait_row(e, a["alert_id"], "raised")
        assert r["count"] == 1
        wait_transitions(e, a["alert_id"], ["raised"])
        assert e.pg.count("gate_events", "site = 'apg'") == 1
        assert d.alive()
        assert d.stop() == 0


def test_sigkill_during_fever_burst(private_env):
    """Two fever readings for each of 200 persons; cordond is SIGKILLed in
    the middle and started again: one alert_id per person, no more, and
    every alert_id published is in PostgreSQL."""
    e = private_env
    e.broker.start()
    e.pg.start()
    site, n = "akl", 200
    d = e.cordond({"rules": {"max_open_alerts": "1000"}})   # 200 open fevers, none folded
    wait_register_loaded(d)
    msgs = [gate_event(site, "G%02d" % (i % 4 + 1), "K%d-%04d" % (r, i), card="C-%04d" % i,
                       person="P-%04d" % i, temp_c=38.0 + (i % 9) / 10)
            for r in (1, 2) for i in range(n)]
    with Alerts(e.broker.port, site) as al:
        stream = Stream(e.broker.port, msgs, "akl-pub", rate=150).start()
        try:
            wait_until(lambda: len(al.all("fever")) >= 60, what="60 fever alerts before the kill")
            assert d.kill() == -signal.SIGKILL
            e.restart(d)
            stream.wait(LONG)
        finally:
            stream.close()

        def subjects():
            return e.pg.scalar("SELECT count(DISTINCT subject) FROM alerts WHERE site = %s", (site,))
        wait_until(lambda: subjects() == n, LONG, what=lambda: "%d subjects (have %d)" % (n, subjects()))
        wait_until(lambda: e.pg.count("gate_events", "site = %s", (site,)) == 2 * n, LONG,
                   what="every reading stored")
        dup = e.pg.query("SELECT subject, array_agg(alert_id) FROM alerts WHERE site = %s"
                         " GROUP BY subject HAVING count(*) > 1", (site,))
        assert dup == [], dup
        assert e.pg.count("alerts", "site = %s", (site,)) == n
        published = {a["alert_id"] for a in al.all("fever")}
        wait_until(lambda: len({a["alert_id"] for a in al.all("fever")}) >= n, what="all alerts published")
        published = {a["alert_id"] for a in al.all("fever")}
        stored = {r for (r,) in e.pg.query("SELECT alert_id FROM alerts WHERE site = %s", (site,))}
        assert published == stored, (len(published), len(stored), sorted(published ^ stored)[:5])
        # each alert's first event is the person's first reading
        bad = e.pg.query("SELECT subject, event_key FROM alerts WHERE site = %s"
                         " AND event_key NOT LIKE %s", (site, site + "/%/K1-%"))
        assert bad == [], bad
        assert d.alive()
        assert d.stop() == 0


def test_isolation_overdue_across_restart(env, cordond, ctl):
    """G3: the last check survives a restart. The order started an hour
    ago; a check resets its clock; cordond stops before the next deadline
    and starts after it: the overdue alert is raised, with a deadline
    counted from the check (not from the order's start)."""
    site, hh = "air", "8-1-101"
    import_households(env, ctl, site, [(hh, ["IR-1"])], PHONE)
    env.pg.query("INSERT INTO isolation_orders (site, household, person, starts_at, ends_at,"
                 " check_interval_s) VALUES (%s, %s, 'P-81', now() - interval '1 hour',"
                 " now() + interval '1 day', 8)", (site, hh))
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"check_grace": "1s"}})
        wait_register_loaded(d)
        first = al.wait("isolation_overdue", "raised")    # no check for an hour
        ts = now_ts()
        t_check = datetime.datetime.fromisoformat(ts)
        pub(env, *check(site, hh, "K-1", person="P-81", temp_c=36.5, ts=ts))
        al.wait("isolation_overdue", "resolved", lambda a: a["alert_id"] == first["alert_id"])
        wait_until(lambda: env.pg.count("isolation_checks", "site = %s", (site,)) == 1,
                   what="the check stored")
        d.stop()
        assert not [a for a in al.all("isolation_overdue") if a["transition"] == "raised"
                    and a["alert_id"] != first["alert_id"]], "raised again before the deadline"
        # wait past the deadline (check + 8 s + 1 s) while cordond is down
        deadline = t_check + datetime.timedelta(seconds=10)
        while datetime.datetime.now(datetime.timezone.utc) < deadline:
            time.sleep(0.5)
        env.restart(d)
        a = al.wait("isolation_overdue", "raised", lambda x: x["alert_id"] != first["alert_id"])
        check_message(a, "isolation_overdue", site, "warning", "person:P-81", "raised", "raised")
        m = re.fullmatch(r"overdue:%s:(\d+)" % re.escape(hh), a["event_id"])
        assert m, a["event_id"]
        check_us = int(t_check.timestamp() * 1e6)
        assert int(m.group(1)) >= check_us, \
            "deadline %s counted from before the check (%d): the check was not restored" % (
                a["event_id"], check_us)
        wait_row(env, a["alert_id"], "raised")
        ctl("release", site, "--household", hh)
        assert d.alive()


def test_alert_queued_while_broker_down(private_env):
    """G3: a timer alert raised while the broker is away is stored at once
    and published when the broker is back (its retained state shows it)."""
    e = private_env
    e.broker.start()
    e.pg.start()
    site = "abd"
    d = e.cordond({"rules": {"hotline_medical_limit": "5s"}})
    wait_register_loaded(d)
    pub(e, "cordon/%s/hotline" % site,
        {"call_id": "H-1", "id": "1", "action": "open", "ts": now_ts(), "category": "medical",
         "urgent": True})
    e.broker.stop()
    wait_until(lambda: e.pg.count("alerts", "site = %s AND kind = 'hotline_unresolved'", (site,)),
               LONG, what="the alert stored while the broker is down")
    alert_id = e.pg.scalar("SELECT alert_id FROM alerts WHERE site = %s", (site,))
    assert d.alive()
    e.broker.start()
    e.wait_connected(d)
    with Collector(e.broker.port, "cordon/%s/alerts/#" % site) as c:
        topic, payload = c.wait_for(lambda t, p: t.endswith("/" + alert_id) and p, LONG)
        a = json.loads(payload)
        assert (a["kind"], a["state"], a["subject"]) == ("hotline_unresolved", "raised", "call:H-1")
    assert d.alive()
    assert d.stop() == 0


def test_open_alerts_survive_restart(env, cordond, ctl):
    """G3: open alerts are restored at start: an ack after the restart
    finds them, and a timer alert is not raised a second time."""
    site = "ars"
    ctl("gate", "add", site, "G05")
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"silence_timeout": "2s"}})
        wait_register_loaded(d)
        pub(env, *gate_event(site, "G01", "R-1", card="C-1", person="P-1", temp_c=38.8))
        fever = al.wait("fever", "raised")
        silent = al.wait("gate_silent", "raised", lambda a: a["subject"] == "gate:G05")
        wait_row(env, fever["alert_id"], "raised")
        wait_row(env, silent["alert_id"], "raised")
        d.stop()
        before = register_loads(d)
        env.restart(d)
        wait_until(lambda: register_loads(d) > before, what="the register after the restart")
        ack(env, site, fever["alert_id"], "resolve")
        res = al.wait("fever", "resolved")
        assert res["alert_id"] == fever["alert_id"] and res["reason"] == "operator"
        assert not al.rejects(), al.rejects()
        time.sleep(4)   # longer than silence_timeout: G05 is still silent
        raised = [a for a in al.all("gate_silent") if a["transition"] == "raised"
                  and a["subject"] == "gate:G05"]
        assert [a["alert_id"] for a in raised] == [silent["alert_id"]], raised
        pub(env, "cordon/%s/gate/G05/status" % site, {"state": "online", "ts": now_ts(), "id": "HB-1"})
        res = al.wait("gate_silent", "resolved", lambda a: a["subject"] == "gate:G05")
        assert res["alert_id"] == silent["alert_id"]
        wait_row(env, silent["alert_id"], "resolved")
        ctl("gate", "seal", site, "G05")    # no more silence alerts for later tests
        assert d.alive()
