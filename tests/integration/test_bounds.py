"""The largest valid values through the real normalizer into the real tables
(issue 12, point 6): for every event table, the longest ids each field and
topic level allows, the extreme but valid numbers, the edges of time. Each
message is published twice: a row with a record id is stored exactly once,
with exactly the values sent; a message without one (an ack) and a reject
are per delivery, so twice (issue 14.2: only the broker's replays are the
same message again, see test_replays.py). A value beyond what its column holds is a
reject with its own reason, decided by the normalizer, never a PostgreSQL
error that sends its batch row by row (docs/topics.md, "Limits").

One cordond for the module; each test has its own site.
"""

import json
from decimal import Decimal

import pytest

from harness import publish_many, wait_until

LONG = 120
PROBLEMS = ("row by row", "store_failed", "key_too_long")


def site_id(tag):
    """A site id of 64 characters, the most SPEC 2 allows."""
    return (tag + "-" + "0123456789_" * 7)[:64]


def longest(ch, n=64):
    return ch * n


def utf8_id(prefix):
    """64 bytes of UTF-8 with '/', '%' and three-byte characters."""
    s = prefix + "/%"
    while len((s + "编").encode()) <= 64:
        s += "编"
    s += "x" * (64 - len(s.encode()))
    assert len(s.encode()) == 64
    return s


def us(pg, expr, args=None):
    """A timestamptz as exact microseconds since the epoch (no datetime: year
    10000 does not fit Python's). expr: "<column> FROM <table> WHERE ..."."""
    col, rest = expr.split(" FROM ", 1)
    return pg.scalar("SELECT (extract(epoch FROM %s) * 1000000)::bigint FROM %s" % (col, rest),
                     args)


@pytest.fixture(scope="module")
def daemon(env):
    d = env.cordond()
    yield d
    log = d.log()
    for p in PROBLEMS:
        assert p not in log, "cordond's log says %r:\n%s" % (p, log[-3000:])
    env.stop_daemons([d])


def publish_twice(env, messages):
    """Publish every message, then all of them again (the same records sent
    again by a client: new messages, not the broker's replays)."""
    msgs = [(t, json.dumps(b).encode() if not isinstance(b, bytes) else b) for t, b in messages]
    publish_many(env.broker.port, msgs + msgs)


def rows(pg, sql, args, n):
    """Wait until sql gives n rows; return them."""
    return wait_until(lambda: (lambda r: r if len(r) >= n else None)(pg.query(sql, args)), LONG,
                      what="%d rows of %s %r" % (n, sql, args))


def settled(env, daemon, site):
    """Wait until cordond has stored a marker published after everything else
    of `site` (so a row that should not be there would be)."""
    topic = "cordon/%s/gate/MARK/event" % site
    publish_many(env.broker.port, [(topic, json.dumps(
        {"id": "mark", "ts": 1581849120, "temp_c": 36.6}).encode())])
    wait_until(lambda: env.pg.count("gate_events", "event_key = %s", ("%s/MARK/mark" % site,)),
               LONG, what="the marker of " + site)


# ---------------------------------------------------------------- gate_events

def test_gate_events(env, daemon):
    site, gate = site_id("bg"), longest("G")
    topic = "cordon/%s/gate/%s/event" % (site, gate)
    card, person = longest("C"), longest("P")
    cases = [
        # id, ts, temp_c, want microseconds, want temp, want flags
        (utf8_id("a"), "1970-01-01T00:00:00+18:00", 999.94, -64800 * 10**6,
         Decimal("999.9"), ["implausible", "clock_skew"]),
        (utf8_id("b"), "9999-12-31T23:59:60.999999-18:00", -999.94, 253402365600999999,
         Decimal("-999.9"), ["implausible", "clock_skew"]),
        (utf8_id("c"), 99999999999999, 45.0, 99999999999999000, Decimal("45.0"), ["clock_skew"]),
        (utf8_id("d"), "99999999999", 30.0, 99999999999000000, Decimal("30.0"), ["clock_skew"]),
        (utf8_id("e"), 0, None, 0, None, ["clock_skew"]),
        (-9223372036854775808, 1581849120, -0.04, 1581849120 * 10**6, Decimal("0.0"),
         ["implausible", "clock_skew"]),
    ]
    msgs = [(topic, {"id": i, "ts": ts, "temp_c": t, "card": card, "person": person,
                     "direction": "out", "mask": False}) for i, ts, t, _, _, _ in cases]
    publish_twice(env, msgs)
    got = rows(env.pg, "SELECT event_key, site, gate, card, person, direction, temp_c, mask, flags,"
               " vendor FROM gate_events WHERE site = %s ORDER BY event_key", (site,), len(cases))
    settled(env, daemon, site)
    assert env.pg.count("gate_events", "site = %s AND gate <> 'MARK'", (site,)) == len(cases)
    for i, ts, temp, want_us, want_temp, flags in cases:
        key = "%s/%s/%s" % (site, gate, i)
        row = [r for r in got if r[0] == key]
        assert len(row) == 1, (key, got)
        assert row[0][1:] == (site, gate, card, person, "out", want_temp, False, flags,
                              "canonical"), row
        assert us(env.pg, "ts FROM gate_events WHERE event_key = %s", (key,)) == want_us, (key, ts)
    assert len(max((r[0] for r in got), key=len).encode()) == 64 + 1 + 64 + 1 + 64


def test_temperature_beyond_the_column_is_a_reject(env, daemon):
    """999.96 rounds to 1000.0, which numeric(4,1) cannot hold: the normalizer
    rejects it with its own reason; the 199 events around it go into
    PostgreSQL in their batch (never row by row) and nothing else is lost."""
    site = site_id("bt")
    topic = "cordon/%s/gate/G01/event" % site
    msgs = [(topic, {"id": "T-%03d" % i, "ts": 1581849120 + i, "temp_c": 36.6})
            for i in range(200)]
    msgs[100] = (topic, {"id": "T-100", "ts": 1581849220, "temp_c": 999.96})
    msgs[150] = (topic, {"id": "T-150", "ts": 1581849270, "temp_c": -1000})
    publish_twice(env, msgs)
    rejects = rows(env.pg, "SELECT reason, detail, payload_len FROM rejects WHERE topic = %s"
                   " ORDER BY detail", (topic,), 4)
    settled(env, daemon, site)
    # a reject per delivery: each bad message was published twice
    assert [r[0] for r in rejects] == ["temperature_out_of_range"] * 4
    assert rejects[0][1].startswith("temp_c -1000 is beyond what temp_c holds")
    assert rejects[1][1] == rejects[0][1]
    assert rejects[2][1].startswith("temp_c 999.96 is beyond what temp_c holds")
    assert rejects[3][1] == rejects[2][1]
    assert env.pg.count("rejects", "topic = %s", (topic,)) == 4
    assert env.pg.count("gate_events", "site = %s AND gate = 'G01'", (site,)) == 198
    assert env.pg.scalar("SELECT temp_c FROM gate_events WHERE event_key = %s",
                         (site + "/G01/T-099",)) == Decimal("36.6")


# ---------------------------------------------------------------- hotline

def test_hotline_longest_call_ids(env, daemon):
    """A 64-character call id and 64-character step ids that differ only at
    their end: all 3 steps are stored (a key cut at 200 bytes kept 1 of 3),
    and they fold into one call. A '/' in the ids cannot merge two steps."""
    site = site_id("bh")
    topic = "cordon/%s/hotline" % site
    call = longest("c")
    steps = [("x" * 61 + "-%02d" % n, action, "2020-02-16T18:3%d:00.5+08:00" % n)
             for n, action in enumerate(("open", "update", "resolve"))]
    msgs = [(topic, {"call_id": call, "id": i, "action": a, "ts": ts, "household": longest("h"),
                     "category": longest("m"), "urgent": True, "note": "n" * 300})
            for i, a, ts in steps]
    slashes = [("a/b", "c"), ("a", "b/c"), (longest("/"), longest("s"))]
    msgs += [(topic, {"call_id": c, "id": i, "action": "open", "ts": 1581849120})
             for c, i in slashes]
    publish_twice(env, msgs)
    got = rows(env.pg, "SELECT event_key, action, household, category, urgent, length(note)"
               " FROM hotline_events WHERE site = %s AND call_id = %s ORDER BY ts",
               (site, call), 3)
    settled(env, daemon, site)
    assert [r[0] for r in got] == ["%s/hotline/%s/%s" % (site, call, i) for i, _, _ in steps]
    assert [r[1:] for r in got] == [(a, longest("h"), longest("m"), True, 255)
                                    for _, a, _ in steps]
    assert env.pg.count("hotline_events", "site = %s", (site,)) == 3 + 3
    call_row = env.pg.query("SELECT status, household, category, urgent FROM hotline_calls"
                            " WHERE site = %s AND call_id = %s", (site, call))
    assert call_row == [("resolved", longest("h"), longest("m"), True)]
    assert us(env.pg, "opened_at FROM hotline_calls WHERE site = %s AND call_id = %s",
              (site, call)) == 1581849000500000
    assert us(env.pg, "resolved_at FROM hotline_calls WHERE site = %s AND call_id = %s",
              (site, call)) == 1581849120500000
    keys = dict(env.pg.query("SELECT call_id, event_key FROM hotline_events WHERE site = %s"
                             " AND call_id <> %s", (site, call)))
    assert keys == {"a/b": site + "/hotline/a%2Fb/c", "a": site + "/hotline/a/b/c",
                    longest("/"): site + "/hotline/" + "%2F" * 64 + "/" + longest("s")}
    assert env.pg.count("hotline_calls", "site = %s", (site,)) == 4


# ---------------------------------------------------------------- isolation_checks

def test_isolation_checks(env, daemon):
    """64-character household and person, the coldest and hottest storable
    readings, and as many symptoms as fit, every one a quote or a backslash
    (the text[] literal doubles them)."""
    site, hh = site_id("bi"), longest("H")
    topic = "cordon/%s/isolation/%s/check" % (site, hh)
    symptoms = ['"', "\\"] * 64
    msgs = [(topic, {"id": longest("k"), "ts": "9999-12-31T23:59:59.999999+18:00",
                     "person": longest("P"), "temp_c": -999.9, "symptoms": symptoms}),
            (topic, {"id": longest("l"), "ts": "1970-01-01T00:00:00Z", "temp_c": "999.94"})]
    publish_twice(env, msgs)
    got = rows(env.pg, "SELECT event_key, household, person, temp_c, symptoms, flags"
               " FROM isolation_checks WHERE site = %s ORDER BY ts", (site,), 2)
    settled(env, daemon, site)
    assert got == [
        ("%s/%s/%s" % (site, hh, longest("l")), hh, None, Decimal("999.9"), [],
         ["implausible", "clock_skew"]),
        ("%s/%s/%s" % (site, hh, longest("k")), hh, longest("P"), Decimal("-999.9"), symptoms,
         ["implausible", "clock_skew"]),
    ]
    assert us(env.pg, "max(ts) FROM isolation_checks WHERE site = %s", (site,)) \
        == (253402300799 - 18 * 3600) * 10**6 + 999999
    assert env.pg.count("isolation_checks", "site = %s", (site,)) == 2


# ---------------------------------------------------------------- the other tables

def test_disinfections(env, daemon):
    site, zone = site_id("bd"), longest("Z")
    topic = "cordon/%s/disinfection/%s" % (site, zone)
    agent = "氯" * 100    # 300 bytes: cut at 255 on a character boundary (85 characters)
    publish_twice(env, [(topic, {"id": utf8_id("d"), "ts": 99999999999999, "crew": longest("w"),
                                 "agent": agent})])
    got = rows(env.pg, "SELECT event_key, zone, crew, agent, flags FROM disinfections"
               " WHERE site = %s", (site,), 1)
    settled(env, daemon, site)
    assert got == [("%s/%s/%s" % (site, zone, utf8_id("d")), zone, longest("w"), "氯" * 85,
                    ["clock_skew"])]
    assert us(env.pg, "ts FROM disinfections WHERE site = %s", (site,)) == 99999999999999000


def test_gate_status(env, daemon):
    """The latest ISO 8601 time there is (at -18:00, the largest offset);
    an offset beyond 18:00 is no zone's and is bad_time."""
    site, gate = site_id("bs"), longest("S")
    topic = "cordon/%s/gate/%s/status" % (site, gate)
    beyond = {"state": "open", "id": "beyond", "ts": "9999-12-31T23:59:59-18:30"}
    publish_twice(env, [(topic, {"state": "forced", "id": longest("i"),
                                 "ts": "9999-12-31T23:59:60.999999-18:00"}), (topic, beyond)])
    got = rows(env.pg, "SELECT event_key, gate, state, flags FROM gate_status WHERE site = %s",
               (site,), 1)
    settled(env, daemon, site)
    assert got == [("%s/%s/%s" % (site, gate, longest("i")), gate, "forced", ["clock_skew"])]
    assert us(env.pg, "ts FROM gate_status WHERE site = %s", (site,)) == 253402365600999999
    assert env.pg.query("SELECT reason FROM rejects WHERE payload = %s",
                        (json.dumps(beyond).encode(),)) == [("bad_time",)] * 2   # per delivery


def test_acks(env, daemon):
    site = site_id("ba")
    topic = "cordon/%s/ack" % site
    publish_twice(env, [(topic, {"alert_id": longest("a"), "by": longest("b"),
                                 "action": "resolve", "note": "x" * 400,
                                 "ts": 99999999999999})])
    got = rows(env.pg, "SELECT alert_id, by_whom, action, length(note) FROM acks"
               " WHERE site = %s", (site,), 2)
    settled(env, daemon, site)
    # an ack has no record id: published twice, it is two acks
    assert got == [(longest("a"), longest("b"), "resolve", 255)] * 2
    # the largest epoch milliseconds, to the microsecond (not 99999999999998992)
    assert us(env.pg, "ts FROM acks WHERE site = %s", (site,)) == 99999999999999000
