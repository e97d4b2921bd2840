"""The bound on open alerts (issue 13, point 5): [rules] max_open_alerts per
site and kind; the subjects past it fold into one aggregate alert of that
site and kind (subject "*") that counts them and shows a few; the broker
keeps one retained state per open alert, so a flood of unknown cards leaves
max_open_alerts + 1 retained messages, not one per card; a restart restores
the same open set; a database from before the bound is folded at start.

Real Mosquitto and PostgreSQL; waits are bounded, nothing is timed.
"""

import json
import os
import re
import threading

import harness
from harness import (HOUSEHOLDS_HEADER, TIMEOUT, gate_event, publish_many, register_loads,
                     wait_until)

LONG = 120
BOUND = 5


def register_site(env, ctl, site):
    """A site with one registered card: unknown cards are alerts there."""
    path = os.path.join(env.dir, "%s.csv" % site)
    with open(path, "w", encoding="utf-8") as f:
        f.write(HOUSEHOLDS_HEADER + "1-1-101,1,1,101,2,,%s-REG\n" % site.upper())
    ctl("import", "households", path, "--site", site)


def retained(port, site):
    """The retained messages the broker holds under cordon/<site>/#, as
    {topic: payload}. A marker published (not retained) after our SUBACK
    comes after every retained message the broker sends for the
    subscription, so when it arrives we have them all."""
    got, lock, done = {}, threading.Lock(), threading.Event()
    marker = "cordon/%s/alerts/zz-marker" % site
    c = harness._client(port, "retained")

    def on_message(cl, ud, msg):
        if msg.topic == marker:
            done.set()
        elif msg.retain:
            with lock:
                got[msg.topic] = bytes(msg.payload)
    subscribed = threading.Event()
    c.on_message = on_message
    c.on_subscribe = lambda cl, ud, mid, granted: subscribed.set()
    c.subscribe("cordon/%s/#" % site, qos=1)
    try:
        assert subscribed.wait(TIMEOUT), "no SUBACK"
        c.publish(marker, b"", qos=1, retain=False)
        assert done.wait(TIMEOUT), "the marker did not come back"
        with lock:
            return dict(got)
    finally:
        c.disconnect()
        c.loop_stop()


def open_rows(env, site):
    return env.pg.query("SELECT alert_id, subject, count, distinct_subjects, sample"
                        " FROM alerts WHERE site = %s AND kind = 'unknown_card'"
                        " AND state <> 'resolved' ORDER BY subject", (site,))


def aggregate_row(env, site):
    rows = [r for r in open_rows(env, site) if r[1] == "*"]
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


class Alerts:
    def __init__(self, port, site):
        self.site = site
        self.col = harness.Collector(port, "cordon/%s/alert/#" % site)

    def all(self):
        return [json.loads(p) for _, p in self.col.snapshot()]

    def close(self):
        self.col.close()


def test_flood_of_unknown_cards_folds(env, ctl):
    site = "abf"
    n = 200
    register_site(env, ctl, site)
    al = Alerts(env.broker.port, site)
    try:
        d = env.cordond({"rules": {"max_open_alerts": str(BOUND), "repeat_interval": "1s"}})
        wait_until(lambda: register_loads(d) >= 1, what="the register")
        publish_many(env.broker.port, [
            gate_event(site, "G01", "F-%04d" % i, card="UK-%04d" % i, person="")
            for i in range(n)])

        # every event stored exactly once
        wait_until(lambda: env.pg.count("gate_events", "site = %s", (site,)) >= n, LONG,
                   what="%d gate events stored" % n)
        assert env.pg.scalar("SELECT count(DISTINCT event_key) FROM gate_events"
                             " WHERE site = %s", (site,)) == n
        assert env.pg.count("gate_events", "site = %s", (site,)) == n

        # 5 alerts and one aggregate counting the other 195 (exact below 256)
        wait_until(lambda: (aggregate_row(env, site) or (0, 0, 0, 0))[3] == n - BOUND, LONG,
                   what=lambda: "the aggregate counting %d cards (rows %r)"
                   % (n - BOUND, open_rows(env, site)))
        rows = open_rows(env, site)
        assert len(rows) == BOUND + 1, rows
        assert sorted(r[1] for r in rows if r[1] != "*") == \
            ["card:UK-%04d" % i for i in range(BOUND)], rows
        agg = aggregate_row(env, site)
        assert agg[2] == n - BOUND, agg            # triggers
        assert len(agg[4].split(" ")) == 4 and agg[4].startswith("card:UK-0005"), agg

        # on the topic: the aggregate's message with count and sample
        msgs = [a for a in al.all() if a["subject"] == "*"]
        wait_until(lambda: any(a["distinct"] == n - BOUND
                               for a in al.all() if a["subject"] == "*"), LONG,
                   what="the aggregate's update on the topic")
        last = [a for a in al.all() if a["subject"] == "*"][-1]
        assert last["kind"] == "unknown_card" and last["alert_id"] == agg[0], last
        assert last["sample"] == agg[4].split(" "), last
        assert "195 distinct cards" in last["text"], last["text"]
        assert sum(1 for a in al.all() if a["transition"] == "raised") == BOUND + 1, \
            [(a["subject"], a["transition"]) for a in al.all()]
        assert msgs[0]["transition"] == "raised"

        # the broker keeps one retained state per open alert: 6, not 200
        held = retained(env.broker.port, site)
        assert len(held) == BOUND + 1, sorted(held)
        assert {t.rsplit("/", 1)[1] for t in held} == {r[0] for r in rows}, sorted(held)
        assert not [t for t in held if "/alert/" in t], sorted(held)

        # a restart restores the same open set: a new card folds into the
        # same aggregate, a known one updates its own alert
        d.stop()
        before = register_loads(d)
        env.restart(d)
        wait_until(lambda: register_loads(d) > before, what="the register after the restart")
        # not clustered "rule state restored: N open alerts", clustered
        # "rule state of 16 shard(s) restored (...): N open alerts"
        # "register loaded" is logged before the main loop takes the
        # snapshot and restores the rule state: waited for, not raced
        wait_until(lambda: re.search(r"rule state (of \d+ shard\(s\) )?restored[^:]*: %d open"
                                     r" alerts" % (BOUND + 1), d.log()),
                   what=lambda: "the rule state restored: %s" % d.log()[-2000:])
        assert "folded into aggregate" not in d.log()
        publish_many(env.broker.port, [
            gate_event(site, "G01", "F-%04d" % n, card="UK-%04d" % n, person=""),
            gate_event(site, "G01", "F-%04d" % (n + 1), card="UK-0000", person="")])
        wait_until(lambda: (aggregate_row(env, site) or (0, 0, 0, 0))[3] == n - BOUND + 1, LONG,
                   what=lambda: "the aggregate counting one more (rows %r)" % open_rows(env, site))
        wait_until(lambda: [r[2] for r in open_rows(env, site) if r[1] == "card:UK-0000"] == [2],
                   LONG, what="UK-0000's alert updated")
        after = open_rows(env, site)
        assert [(r[0], r[1]) for r in after] == [(r[0], r[1]) for r in rows], (rows, after)
        assert env.pg.count("alerts", "site = %s AND state = 'resolved'", (site,)) == 0
        assert len(retained(env.broker.port, site)) == BOUND + 1
        assert d.alive()
        d.stop()
    finally:
        al.close()


def test_open_alerts_of_an_old_database_fold_at_start(env, ctl):
    """20 open unknown_card alerts from before the bound, each with its
    retained state on the broker: at start 5 are restored, 15 fold into a
    new aggregate and are resolved as "folded", their retained state
    cleared."""
    site = "abo"
    register_site(env, ctl, site)
    old = []
    for i in range(20):
        aid = "%032x" % (0xab0000 + i)
        subject = "card:OLD-%02d" % i
        env.pg.query(
            "INSERT INTO alerts (alert_id, site, kind, severity, state, subject, event_key,"
            " gate, card, raised_at, updated_at, count, reason)"
            " VALUES (%s, %s, 'unknown_card', 'warning', 'raised', %s, %s, 'G01', %s,"
            " now() - interval '1 hour' + %s * interval '1 second', now() - interval '1 hour',"
            " 1, 'unregistered')",
            (aid, site, subject, "%s/G01/O-%d" % (site, i), subject[5:], i))
        old.append(aid)
    c = harness._client(env.broker.port, "old")
    for aid in old:
        c.publish("cordon/%s/alerts/%s" % (site, aid), b'{"state":"raised"}', qos=1,
                  retain=True).wait_for_publish()
    c.disconnect()
    c.loop_stop()
    assert len(retained(env.broker.port, site)) == 20

    d = env.cordond({"rules": {"max_open_alerts": str(BOUND), "repeat_interval": "1s"}})
    wait_until(lambda: register_loads(d) >= 1, what="the register")
    wait_until(lambda: env.pg.count("alerts", "site = %s AND state = 'resolved'", (site,)) == 15,
               LONG, what="15 alerts resolved as folded")
    # the aggregate's count is republished after repeat_interval
    wait_until(lambda: (aggregate_row(env, site) or (0, 0, 0, 0))[3] == 15, LONG,
               what=lambda: "the aggregate counting 15 (rows %r)" % open_rows(env, site))
    rows = open_rows(env, site)
    assert [r[0] for r in rows if r[1] != "*"] == old[:BOUND], rows
    assert env.pg.count("alerts", "site = %s AND state = 'resolved' AND reason = 'folded'",
                        (site,)) == 15
    assert "15 open alerts past [rules] max_open_alerts" in d.log()
    # what the broker retains: the five kept and the aggregate
    wait_until(lambda: len(retained(env.broker.port, site)) == BOUND + 1, LONG,
               what="the retained states of the folded alerts cleared")
    held = retained(env.broker.port, site)
    assert {t.rsplit("/", 1)[1] for t in held} == {r[0] for r in rows}, sorted(held)
    assert d.alive()
    d.stop()


def test_many_open_alerts_fold_in_passes(env, ctl):
    """2,500 open alerts of one site and kind from before the bound: more
    than one pass loads (max_open_alerts + 1,000), so they fold in three
    passes, each loaded once the previous one's are resolved. In the end
    the oldest 5 are open, the other 2,495 resolved as folded once each,
    and the aggregate counts them (an estimate past 256: within 10 %)."""
    site, n = "abp", 2500
    register_site(env, ctl, site)
    env.pg.query(
        "INSERT INTO alerts (alert_id, site, kind, severity, state, subject, event_key,"
        " raised_at, updated_at, count)"
        " SELECT 'b' || lpad(to_hex(i), 31, '0'), %s, 'unknown_card', 'warning', 'raised',"
        " 'card:P-' || i, %s || '/G01/P-' || i, now() - interval '1 day' + i * interval '1 s',"
        " now() - interval '1 hour', 1 FROM generate_series(1, %s) i", (site, site, n))
    d = env.cordond({"rules": {"max_open_alerts": str(BOUND), "repeat_interval": "1s"}})
    wait_until(lambda: env.pg.count("alerts", "site = %s AND state = 'resolved'", (site,))
               == n - BOUND, LONG, what=lambda: "%d alerts resolved as folded (have %d)" % (
                   n - BOUND, env.pg.count("alerts", "site = %s AND state = 'resolved'", (site,))))
    assert env.pg.count("alerts", "site = %s AND reason = 'folded'", (site,)) == n - BOUND
    assert env.pg.scalar("SELECT count(*) FROM alert_transitions t JOIN alerts a USING (alert_id)"
                         " WHERE a.site = %s AND t.transition = 'resolved'", (site,)) == n - BOUND
    assert d.log().count("open alerts past [rules] max_open_alerts") == 3, \
        d.log().count("open alerts past [rules] max_open_alerts")
    wait_until(lambda: abs((aggregate_row(env, site) or (0, 0, 0, 0))[3] - (n - BOUND))
               <= (n - BOUND) / 10, LONG,
               what=lambda: "the aggregate counting about %d (%r)" % (n - BOUND,
                                                                       aggregate_row(env, site)))
    rows = open_rows(env, site)
    assert sorted(r[1] for r in rows) == ["*"] + sorted("card:P-%d" % i for i in range(1, BOUND + 1))
    assert d.alive()
    d.stop()
