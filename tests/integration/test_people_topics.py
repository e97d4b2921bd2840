"""The people work's topics (issue 16): the needs ledger, the daily welfare
calls and the drop-off point, each stored exactly once whether its messages
come duplicated, reordered or redelivered, and its bad payloads rejected
with a reason."""

import json

import pytest

from harness import gate_event, publish_many, wait_until
from test_replays import Proxy, with_metrics


def msg(topic, body):
    return (topic, json.dumps(body).encode())


def need(site, need_id, step, action, ts, **kw):
    body = {"need_id": need_id, "id": step, "action": action, "ts": ts}
    body.update(kw)
    return msg("cordon/%s/need" % site, body)


def call(site, household, id, ts, outcome, **kw):
    body = {"id": id, "ts": ts, "outcome": outcome}
    body.update(kw)
    return msg("cordon/%s/call/%s" % (site, household), body)


def dropoff(site, id, ts, household, action, **kw):
    body = {"id": id, "ts": ts, "household": household, "action": action}
    body.update(kw)
    return msg("cordon/%s/dropoff" % site, body)


NEED_COLS = ("household, category, status, to_char(opened_at AT TIME ZONE 'UTC', 'HH24:MI'),"
             " to_char(due AT TIME ZONE 'UTC', 'HH24:MI'), assigned_to,"
             " to_char(assigned_at AT TIME ZONE 'UTC', 'HH24:MI'),"
             " to_char(delivered_at AT TIME ZONE 'UTC', 'HH24:MI'), delivered_by,"
             " cancelled_at IS NOT NULL, call_id, note")


def need_row(env, site, need_id):
    rows = env.pg.query("SELECT " + NEED_COLS + " FROM needs WHERE site = %s AND need_id = %s",
                        (site, need_id))
    assert len(rows) == 1, rows
    return rows[0]


def the_day(site):
    """One day of a household's people work, in time order."""
    return [
        need(site, "N-12", "1", "open", "2020-02-16T09:00:00+08:00", household="3-2-401",
             category="groceries", due="2020-02-16T18:00:00+08:00", by="op-3",
             call_id="H-7", note="rice, eggs"),
        need(site, "N-12", "2", "assign", "2020-02-16T09:30:00+08:00", by="vol-07"),
        need(site, "N-12", "3", "assign", "2020-02-16T10:00:00+08:00", by="vol-09"),
        need(site, "N-12", "4", "deliver", "2020-02-16T11:15:00+08:00", by="vol-09"),
        need(site, "N-13", "1", "open", "2020-02-16T09:05:00+08:00", household="5-1-102",
             category="medicine"),
        need(site, "N-13", "2", "cancel", "2020-02-16T09:45:00+08:00", note="family brought it"),
        call(site, "3-2-401", "W-1", "2020-02-16T08:10:00+08:00", "no_answer", by="op-3"),
        call(site, "3-2-401", "W-2", "2020-02-16T08:40:00+08:00", "reached", by="op-3"),
        call(site, "5-1-102", "W-3", "2020-02-16T08:50:00+08:00", "needs_help", by="op-3",
             category="elderly_care", note="stairs"),
        call(site, "6-3-301", "W-4", "2020-02-16T08:55:00+08:00", "counselling", by="op-4"),
        dropoff(site, "DP-1", "2020-02-16T11:10:00+08:00", "3-2-401", "placed",
                item="groceries", by="vol-09"),
        dropoff(site, "DP-2", "2020-02-16T11:40:00+08:00", "3-2-401", "collected"),
    ]


def check_day(env, site):
    assert env.pg.count("need_events", "site = %s", (site,)) == 7  # 6 + the call's need
    assert need_row(env, site, "N-12") == (
        "3-2-401", "groceries", "delivered", "01:00", "10:00", "vol-09", "02:00", "03:15",
        "vol-09", False, "H-7", "rice, eggs")
    assert need_row(env, site, "N-13") == (
        "5-1-102", "medicine", "cancelled", "01:05", None, None, None, None, None, True, None,
        "family brought it")
    # the needs_help call opened a need of its own, named after the call
    opened = env.pg.query("SELECT need_id, household, category, action, by_whom, note"
                          " FROM need_events WHERE site = %s AND need_id LIKE 'call-%%'", (site,))
    assert len(opened) == 1, opened
    need_id, hh, cat, status, by, note = opened[0]
    assert len(need_id) == len("call-") + 16
    assert (hh, cat, status, by, note) == ("5-1-102", "elderly_care", "open", "op-3", "stairs")
    assert need_row(env, site, need_id)[:4] == ("5-1-102", "elderly_care", "open", "00:50")
    calls = env.pg.query("SELECT household, outcome, by_whom, note FROM welfare_calls"
                         " WHERE site = %s ORDER BY ts", (site,))
    assert calls == [("3-2-401", "no_answer", "op-3", None), ("3-2-401", "reached", "op-3", None),
                     ("5-1-102", "needs_help", "op-3", "stairs"),
                     ("6-3-301", "counselling", "op-4", None)]
    drops = env.pg.query("SELECT household, item, action, by_whom FROM dropoffs"
                         " WHERE site = %s ORDER BY ts", (site,))
    assert drops == [("3-2-401", "groceries", "placed", "vol-09"),
                     ("3-2-401", None, "collected", None)]


def marker(env, site, id):
    publish_many(env.broker.port, [gate_event(site, "G01", id)])
    wait_until(lambda: env.pg.count("gate_events", "site = %s AND event_key LIKE %s",
                                    (site, "%/" + id)) == 1, what="the marker " + id)


def test_people_topics_stored_once(env, cordond):
    """In order, then the whole day again (duplicates), then again in
    reverse order: the same rows, the same folded needs."""
    d = cordond()
    site = "pp"
    day = the_day(site)
    publish_many(env.broker.port, day)
    marker(env, site, "M1")
    wait_until(lambda: env.pg.count("dropoffs", "site = %s", (site,)) == 2, what="the day")
    check_day(env, site)

    publish_many(env.broker.port, day)
    publish_many(env.broker.port, list(reversed(day)))
    marker(env, site, "M2")
    check_day(env, site)
    assert d.alive()


def test_need_steps_fold_in_any_order(env, cordond):
    """A need's steps, each stored before the next comes (so each folds
    into the row the one before made), in the worst order: delivered
    before assigned before opened; and a second need's steps all in one
    batch, reversed."""
    d = cordond()
    site = "po"
    steps = [s for s in the_day(site) if s[0].endswith("/need")]
    n12 = [s for s in steps if b'"N-12"' in s[1]]
    for i, s in enumerate(reversed(n12)):
        publish_many(env.broker.port, [s])
        wait_until(lambda: env.pg.count("need_events", "site = %s", (site,)) == i + 1,
                   what="step %d stored" % i)
    assert need_row(env, site, "N-12") == (
        "3-2-401", "groceries", "delivered", "01:00", "10:00", "vol-09", "02:00", "03:15",
        "vol-09", False, "H-7", "rice, eggs")
    # the later of two assignments names the volunteer, whichever came last
    n14 = [need(site, "N-14", "1", "open", "2020-02-16T09:00:00+08:00", household="1-1-101"),
           need(site, "N-14", "3", "assign", "2020-02-16T10:00:00+08:00", by="vol-02"),
           need(site, "N-14", "2", "assign", "2020-02-16T09:30:00+08:00", by="vol-01")]
    for s in n14:
        publish_many(env.broker.port, [s])
    wait_until(lambda: env.pg.count("need_events", "site = %s AND need_id = 'N-14'", (site,)) == 3,
               what="N-14's steps")
    row = need_row(env, site, "N-14")
    assert (row[0], row[1], row[2], row[5], row[6]) == ("1-1-101", None, "assigned", "vol-02",
                                                        "02:00")
    # a cancel and a delivery: delivered is the furthest step
    publish_many(env.broker.port, [
        need(site, "N-14", "5", "cancel", "2020-02-16T12:00:00+08:00"),
        need(site, "N-14", "4", "deliver", "2020-02-16T11:00:00+08:00", by="vol-02")])
    wait_until(lambda: env.pg.count("need_events", "site = %s AND need_id = 'N-14'", (site,)) == 5,
               what="N-14's last steps")
    assert need_row(env, site, "N-14")[2] == "delivered"
    assert d.alive()


@pytest.mark.parametrize("how", ["reconnect", "SIGKILL"])
def test_people_topics_redelivered(env, cordond, how):
    """The day reaches cordond and is stored, but its PUBACKs are lost: the
    broker sends it all again (DUP) when cordond reconnects or restarts
    after SIGKILL. Nothing doubles, the folds are unchanged."""
    site = "pr" + ("k" if how == "SIGKILL" else "c")
    proxy = Proxy(env.broker.port)
    try:
        _, o = with_metrics({"mqtt": {"uri": "tcp://127.0.0.1:%d" % proxy.port,
                                      "client_id": "cordond-" + site}})
        d = cordond(o)
        proxy.drop_up.set()
        # publish_many waits for the broker's PUBACKs to the publisher,
        # which do not depend on cordond's: the broker holds the day for
        # cordond's session until cordond acknowledges it.
        publish_many(env.broker.port, the_day(site))
        wait_until(lambda: env.pg.count("dropoffs", "site = %s", (site,)) == 2 and
                   env.pg.count("need_events", "site = %s", (site,)) == 7,
                   what="the day stored, unacknowledged")
        if how == "SIGKILL":
            d.kill()
            proxy.drop_up.clear()
            proxy.cut()
            d2 = cordond(o)
        else:
            proxy.drop_up.clear()
            proxy.cut()
            d2 = d
        marker(env, site, "M1")
        check_day(env, site)
        assert d2.alive()
    finally:
        proxy.close()


def test_people_topic_rejects(env, cordond):
    d = cordond()
    site = "px"
    ts = "2020-02-16T09:00:00+08:00"
    bad = [
        (msg("cordon/px/need", {"id": "1", "action": "open", "ts": ts, "household": "1"}),
         "bad_field", "no need_id"),
        (need(site, "N-1", "1", "close", ts), "bad_field", "action is not"),
        (need(site, "N-1", "1", "open", ts, household="1-1-101", category="food"), "bad_field",
         "category is not"),
        (need(site, "N-1", "1", "open", ts), "bad_field", "needs the household"),
        (need(site, "N-1", "2", "assign", ts), "bad_field", "needs by"),
        (need(site, "N-1", "1", "open", ts, household="1-1-101", due="tomorrow"), "bad_time",
         "due is not"),
        (msg("cordon/px/need", {"need_id": "N-1", "action": "open", "household": "1"}),
         "missing_time", "no ts"),
        (call(site, "1-1-101", "W-1", ts, "busy"), "bad_field", "outcome is not"),
        (msg("cordon/px/call/1-1-101", {"id": "W-2", "outcome": "reached"}), "missing_time",
         "no ts"),
        (dropoff(site, "DP-1", ts, "1-1-101", "lost"), "bad_field", "action is not"),
        (msg("cordon/px/dropoff", {"id": "DP-2", "ts": ts, "action": "placed"}), "bad_field",
         "no household"),
        (("cordon/px/call/1-1-101", b"reached"), "not_json", ""),
    ]
    # A call is not a health check: no temperature, accepted.
    good = call(site, "1-1-101", "W-3", ts, "reached")
    publish_many(env.broker.port, [m for m, _, _ in bad] + [good])
    marker(env, site, "M")
    wait_until(lambda: env.pg.count("rejects", "topic LIKE 'cordon/px/%%'") == len(bad),
               what="every reject")
    got = env.pg.query("SELECT topic, reason, detail FROM rejects WHERE topic LIKE 'cordon/px/%%'"
                       " ORDER BY received_at")
    assert sorted((t, r) for t, r, _ in got) == sorted((m[0], r) for m, r, _ in bad)
    for (m, reason, detail) in bad:
        assert any(t == m[0] and r == reason and detail in (dt or "") for t, r, dt in got), \
            (m, reason, detail, got)
    assert env.pg.count("welfare_calls", "site = %s", (site,)) == 1
    assert env.pg.count("need_events", "site = %s", (site,)) == 0
    assert d.alive()


def test_people_rows_one_by_one(env, cordond):
    """A CHECK a DBA added refuses some steps, calls and drop-offs: the batch
    is written row by row (each table's one-row statement, the needs fold
    included), exactly the refused rows become store_failed rejects and
    the rest land. A step id reused with other content is stored under a
    derived key and folds into its need like any step."""
    d = cordond()
    site = "p1"
    for table in ("need_events", "welfare_calls", "dropoffs"):
        env.pg.query("ALTER TABLE %s ADD CONSTRAINT no_refuse CHECK (note IS DISTINCT FROM"
                     " 'refuse')" % table)
    ts = "2020-02-16T09:%02d:00+08:00"
    msgs = []
    for i in range(10):
        note = "refuse" if i % 3 == 1 else "ok"
        msgs += [need(site, "N-%d" % i, "1", "open", ts % i, household="1-1-10%d" % i,
                      note=note),
                 call(site, "1-1-10%d" % i, "W-%d" % i, ts % i, "reached", note=note),
                 dropoff(site, "DP-%d" % i, ts % i, "1-1-10%d" % i, "placed", note=note)]
    publish_many(env.broker.port, msgs)
    refused = [i for i in range(10) if i % 3 == 1]
    wait_until(lambda: env.pg.count("rejects", "reason = 'store_failed'") == 3 * len(refused),
               what="the refused rows turned rejects")
    marker(env, site, "M1")
    assert env.pg.count("need_events", "site = %s", (site,)) == 10 - len(refused)
    assert env.pg.count("welfare_calls", "site = %s", (site,)) == 10 - len(refused)
    assert env.pg.count("dropoffs", "site = %s", (site,)) == 10 - len(refused)
    assert sorted(r[0] for r in env.pg.query("SELECT need_id FROM needs WHERE site = %s",
                                             (site,))) == \
        sorted("N-%d" % i for i in range(10) if i not in refused)
    assert all("23514" in r[0] for r in env.pg.query(
        "SELECT detail FROM rejects WHERE reason = 'store_failed'"))

    # N-0's step 1 again with other content (a device that numbers again):
    # a derived key, and the fold takes it (a later open keeps the first).
    publish_many(env.broker.port, [need(site, "N-0", "1", "deliver", "2020-02-16T12:00:00+08:00",
                                        by="vol-01")])
    wait_until(lambda: env.pg.count("need_events", "site = %s AND need_id = 'N-0'",
                                    (site,)) == 2, what="the reused step id stored")
    assert env.pg.scalar("SELECT count(*) FROM need_events WHERE site = %s AND event_key LIKE"
                         " %s", (site, site + "/need/N-0/1~%")) == 1
    assert need_row(env, site, "N-0")[2] == "delivered"
    assert d.alive()
