"""Issue 12, points 1-3: what PostgreSQL refuses, and what cordond does with it.

Only bad data becomes a reject: a row PostgreSQL refuses for its data
(SQLSTATE class 22 or 23) is stored in `rejects` as `store_failed`; every
other refusal (privilege, renamed column, statement timeout, read-only) holds
the batch in the spool until the cause is fixed, and then every row lands.
The retry backoff waits (a handful of connection attempts while PostgreSQL
is down, not thousands), and each change of state is logged once.

Each test runs in its own broker + PostgreSQL (private_env), breaks one thing
on purpose, and ends with exact counts: every acknowledged message is a row
or a reject, no row twice, and no `store_failed` reject for a fault that is
not the data's. No assertion is about time: the tests wait for a metric or a
log line, then repair, then count.

Most tests run cordond as `cordon_writer`, a role that owns nothing and may
not CREATE in the schema (the migrations are applied first by the superuser
with `cordonctl migrate`): such a role must be able to run cordond.
"""

import json
import re
import signal
import time
import urllib.request

import psycopg2

from harness import (Collector, cordonctl, cordonctl_config, free_port, gate_event,
                     publish_many, sequence_events, tail, wait_until)

WRITER = "cordon_writer"
LONG = 180


# ---------------------------------------------------------------- helpers

def writer_conninfo(e):
    """Migrate as the superuser, then make WRITER: it may log in, read and
    write the tables, and nothing else (no CREATE on the schema, owns
    nothing). Returns a conninfo that connects as WRITER."""
    conf = cordonctl_config(e.dir, e.pg.conninfo)
    cordonctl(conf, "migrate", expect=0)
    e.pg.query("CREATE ROLE %s LOGIN" % WRITER)
    e.pg.query("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO %s" % WRITER)
    assert not e.pg.scalar("SELECT has_schema_privilege(%s, 'public', 'CREATE')", (WRITER,))
    assert e.pg.scalar("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
                       " WHERE r.rolname = %s", (WRITER,)) == 0
    return e.pg.conninfo.replace("user=cordon", "user=" + WRITER)


def start(e, conninfo=None):
    """A cordond with /metrics on a free port (as WRITER when conninfo says
    so); returns once it has connected to PostgreSQL."""
    port = free_port()
    overrides = {"metrics": {"listen": "127.0.0.1:%d" % port}}
    if conninfo:
        overrides["postgres"] = {"conninfo": conninfo}
    d = e.cordond(overrides)
    d.metrics_port = port
    wait_until(lambda: alive(d) and "PostgreSQL connected" in d.log(),
               what="cordond connected to PostgreSQL")
    return d


def alive(d):
    assert d.alive(), "cordond exited with %r:\n%s" % (d.returncode(), tail(d.logfile))
    return True


def scrape(d):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % d.metrics_port, timeout=5) as r:
        return r.read().decode()


def metric(d, name):
    """The value of the sample `name` (with its labels) on /metrics, or None."""
    for line in scrape(d).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def wait_metric(d, name, pred, what):
    def check():
        alive(d)
        v = metric(d, name)
        return v is not None and pred(v)
    wait_until(check, LONG, what=lambda: "%s: %s %s" % (what, name, metric(d, name)))


def wait_held(d, sqlstate, attempts=3):
    """Wait until the writes are held by `sqlstate` and have been retried
    (`attempts` failed attempts in all, so the backoff has run a few times)."""
    wait_metric(d, "cordon_postgres_writes_held", lambda v: v == 1, "writes held")
    wait_metric(d, 'cordon_postgres_write_errors_total{sqlstate="%s"}' % sqlstate,
                lambda v: v >= attempts, "%d failed attempts" % attempts)


def rows(pg, site):
    return pg.count("gate_events", "site = %s", (site,))


def wait_rows(d, pg, site, n):
    wait_until(lambda: alive(d) and rows(pg, site) >= n, LONG,
               what=lambda: "%d rows for %s (have %d)" % (n, site, rows(pg, site)))


def verify(pg, site, n, rejects=0):
    """Exactly n rows for site with n distinct keys (ids S-0000000..n-1 each
    once), exactly `rejects` rejects from its topics, and none store_failed."""
    ids = sorted(r[0] for r in pg.query("SELECT split_part(event_key, '/', 3) FROM gate_events"
                                        " WHERE site = %s", (site,)))
    assert ids == ["S-%07d" % i for i in range(n)], \
        "%s: %d rows, %d distinct; missing %s" % (site, len(ids), len(set(ids)), sorted(
            set("S-%07d" % i for i in range(n)) - set(ids))[:10])
    got = pg.count("rejects", "topic LIKE %s", ("cordon/%s/%%" % site,))
    assert got == rejects, "%s: %d rejects, expected %d" % (site, got, rejects)
    assert pg.count("rejects", "reason = 'store_failed'") == 0


def lines(d, pattern):
    return [line for line in d.log().splitlines() if re.search(pattern, line)]


def publish(e, messages):
    messages = list(messages)
    publish_many(e.broker.port, messages)
    return len(messages)


# ---------------------------------------------------------------- held: not the data's fault

def test_insert_revoked_then_granted_as_a_role_without_create(private_env):
    """The issue's reproduction: INSERT on gate_events revoked while events
    arrive. Nothing becomes a reject; the batch is held (SQLSTATE 42501,
    logged once), the backlog alert is raised after 60 s of it, and after
    the GRANT every row lands and the alert resolves. cordond runs as a
    role that may not CREATE in the schema."""
    e, site = private_env, "fpriv"
    e.broker.start()
    e.pg.start()
    d = start(e, writer_conninfo(e))
    acked = publish(e, sequence_events(site, 500))
    wait_rows(d, e.pg, site, 500)

    e.pg.query("REVOKE INSERT ON gate_events FROM %s" % WRITER)
    with Collector(e.broker.port, "cordon/_daemon/alert/backlog") as col:
        acked += publish(e, sequence_events(site, 3000, start=500))
        acked += publish(e, [("cordon/%s/gate/G01/event" % site, b"not json")])
        wait_held(d, "42501")
        assert rows(e.pg, site) == 500
        assert e.pg.count("rejects") == 0
        # SPEC 4 backlog: PostgreSQL refusing writes for over 60 s
        _, raised = col.wait_for(lambda t, p: json.loads(p)["transition"] == "raised", timeout=LONG)
        assert json.loads(raised)["text"].endswith("PostgreSQL refuses writes 42501"), raised
        assert rows(e.pg, site) == 500 and e.pg.count("rejects") == 0

        e.pg.query("GRANT INSERT ON gate_events TO %s" % WRITER)
        wait_rows(d, e.pg, site, 3500)
        wait_metric(d, "cordon_postgres_writes_held", lambda v: v == 0, "writes no longer held")
        col.wait_for(lambda t, p: json.loads(p)["transition"] == "resolved", timeout=LONG)
    verify(e.pg, site, 3500, rejects=1)
    assert acked == 3500 + 1
    held = lines(d, r"PostgreSQL refuses writes: SQLSTATE 42501 ")
    assert len(held) == 1, held
    assert "permission denied for table gate_events" in held[0], held
    assert len(lines(d, r"PostgreSQL takes writes again .*SQLSTATE 42501")) == 1
    assert metric(d, "cordon_store_rows_rejected_total") == 0
    print("\n[store faults] privilege: acked=%d rows=%d rejects=1 store_failed=0 attempts=%d"
          % (acked, rows(e.pg, site),
             metric(d, 'cordon_postgres_write_errors_total{sqlstate="42501"}')))
    assert d.stop() == 0


def test_column_renamed_and_back(private_env):
    """A DBA renames a column and renames it back. The held batch includes
    events already stored (a device sending twice), so it has to go through
    the staging table, which must be LIKE the table as it is again."""
    e, site = private_env, "fcol"
    e.broker.start()
    e.pg.start()
    d = start(e, writer_conninfo(e))
    acked = publish(e, sequence_events(site, 300))
    wait_rows(d, e.pg, site, 300)

    e.pg.query("ALTER TABLE gate_events RENAME COLUMN card TO card_no")
    acked += publish(e, sequence_events(site, 1000))    # 0..299 again, then 700 new
    wait_held(d, "42703")
    assert rows(e.pg, site) == 300 and e.pg.count("rejects") == 0
    e.pg.query("ALTER TABLE gate_events RENAME COLUMN card_no TO card")
    wait_rows(d, e.pg, site, 1000)
    wait_metric(d, "cordon_postgres_writes_held", lambda v: v == 0, "writes no longer held")
    verify(e.pg, site, 1000)
    assert acked == 1300    # 300 of them twice: one row each
    assert e.pg.scalar("SELECT count(*) FROM gate_events WHERE site = %s AND card IS NULL",
                       (site,)) == 0
    assert len(lines(d, r"PostgreSQL refuses writes: SQLSTATE 42703 ")) == 1
    assert len(lines(d, r"PostgreSQL takes writes again")) == 1
    assert d.stop() == 0


def test_statement_timeout_behind_a_lock(private_env):
    """statement_timeout (300 ms for the role) trips while another session
    holds a SHARE lock on gate_events (reads go on, writes wait). The held
    batch is cut in halves down to one event, then held (57014, logged
    once); when the lock is released every row lands and batches are whole
    again. cordond is SIGKILLed and restarted meanwhile, so that the held
    events come back from the spool as one big batch."""
    e, site = private_env, "ftime"
    e.broker.start()
    e.pg.start()
    conninfo = writer_conninfo(e)
    e.pg.query("ALTER ROLE %s SET statement_timeout = '300ms'" % WRITER)
    d = start(e, conninfo)
    acked = publish(e, sequence_events(site, 200))
    wait_rows(d, e.pg, site, 200)

    dba = psycopg2.connect(e.pg.conninfo)
    try:
        dba.cursor().execute("LOCK TABLE gate_events IN SHARE MODE")
        acked += publish(e, sequence_events(site, 2000, start=200))
        wait_held(d, "57014", attempts=1)
        assert d.kill() == -signal.SIGKILL
        since = len(d.log())
        e.restart(d)
        wait_until(lambda: alive(d) and "statement timeout on a part of" in d.log()[since:],
                   LONG, what="the batch cut in parts")
        wait_held(d, "57014")
        assert rows(e.pg, site) == 200 and e.pg.count("rejects") == 0
    finally:
        dba.rollback()      # releases the lock
        dba.close()
    wait_rows(d, e.pg, site, 2200)
    wait_metric(d, "cordon_postgres_writes_held", lambda v: v == 0, "writes no longer held")
    verify(e.pg, site, 2200)
    assert acked == 2200
    log = d.log()[since:].splitlines()
    cut = [line for line in log if re.search(r"statement timeout on a part of (\d+) events", line)]
    assert len(cut) == 1 and int(re.search(r"of (\d+) events", cut[0]).group(1)) > 1000, cut
    assert len([line for line in log if "PostgreSQL refuses writes: SQLSTATE 57014 " in line]) == 1
    assert len([line for line in log if "writing whole batches again" in line]) == 1
    assert len([line for line in log if "PostgreSQL takes writes again" in line]) == 1
    assert d.stop() == 0


def test_read_only_then_writable(private_env):
    """default_transaction_read_only switched on for the whole server, then
    off: held by 25006, then every row lands."""
    e, site = private_env, "fro"
    e.broker.start()
    e.pg.start()
    d = start(e, writer_conninfo(e))
    acked = publish(e, sequence_events(site, 200))
    wait_rows(d, e.pg, site, 200)

    e.pg.query("ALTER SYSTEM SET default_transaction_read_only = on")
    e.pg.query("SELECT pg_reload_conf()")
    wait_until(lambda: e.pg.scalar("SHOW default_transaction_read_only") == "on",
               what="the server read-only")
    acked += publish(e, sequence_events(site, 1000, start=200))
    wait_held(d, "25006")
    assert rows(e.pg, site) == 200 and e.pg.count("rejects") == 0
    dba = psycopg2.connect(e.pg.conninfo)
    try:
        dba.autocommit = True
        dba.cursor().execute("SET default_transaction_read_only = off")
        dba.cursor().execute("ALTER SYSTEM RESET default_transaction_read_only")
        dba.cursor().execute("SELECT pg_reload_conf()")
    finally:
        dba.close()
    wait_rows(d, e.pg, site, 1200)
    wait_metric(d, "cordon_postgres_writes_held", lambda v: v == 0, "writes no longer held")
    verify(e.pg, site, 1200)
    assert acked == 1200
    assert len(lines(d, r"PostgreSQL refuses writes: SQLSTATE 25006 ")) == 1
    assert len(lines(d, r"PostgreSQL takes writes again")) == 1
    assert d.stop() == 0


# ---------------------------------------------------------------- the data's fault

def test_data_errors_become_rejects_and_the_rest_lands(private_env):
    """A CHECK a DBA added refuses 50 of 1,000 rows (23514): exactly those 50
    become store_failed rejects, the other 950 land, and the per-row log is
    rate-limited. Texts cut at their limit (a reject detail quoting 40
    bytes of 3-byte characters, an alert reason keeping 31 bytes of a
    symptom list) end at a whole character: stored as they are, valid
    UTF-8, never refused by PostgreSQL (22021) and never blocking the
    batch. (Were one cut inside a character anyway, the store would store
    it with the stray bytes written as \\xNN rather than drop it.)"""
    e, site = private_env, "fdata"
    e.broker.start()
    e.pg.start()
    d = start(e)
    e.pg.query("ALTER TABLE gate_events ADD CONSTRAINT below_40 CHECK (temp_c < 40.0)")
    bad = {i for i in range(1000) if i % 20 == 7}
    msgs = [gate_event(site, "G%02d" % (i % 4 + 1), "S-%07d" % i, card="C-%04d" % i,
                       temp_c=41.0 if i in bad else 36.5) for i in range(1000)]
    # A Dahua event code of 3-byte characters: cordond quotes at most 40
    # bytes of it in the reject's detail, 13 whole characters.
    dahua = json.dumps({"Code": "门禁" * 10, "Action": "Pulse", "Data": {}},
                       ensure_ascii=False).encode()
    msgs.append(("cordon/%s/gate/G01/event" % site, dahua))
    # Symptoms: the isolation_symptom alert's reason keeps 31 bytes of them.
    check = json.dumps({"id": "K-1", "ts": "2020-02-16T18:32:00+08:00", "person": "P-7",
                        "symptoms": ["a咳嗽", "发热", "乏力", "头痛", "咽痛"]},
                       ensure_ascii=False).encode()
    msgs.append(("cordon/%s/isolation/H-1/check" % site, check))
    acked = publish(e, msgs)

    def landed():
        alive(d)
        return (e.pg.count("isolation_checks", "site = %s", (site,)) == 1 and
                e.pg.count("rejects", "reason = 'unknown_format'") == 1 and
                e.pg.count("alerts", "kind = 'isolation_symptom'") == 1 and
                rows(e.pg, site) + e.pg.count("rejects", "reason = 'store_failed'") == 1000)
    wait_until(landed, LONG, what="every message stored")

    assert rows(e.pg, site) == 950
    failed = [r[0] for r in e.pg.query("SELECT reject_key FROM rejects WHERE reason = 'store_failed'")]
    assert sorted(failed) == sorted("row:%s/G%02d/S-%07d" % (site, i % 4 + 1, i) for i in bad)
    assert all("23514" in r[0] for r in e.pg.query(
        "SELECT detail FROM rejects WHERE reason = 'store_failed'"))
    stored_ids = {r[0] for r in e.pg.query(
        "SELECT split_part(event_key, '/', 3) FROM gate_events WHERE site = %s", (site,))}
    assert stored_ids == {"S-%07d" % i for i in range(1000) if i not in bad}
    detail = e.pg.scalar("SELECT detail FROM rejects WHERE reason = 'unknown_format'")
    assert detail == "Dahua event code %s is not AccessControl" % ("门禁" * 7)[:13], detail
    reason = e.pg.scalar("SELECT reason FROM alerts WHERE kind = 'isolation_symptom'")
    assert reason == "a咳嗽,发热,乏力,头痛,", reason   # 29 of the 31 bytes: the next character would not fit
    assert not lines(d, r"refused for its text"), "a text was cut inside a character"
    assert acked == 1000 + 2 == rows(e.pg, site) + len(failed) + 1 + 1
    assert e.pg.count("rejects") == 51

    wait_metric(d, "cordon_store_rows_rejected_total", lambda v: v == 50, "rows turned rejects")
    assert metric(d, 'cordon_postgres_write_errors_total{sqlstate="23514"}') == 50
    assert metric(d, "cordon_postgres_writes_held") == 0
    per_row = lines(d, r"event \S+: PostgreSQL refused the row")
    assert 1 <= len(per_row) <= 10, "%d per-row lines" % len(per_row)
    assert not lines(d, r"refuses writes"), "a data error held the batch"
    assert d.stop() == 0


# ---------------------------------------------------------------- unreachable: the backoff

def test_backoff_while_postgres_is_down(private_env):
    """PostgreSQL stopped for 10 s under a running cordond: a handful of
    connection attempts (capped exponential backoff from 0.5 s), not
    thousands; "unreachable" is logged after the lost connection, once."""
    e, site = private_env, "fdown"
    e.broker.start()
    e.pg.start()
    d = start(e)
    acked = publish(e, sequence_events(site, 100))
    wait_rows(d, e.pg, site, 100)
    wait_metric(d, "cordon_postgres_connect_attempts_total", lambda v: v >= 1, "metrics")
    before = metric(d, "cordon_postgres_connect_attempts_total")
    assert before == 1

    e.pg.stop("fast")
    acked += publish(e, sequence_events(site, 100, start=100))   # a batch meets the dead connection
    wait_until(lambda: alive(d) and lines(d, r"PostgreSQL unreachable, retrying"),
               what="the 'unreachable' line after the lost connection")
    down_at = time.monotonic()
    while time.monotonic() - down_at < 10:     # the outage lasts 10 s (nothing timed)
        alive(d)
        time.sleep(0.5)
    during = metric(d, "cordon_postgres_connect_attempts_total") - before
    e.pg.start()
    wait_rows(d, e.pg, site, 200)
    verify(e.pg, site, 200)
    assert acked == 200
    print("\n[store faults] 10 s down: %d connection attempts" % during)
    assert 2 <= during <= 30, "%d connection attempts in 10 s" % during
    assert len(lines(d, r"PostgreSQL connection lost")) == 1
    assert len(lines(d, r"PostgreSQL unreachable, retrying")) == 1
    assert len(lines(d, r"PostgreSQL connected")) == 2
    assert d.stop() == 0
