"""The people work's alerts end to end (issue 16): need_overdue,
call_missed and dropoff_uncollected raised and resolved through a real
broker, PostgreSQL and cordond, on the alert topic and in the alerts table,
and their rule state restored across a restart (G3).

Each test works on its own site. Timer rules are driven without sleeping:
by device times in the past (within max_clock_skew) against short limits,
by a due time in the past, and by a call_deadline that has just passed in
the site's zone. Waits are bounded; nothing is timed.
"""

import datetime
import json
from zoneinfo import ZoneInfo

from harness import import_households, now_ts, publish_many, register_loads, \
    wait_register_loaded, wait_until
from test_alerts import LONG, PHONE, Alerts, check_message, row, wait_row


def pub(env, topic, body):
    publish_many(env.broker.port, [(topic, json.dumps(body).encode())])


def zone_with_hours(lo, hi):
    """A time zone where it is now between lo:00 and hi:59 local time."""
    for name in ("Asia/Shanghai", "Europe/London", "America/New_York", "Asia/Tokyo",
                 "America/Los_Angeles", "Asia/Kolkata", "Europe/Moscow", "Pacific/Auckland",
                 "America/Sao_Paulo", "Asia/Dubai", "Pacific/Honolulu", "Europe/Berlin"):
        if lo <= datetime.datetime.now(ZoneInfo(name)).hour <= hi:
            return name
    raise AssertionError("no zone found")


def just_passed(zone):
    """HH:MM in `zone` a minute or two ago: a call_deadline already past today."""
    t = datetime.datetime.now(ZoneInfo(zone)) - datetime.timedelta(seconds=60)
    return t.strftime("%H:%M")


def setup_site(env, ctl, site, households, zone, isolated):
    import_households(env, ctl, site, [(hh, []) for hh in households], PHONE)
    env.pg.query("UPDATE sites SET timezone = %s WHERE site = %s", (zone, site))
    for hh in isolated:
        env.pg.query("INSERT INTO isolation_orders (site, household, starts_at, ends_at)"
                     " VALUES (%s, %s, now() - interval '1 hour', now() + interval '1 day')",
                     (site, hh))


def alert_rows(env, site, kind, subject):
    return env.pg.count("alerts", "site = %s AND kind = %s AND subject = %s",
                        (site, kind, subject))


def test_need_overdue_raised_and_resolved(env, cordond):
    """Past its due time: raised with the household and a text; its
    deliver resolves it. Not assigned within need_assign_limit of its open
    (dated 90 s ago, the limit 1 min): raised; its cancel resolves it. A
    need delivered before its due time, and one whose deliver came before
    its open, never raise (checked once a later alert of the same tick is
    out)."""
    site = "pno"
    topic = "cordon/%s/need" % site
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"need_assign_limit": "1m"}})
        wait_register_loaded(d)
        # delivered in time; delivered before its open arrived
        pub(env, topic, {"need_id": "N-1", "action": "open", "id": "1", "ts": now_ts(-30),
                         "household": "3-2-401", "category": "groceries", "due": now_ts(3600)})
        pub(env, topic, {"need_id": "N-1", "action": "deliver", "id": "2", "ts": now_ts(-20),
                         "by": "V-1"})
        pub(env, topic, {"need_id": "N-2", "action": "deliver", "id": "2", "ts": now_ts(-10),
                         "by": "V-1"})
        pub(env, topic, {"need_id": "N-2", "action": "open", "id": "1", "ts": now_ts(-90),
                         "household": "3-2-402", "category": "groceries", "due": now_ts(-60)})
        wait_until(lambda: env.pg.count("need_events", "site = %s", (site,)) == 4, LONG,
                   what="the steps of N-1 and N-2 stored")
        # past due (assigned, so only the due time counts)
        pub(env, topic, {"need_id": "N-12", "action": "open", "id": "1", "ts": now_ts(-5),
                         "household": "3-2-401", "category": "medicine", "due": now_ts(-1)})
        pub(env, topic, {"need_id": "N-12", "action": "assign", "id": "2", "ts": now_ts(-4),
                         "by": "V-3"})
        a = al.wait("need_overdue", "raised", lambda x: x["subject"] == "need:N-12")
        check_message(a, "need_overdue", site, "warning", "need:N-12", "raised", "raised")
        assert a["household"] == "3-2-401", a
        assert a["text"].startswith("Need N-12 (medicine, household 3-2-401) not delivered by "), a
        wait_row(env, a["alert_id"], "raised")
        # unassigned for longer than the limit
        pub(env, topic, {"need_id": "N-13", "action": "open", "id": "1", "ts": now_ts(-90),
                         "household": "3-2-403", "category": "elderly_care"})
        b = al.wait("need_overdue", "raised", lambda x: x["subject"] == "need:N-13")
        assert b["text"] == ("Need N-13 (elderly_care, household 3-2-403) not assigned"
                             " within 1 min"), b
        wait_row(env, b["alert_id"], "raised")
        assert alert_rows(env, site, "need_overdue", "need:N-1") == 0
        assert alert_rows(env, site, "need_overdue", "need:N-2") == 0
        assert [x for x in al.all("need_overdue")
                if x["subject"] in ("need:N-1", "need:N-2")] == []

        pub(env, topic, {"need_id": "N-12", "action": "deliver", "id": "3", "ts": now_ts(),
                         "by": "V-3"})
        res = al.wait("need_overdue", "resolved", lambda x: x["alert_id"] == a["alert_id"])
        assert res["reason"] == "delivered", res
        assert wait_row(env, a["alert_id"], "resolved")["reason"] == "delivered"
        pub(env, topic, {"need_id": "N-13", "action": "cancel", "id": "2", "ts": now_ts()})
        res = al.wait("need_overdue", "resolved", lambda x: x["alert_id"] == b["alert_id"])
        assert res["reason"] == "cancelled", res
        assert wait_row(env, b["alert_id"], "resolved")["reason"] == "cancelled"
        assert d.alive()


def test_need_from_welfare_call_unassigned(env, cordond, ctl):
    """A welfare call with outcome needs_help opens a need (call-<16 hex>)
    that has no due time: unassigned for longer than need_assign_limit, it
    raises need_overdue. (The call reached the household: no call_missed.)"""
    site = "pnc"
    zone = zone_with_hours(1, 22)
    setup_site(env, ctl, site, ["6-1-101"], zone, ["6-1-101"])
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"need_assign_limit": "1m"}})
        wait_register_loaded(d)
        pub(env, "cordon/%s/call/6-1-101" % site,
            {"id": "WC-1", "ts": now_ts(-90), "outcome": "needs_help", "by": "op-2",
             "category": "medicine"})
        a = al.wait("need_overdue", "raised")
        assert a["subject"].startswith("need:call-") and len(a["subject"]) == len("need:call-") + 16
        assert a["household"] == "6-1-101", a
        need_id = a["subject"][len("need:"):]
        wait_row(env, a["alert_id"], "raised")
        pub(env, "cordon/%s/need" % site, {"need_id": need_id, "action": "deliver", "id": "d",
                                           "ts": now_ts(), "by": "V-1"})
        res = al.wait("need_overdue", "resolved", lambda x: x["alert_id"] == a["alert_id"])
        assert res["reason"] == "delivered", res
        wait_row(env, a["alert_id"], "resolved")
        assert d.alive()


def test_call_missed_raised_and_reached(env, cordond, ctl):
    """Households under isolation past today's call_deadline (a minute ago
    in the site's zone) with no reach today: raised, one per household,
    naming the day; a no_answer call does not resolve it, a reached one
    does (at its own time). A household reached today (counselling counts)
    and one not under isolation are not raised (the same tick raised the
    others)."""
    site = "pcm"
    zone = zone_with_hours(1, 22)
    setup_site(env, ctl, site, ["7-1-101", "7-1-102", "7-1-103"], zone, ["7-1-101", "7-1-102"])
    with Alerts(env.broker.port, site) as al:
        # a late deadline first: the calls are in before it passes
        d = cordond({"rules": {"call_deadline": "23:59"}})
        wait_register_loaded(d)
        pub(env, "cordon/%s/call/7-1-102" % site,
            {"id": "WC-1", "ts": now_ts(-30), "outcome": "counselling", "by": "op-2"})
        wait_until(lambda: env.pg.count("welfare_calls", "site = %s", (site,)) == 1, LONG,
                   what="the call stored")
        d.stop()
        d = cordond({"rules": {"call_deadline": just_passed(zone)}})
        a = al.wait("call_missed", "raised")
        check_message(a, "call_missed", site, "warning", "household:7-1-101", "raised", "raised")
        today = datetime.datetime.now(ZoneInfo(zone)).date().isoformat()
        assert a["event_id"] == "call_missed:7-1-101:%s" % today, a
        assert a["household"] == "7-1-101", a
        assert a["text"].startswith("Household 7-1-101 under isolation not reached by today's "), a
        wait_row(env, a["alert_id"], "raised")
        assert [x["subject"] for x in al.all("call_missed")] == ["household:7-1-101"]
        assert env.pg.count("alerts", "site = %s AND kind = 'call_missed'", (site,)) == 1

        pub(env, "cordon/%s/call/7-1-101" % site,
            {"id": "WC-2", "ts": now_ts(-2), "outcome": "no_answer", "by": "op-2"})
        reached = now_ts(-1)
        pub(env, "cordon/%s/call/7-1-101" % site,
            {"id": "WC-3", "ts": reached, "outcome": "reached", "by": "op-2"})
        res = al.wait("call_missed", "resolved", lambda x: x["alert_id"] == a["alert_id"])
        assert res["reason"] == "reached", res
        assert res["resolved_at"] == reached[:23] + "Z", (res, reached)
        assert wait_row(env, a["alert_id"], "resolved")["reason"] == "reached"
        assert len(al.all("call_missed")) == 2
        assert d.alive()


def test_dropoff_uncollected_raised_and_collected(env, cordond, ctl):
    """A delivery placed (90 s ago) for a household under isolation and
    not collected within dropoff_limit (1 min): raised; its collection
    resolves it. One for a household not under isolation is not raised (the
    same tick raised the other)."""
    site = "pdu"
    setup_site(env, ctl, site, ["8-1-101", "8-1-102"], "Asia/Shanghai", ["8-1-101"])
    topic = "cordon/%s/dropoff" % site
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"dropoff_limit": "1m"}})
        wait_register_loaded(d)
        pub(env, topic, {"id": "DP-1", "ts": now_ts(-90), "action": "placed",
                         "household": "8-1-102", "item": "groceries", "by": "V-1"})
        pub(env, topic, {"id": "DP-2", "ts": now_ts(-90), "action": "placed",
                         "household": "8-1-101", "item": "groceries", "by": "V-1"})
        a = al.wait("dropoff_uncollected", "raised")
        check_message(a, "dropoff_uncollected", site, "warning", "household:8-1-101", "raised",
                      "raised")
        assert a["text"] == ("Delivery for household 8-1-101 uncollected at the drop-off point"
                             " for 1 min"), a
        wait_row(env, a["alert_id"], "raised")
        assert alert_rows(env, site, "dropoff_uncollected", "household:8-1-102") == 0
        pub(env, topic, {"id": "DP-3", "ts": now_ts(), "action": "collected",
                         "household": "8-1-101"})
        res = al.wait("dropoff_uncollected", "resolved", lambda x: x["alert_id"] == a["alert_id"])
        assert res["reason"] == "collected", res
        assert wait_row(env, a["alert_id"], "resolved")["reason"] == "collected"
        assert [x["subject"] for x in al.all("dropoff_uncollected")] == ["household:8-1-101"] * 2
        assert d.alive()


def test_people_state_across_restart(env, cordond, ctl):
    """G3: a step stored, cordond restarted before its deadline, the alert
    raised after the restart from the state restored from PostgreSQL. Before
    the restart the limits are an hour and the deadline 23:59 (nothing is
    due); after it, 2 s and a minute ago: the need opened, the delivery
    placed and the household not called before the restart are overdue
    then, and only they: the need delivered, the delivery collected and the
    household reached before the restart are not (same tick)."""
    site = "ppr"
    zone = zone_with_hours(1, 22)
    setup_site(env, ctl, site, ["9-1-101", "9-1-102"], zone, ["9-1-101", "9-1-102"])
    need, drop = "cordon/%s/need" % site, "cordon/%s/dropoff" % site
    with Alerts(env.broker.port, site) as al:
        d = cordond({"rules": {"need_assign_limit": "1h", "dropoff_limit": "1h",
                               "call_deadline": "23:59"}})
        wait_register_loaded(d)
        pub(env, need, {"need_id": "N-1", "action": "open", "id": "1", "ts": now_ts(-5),
                        "household": "9-1-101", "category": "groceries"})
        pub(env, need, {"need_id": "N-2", "action": "open", "id": "1", "ts": now_ts(-5),
                        "household": "9-1-102", "category": "groceries"})
        pub(env, need, {"need_id": "N-2", "action": "deliver", "id": "2", "ts": now_ts(-4),
                        "by": "V-1"})
        pub(env, drop, {"id": "DP-1", "ts": now_ts(-5), "action": "placed",
                        "household": "9-1-101", "item": "groceries"})
        pub(env, drop, {"id": "DP-2", "ts": now_ts(-5), "action": "placed",
                        "household": "9-1-102", "item": "medicine"})
        pub(env, drop, {"id": "DP-3", "ts": now_ts(-3), "action": "collected",
                        "household": "9-1-102"})
        pub(env, "cordon/%s/call/9-1-102" % site,
            {"id": "WC-1", "ts": now_ts(-5), "outcome": "reached", "by": "op-1"})
        wait_until(lambda: (env.pg.count("need_events", "site = %s", (site,)),
                            env.pg.count("dropoffs", "site = %s", (site,)),
                            env.pg.count("welfare_calls", "site = %s", (site,))) == (3, 3, 1),
                   LONG, what="the steps stored")
        d.stop()
        assert al.all() == []
        d = cordond({"rules": {"need_assign_limit": "2s", "dropoff_limit": "2s",
                               "call_deadline": just_passed(zone)}})
        n = al.wait("need_overdue", "raised")
        c = al.wait("call_missed", "raised")
        p = al.wait("dropoff_uncollected", "raised")
        assert n["subject"] == "need:N-1" and n["household"] == "9-1-101", n
        assert c["subject"] == "household:9-1-101", c
        assert p["subject"] == "household:9-1-101", p
        for a in (n, c, p):
            wait_row(env, a["alert_id"], "raised")
        assert sorted((x["kind"], x["subject"]) for x in al.all()) == [
            ("call_missed", "household:9-1-101"), ("dropoff_uncollected", "household:9-1-101"),
            ("need_overdue", "need:N-1")]
        assert env.pg.count("alerts", "site = %s", (site,)) == 3
        assert "rule state restored" in d.log()
        assert d.alive()
