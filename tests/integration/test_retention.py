"""[site] retention_days (SPEC 5): cordond's retention thread removes the
event rows whose device time is older than that many days, and the folded
rows that are over (resolved alerts with their transitions, resolved
hotline calls, delivered or cancelled needs), in every table; newer rows,
open alerts, open calls and open needs with their steps stay; 0 keeps
everything. A run happens at start and after each SIGHUP, and says so in
the log: the test waits for those lines, never for a time."""

import re
import signal

import harness
from harness import free_port, metric, scrape, wait_until

SITE = "rt"

# Every table a run removes from, as its log line and the metric name them.
TABLES = ["gate_events", "gate_status", "disinfections", "hotline_events", "hotline_calls",
          "isolation_checks", "acks", "need_events", "needs", "welfare_calls", "dropoffs",
          "rejects", "alerts", "alert_transitions", "event_keys_reused",
          "notify_inbox", "notify_messages", "notify_alerts", "silences"]

# How many days old each generation of rows is.
OLD, NEW = 40, 10
# Old gate events beyond the one of insert_rows: more than a batch (5,000).
BULK = 12000


def insert_rows(pg, tag, days):
    """One row (or the set below) in every table, `days` old by its own
    time column; keys carry `tag`. Returns nothing: see expected_*()."""
    ago = "now() - make_interval(days => %d)" % days
    q = pg.query
    q("INSERT INTO gate_events (event_key, site, gate, ts, received_at, vendor)"
      " VALUES (%%s, %%s, 'G1', %s, now(), 'canonical')" % ago, ("ge-" + tag, SITE))
    q("INSERT INTO gate_status (event_key, site, gate, ts, received_at, state)"
      " VALUES (%%s, %%s, 'G1', %s, now(), 'online')" % ago, ("gs-" + tag, SITE))
    q("INSERT INTO disinfections (event_key, site, zone, ts, received_at)"
      " VALUES (%%s, %%s, 'Z1', %s, now())" % ago, ("di-" + tag, SITE))
    q("INSERT INTO isolation_checks (event_key, site, household, ts, received_at)"
      " VALUES (%%s, %%s, 'H1', %s, now())" % ago, ("ic-" + tag, SITE))
    q("INSERT INTO acks (event_key, site, alert_id, by_whom, action, ts, received_at)"
      " VALUES (%%s, %%s, 'a-x', 'op', 'ack', %s, now())" % ago, ("ak-" + tag, SITE))
    q("INSERT INTO welfare_calls (event_key, site, household, ts, received_at, outcome)"
      " VALUES (%%s, %%s, 'H1', %s, now(), 'reached')" % ago, ("wc-" + tag, SITE))
    q("INSERT INTO dropoffs (event_key, site, household, ts, received_at, action)"
      " VALUES (%%s, %%s, 'H1', %s, now(), 'placed')" % ago, ("do-" + tag, SITE))
    # rejects and event_keys_reused have no device time: their receive time
    q("INSERT INTO rejects (reject_key, received_at, topic, reason, payload, payload_len)"
      " VALUES (%%s, %s, 'cordon/rt/gate/G1/event', 'not_json', 'x', 1)" % ago, ("rj-" + tag,))
    q("INSERT INTO event_keys_reused (event_key, content_hash, derived_key, event_table,"
      " received_at) VALUES (%%s, 'h', %%s, 'gate_events', %s)" % ago,
      ("ek-" + tag, "ek-" + tag + "~0"))
    # hotline: a resolved call (over), an open one (stays, with its steps)
    for call, status in (("done", "resolved"), ("open", "open")):
        cid = "c-%s-%s" % (call, tag)
        q("INSERT INTO hotline_calls (call_id, site, status, opened_at, resolved_at, updated_at)"
          " VALUES (%%s, %%s, %%s, %s, %s, now())"
          % (ago, ago if status == "resolved" else "NULL"), (cid, SITE, status))
        q("INSERT INTO hotline_events (event_key, site, call_id, action, ts, received_at)"
          " VALUES (%%s, %%s, %%s, 'open', %s, now())" % ago, ("he-" + cid, SITE, cid))
    # needs: delivered and cancelled (over), open and assigned (stay, with their steps)
    for need, status in (("del", "delivered"), ("can", "cancelled"), ("open", "open"),
                         ("asg", "assigned")):
        nid = "n-%s-%s" % (need, tag)
        q("INSERT INTO needs (site, need_id, status, opened_at, delivered_at, cancelled_at,"
          " updated_at) VALUES (%%s, %%s, %%s, %s, %s, %s, now())"
          % (ago, ago if status == "delivered" else "NULL",
             ago if status == "cancelled" else "NULL"), (SITE, nid, status))
        q("INSERT INTO need_events (event_key, site, need_id, action, ts, received_at)"
          " VALUES (%%s, %%s, %%s, 'open', %s, now())" % ago, ("ne-" + nid, SITE, nid))
    # alerts: resolved (over, with its two transitions), raised and acked (stay)
    for alert, state in (("res", "resolved"), ("raised", "raised"), ("acked", "acked")):
        aid = "a-%s-%s" % (alert, tag)
        q("INSERT INTO alerts (alert_id, site, kind, severity, state, subject, event_key,"
          " raised_at, updated_at, resolved_at, count)"
          " VALUES (%%s, %%s, 'isolation_symptom', 'warning', %%s, %%s, %%s, %s, %s, %s, 1)"
          % (ago, ago, ago if state == "resolved" else "NULL"),
          (aid, SITE, state, "person:" + aid, "ic-" + tag))
        for tr in ("raised", state) if state != "raised" else ("raised",):
            q("INSERT INTO alert_transitions (alert_id, transition, count, at, severity)"
              " VALUES (%%s, %%s, 1, %s, 'warning')" % ago, (aid, tr))
    # cordon-notify's: routed (over) and not yet routed (stays); a message
    # sent (over, with its item) and one pending (stays); an alert resolved
    # (over) and one still waiting for its ack (stays); a silence over and
    # one that began as long ago but is still in force (stays).
    for routed in (True, False):
        aid = "ni-%s-%s" % (routed, tag)
        q("INSERT INTO notify_inbox (alert_id, transition, count, site, kind, alert,"
          " received_at, routed_at) VALUES (%%s, 'raised', 1, %%s, 'fever', '{}', %s, %s)"
          % (ago, ago if routed else "NULL"), (aid, SITE))
    for status in ("sent", "pending"):
        mid = q("INSERT INTO notify_messages (route, receiver, transition, status, created_at,"
                " send_after, next_attempt_at) VALUES (%%s, 'r', 'raised', %%s, %s, %s, %s)"
                " RETURNING id" % (ago, ago, ago), ("nm-%s-%s" % (status, tag), status))[0][0]
        q("INSERT INTO notify_items (message_id, alert_id, transition, alert)"
          " VALUES (%s, 'x', 'raised', '{}')", (mid,))
    for state in ("resolved", "raised"):
        q("INSERT INTO notify_alerts (alert_id, route, site, kind, subject, severity, state,"
          " alert, first_at) VALUES (%%s, 'r', %%s, 'fever', 's', 'warning', %%s, '{}', %s)"
          % ago, ("na-%s-%s" % (state, tag), SITE, state))
    for over in (True, False):
        q("INSERT INTO silences (site, ends_at, starts_at, created_at, reason)"
          " VALUES (%%s, %s, %s, %s, %%s)"
          % ("%s + interval '1 hour'" % ago if over else "now() + interval '1 day'", ago, ago),
          (SITE, "si-%s-%s" % (over, tag)))


# What insert_rows puts in each table, and how many of them a run removes
# when they are older than retention_days.
PER_TAG = {t: 1 for t in TABLES}
PER_TAG.update({"hotline_calls": 2, "hotline_events": 2, "needs": 4, "need_events": 4,
                "alerts": 3, "alert_transitions": 5, "notify_inbox": 2, "notify_messages": 2,
                "notify_alerts": 2, "silences": 2})
REMOVED_PER_TAG = {t: 1 for t in TABLES}
REMOVED_PER_TAG.update({"need_events": 2, "needs": 2, "alert_transitions": 2})


def counts(pg, tag):
    """Rows of each table whose key carries `tag`."""
    key = {"rejects": "reject_key", "hotline_calls": "call_id", "needs": "need_id",
           "alerts": "alert_id", "alert_transitions": "alert_id", "notify_inbox": "alert_id",
           "notify_messages": "route", "notify_alerts": "alert_id", "silences": "reason"}
    return {t: pg.scalar("SELECT count(*) FROM %s WHERE %s LIKE %%s" % (t, key.get(t, "event_key")),
                         ("%-" + tag + "%",)) for t in TABLES}


def open_things(pg, tag):
    return (sorted(r[0] for r in pg.query("SELECT alert_id FROM alerts WHERE alert_id LIKE %s",
                                          ("%-" + tag,))),
            sorted(r[0] for r in pg.query("SELECT need_id FROM needs WHERE need_id LIKE %s",
                                          ("%-" + tag,))),
            sorted(r[0] for r in pg.query("SELECT call_id FROM hotline_calls"
                                          " WHERE call_id LIKE %s", ("%-" + tag,))),
            sorted(r[0] for r in pg.query("SELECT need_id FROM need_events WHERE need_id LIKE %s",
                                          ("%-" + tag,))))


def runs(d):
    return re.findall(r"retention run: removed (\d+) rows older than \S+ \((\d+) days\) in \d+ ms:"
                      r" (.*)", d.log())


def offs(d):
    return d.log().count("retention off (retention_days = 0)")


def sighup(d, days):
    """Rewrite d's config with retention_days and SIGHUP it; return once it
    has reloaded."""
    text = open(d.conffile).read()
    text = re.sub(r"retention_days = \d+", "retention_days = %d" % days, text)
    with open(d.conffile, "w") as f:
        f.write(text)
    before = d.log().count("configuration reloaded")
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: d.log().count("configuration reloaded") > before,
               what="cordond reloading its config")


def test_retention(env, ctl, cordond):
    pg = env.pg
    # the register, some of it long ago: never removed
    ctl("zone", "add", SITE, "Z1")
    harness.import_households(env, ctl, SITE, [("H1", ["C1"])])
    pg.query("INSERT INTO isolation_orders (site, household, starts_at, ends_at, released_at)"
             " VALUES (%s, 'H1', now() - interval '400 days', now() - interval '386 days',"
             " now() - interval '390 days')", (SITE,))
    register = [pg.scalar("SELECT count(*) FROM %s" % t)
                for t in ("sites", "zones", "households", "cards", "isolation_orders")]
    assert register == [1, 1, 1, 1, 1]
    for tag, days in (("old", OLD), ("new", NEW), ("ancient", 400)):
        insert_rows(pg, tag, days)
    pg.query("INSERT INTO gate_events (event_key, site, gate, ts, received_at, vendor)"
             " SELECT 'bulk:' || i, %s, 'G2', now() - interval '40 days' - i * interval '1 s',"
             " now(), 'canonical' FROM generate_series(1, %s) i", (SITE, BULK))
    before = {tag: counts(pg, tag) for tag in ("old", "new", "ancient")}
    for tag in before:
        assert before[tag] == PER_TAG, (tag, before[tag])

    # 0 at start: the run at start removes nothing
    port = free_port()
    d = cordond({"site": {"retention_days": "0"}, "metrics": {"listen": "127.0.0.1:%d" % port}})
    wait_until(lambda: offs(d) >= 1, what="the retention thread's first turn (off)")
    assert {tag: counts(pg, tag) for tag in before} == before
    assert pg.count("gate_events", "event_key LIKE 'bulk:%%'") == BULK

    # 30 by SIGHUP: a run at once; older rows go, in batches, from every table
    sighup(d, 30)
    wait_until(lambda: runs(d), what="a retention run after the SIGHUP")
    (total, days, listed), = runs(d)
    removed = {t: int(n) for t, n in re.findall(r"(\w+) (\d+)", listed)}
    want = {t: 2 * n for t, n in REMOVED_PER_TAG.items()}    # old and ancient
    want["gate_events"] += BULK
    assert days == "30" and removed == want and int(total) == sum(want.values()), runs(d)
    assert counts(pg, "new") == PER_TAG                      # 10 days old: kept
    left = {t: PER_TAG[t] - REMOVED_PER_TAG[t] for t in TABLES}
    assert counts(pg, "old") == left and counts(pg, "ancient") == left
    assert pg.count("gate_events", "event_key LIKE 'bulk:%%'") == 0
    # what stays of the old ones: open and acked alerts, open calls, open and
    # assigned needs with their steps
    assert open_things(pg, "old") == (
        ["a-acked-old", "a-raised-old"], ["n-asg-old", "n-open-old"], ["c-open-old"],
        ["n-asg-old", "n-open-old"])
    assert pg.scalar("SELECT count(*) FROM hotline_events WHERE call_id = 'c-open-old'") == 1
    assert pg.scalar("SELECT count(*) FROM alert_transitions WHERE alert_id = 'a-acked-old'") == 2
    assert [pg.scalar("SELECT count(*) FROM %s" % t)
            for t in ("sites", "zones", "households", "cards", "isolation_orders")] == register
    text = {}
    wait_until(lambda: text.update(m=scrape(port)) or
               metric(text["m"], 'cordon_retention_runs_total{result="done"}') == 1,
               what="the run in the metrics")
    for t in TABLES:
        assert metric(text["m"], 'cordon_retention_rows_removed_total{table="%s"}' % t) \
            == want[t], t

    # 0 by SIGHUP: another turn, and 40-day-old rows stay
    insert_rows(pg, "again", OLD)
    n = offs(d)
    sighup(d, 0)
    wait_until(lambda: offs(d) > n, what="the retention thread's turn after the SIGHUP (off)")
    assert counts(pg, "again") == PER_TAG and len(runs(d)) == 1
    d.stop()

    # a start with 30: the run at start removes them
    d = cordond({"site": {"retention_days": "30"}})
    wait_until(lambda: runs(d), what="the retention run at start")
    assert counts(pg, "again") == {t: PER_TAG[t] - REMOVED_PER_TAG[t] for t in TABLES}
    assert counts(pg, "new") == PER_TAG
    assert d.alive()

