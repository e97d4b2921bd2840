"""A full spool pauses intake instead of dropping anything; a row that
PostgreSQL refuses becomes a reject instead of blocking the rows behind it.

Both run against their own broker and PostgreSQL (private_env).
"""

from harness import gate_event, publish_many, wait_until

LONG = 240


def site_rows(pg, site):
    return pg.count("gate_events", "site = %s", (site,))


def test_full_spool_pauses_intake_and_loses_nothing(private_env):
    env = private_env
    env.broker.start()
    env.pg.start()
    # 1 MiB spool: intake pauses at 768 KiB and resumes at 512 KiB.
    d = env.cordond({"spool": {"max_bytes": "1MiB", "segment_bytes": "64KiB"}})
    env.pg.stop("fast")

    n = 20000   # about 5 MB of spool records: five times what the spool may hold
    msgs = [gate_event("bp", "G%02d" % (i % 8 + 1), "P-%06d" % i, card="C-%04d" % (i % 500),
                       person="P-%05d" % (i % 900)) for i in range(n)]
    publish_many(env.broker.port, msgs, timeout=LONG)

    wait_until(lambda: "pausing intake" in d.log(), LONG, what="cordond pausing intake")
    assert d.alive()
    spool_bytes = sum(f.stat().st_size for f in (env_dir_spool(env)).glob("*.seg"))
    assert spool_bytes <= 1024 * 1024, "spool holds %d bytes, over max_bytes" % spool_bytes

    env.pg.start()
    wait_until(lambda: site_rows(env.pg, "bp") >= n, LONG,
               what=lambda: "%d rows (have %d)" % (n, site_rows(env.pg, "bp")))
    assert site_rows(env.pg, "bp") == n
    assert env.pg.scalar("SELECT count(DISTINCT event_key) FROM gate_events WHERE site = 'bp'") == n
    log = d.log()
    assert "resuming intake" in log
    assert d.alive()
    assert d.stop() == 0


def env_dir_spool(env):
    import pathlib
    return pathlib.Path(env.dir) / "spool"


def test_row_refused_by_postgres_becomes_reject(private_env):
    env = private_env
    env.broker.start()
    env.pg.start()
    d = env.cordond()
    wait_until(lambda: env.pg.scalar("SELECT to_regclass('gate_events') IS NOT NULL"),
               what="migrations applied")
    # A constraint the normalizer knows nothing about, as a DBA might add.
    env.pg.query("ALTER TABLE gate_events ADD CONSTRAINT no_poison CHECK (card <> 'POISON')")

    msgs = [gate_event("px", "G01", "OK-%04d" % i, card="C-%04d" % i) for i in range(500)]
    msgs.insert(250, gate_event("px", "G01", "BAD-0001", card="POISON"))
    msgs.append(gate_event("px", "G01", "LAST", card="C-9999"))
    publish_many(env.broker.port, msgs)

    wait_until(lambda: env.pg.count("gate_events", "event_key = 'px/G01/LAST'"), LONG,
               what="the event after the refused row stored")
    assert site_rows(env.pg, "px") == 501
    rows = env.pg.query("SELECT reason, detail, topic FROM rejects WHERE reject_key = %s",
                        ("row:px/G01/BAD-0001",))
    assert len(rows) == 1, rows
    reason, detail, topic = rows[0]
    assert reason == "store_failed"
    assert "23514" in detail and "no_poison" in detail
    assert topic == "cordon/px/G01".replace("/G01", "/gate/G01/event")
    assert d.alive()
    assert d.stop() == 0
