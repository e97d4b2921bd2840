"""Issue "Nothing lost, nothing doubled" (SPEC §6 G1): long QoS 1 streams
through SIGKILLs of cordond, a PostgreSQL outage, a broker restart, a torn
spool tail (also followed by a second crash before anything new was
committed) and a SIGTERM with a backlog.

Each test runs in its own private broker + PostgreSQL (private_env), publishes
N (default 100,000; CORDON_DURABILITY_N overrides it for quick runs) canonical
gate events with sequence numbers 0..N-1 (ids "S-0000000", on gates G01..G04
of one site) from a background Stream (harness.py), and ends with the exact
check: N rows for the site, N distinct event keys, every sequence number
present, no rejects. Each test prints one "[durability]" line with what it saw
(pytest -s shows it). Every wait is bounded; durations are printed, never
asserted.
"""

import glob
import os
import random
import re
import signal
import time

from harness import Stream, sequence_events, tail, wait_until

# The paced streams last about as long whatever N is (rate=N / 20: 20 s).
N = int(os.environ.get("CORDON_DURABILITY_N", "100000"))
LONG = 300
STALL = 120    # wait_all_stored gives up after this long without a new row


def stored(pg, site):
    return pg.count("gate_events", "site = %s", (site,))


def wait_all_stored(e, d, site, n, timeout=LONG):
    """Wait until site has n rows in gate_events; cordond must stay alive.
    Gives up after timeout, or after STALL s without a new row, and falls
    through: verify_exact() then names what is missing."""
    seen = {"rows": -1, "at": time.monotonic()}

    def enough():
        assert d.alive(), "cordond exited with %r:\n%s" % (d.returncode(), tail(d.logfile))
        rows = stored(e.pg, site)
        if rows != seen["rows"]:
            seen.update(rows=rows, at=time.monotonic())
        elif time.monotonic() - seen["at"] > STALL:
            return "stalled"
        return rows >= n
    try:
        if wait_until(enough, timeout, interval=0.25,
                      what=lambda: "%d rows for %s (have %d)" % (n, site, stored(e.pg, site))) == "stalled":
            print("\n[durability] %s: no new row for %d s (have %d of %d)" % (site, STALL, seen["rows"], n))
    except AssertionError as err:
        if not d.alive():
            raise
        print("\n[durability] %s: %s" % (site, err))


def verify_exact(pg, site, n):
    """Assert exactly n rows for site, n distinct keys, sequence numbers
    0..n-1 each present once, no rejects from the site's topics. Returns the
    figures."""
    rows = stored(pg, site)
    distinct = pg.scalar("SELECT count(DISTINCT event_key) FROM gate_events WHERE site = %s", (site,))
    ids = [r[0] for r in pg.query("SELECT split_part(event_key, '/', 3) FROM gate_events "
                                  "WHERE site = %s", (site,))]
    seqs = set()
    malformed = []
    for i in ids:
        m = re.fullmatch(r"S-(\d{7})", i)
        if m:
            seqs.add(int(m.group(1)))
        else:
            malformed.append(i)
    missing = [i for i in range(n) if i not in seqs]
    unexpected = sorted(s for s in seqs if s >= n)
    rejects = pg.count("rejects", "topic LIKE %s", ("cordon/%s/%%" % site,))
    figures = {"rows": rows, "distinct": distinct, "duplicates": rows - distinct,
               "missing": len(missing), "rejects": rejects}
    assert not missing, "%s: %d of %d sequence numbers missing, first ones: %s (rows %d)" % (
        site, len(missing), n, ", ".join("S-%07d" % i for i in missing[:20]), rows)
    assert not malformed and not unexpected, "%s: unexpected ids %r %r" % (site, malformed[:10], unexpected[:10])
    assert rows == n, "%s: %d rows for %d events" % (site, rows, n)
    assert distinct == n, "%s: %d distinct event keys for %d rows" % (site, distinct, rows)
    assert rejects == 0, "%s: %d rejects" % (site, rejects)
    return figures


def report(name, stream_or_acked, figures, t0, **extra):
    acked = stream_or_acked if isinstance(stream_or_acked, int) else stream_or_acked.acked
    parts = ["N=%d" % N, "acked=%d" % acked] + ["%s=%s" % kv for kv in figures.items()]
    parts += ["%s=%s" % kv for kv in extra.items()]
    parts.append("seconds=%.1f" % (time.monotonic() - t0))
    print("\n[durability] %s: %s" % (name, " ".join(parts)))


def wait_acked(s, n, timeout=LONG):
    """Wait until the stream has n PUBACKs (the broker acknowledges whether or
    not cordond is up)."""
    wait_until(lambda: s.acked >= n or s.error, timeout, interval=0.01,
               what=lambda: "%d acknowledged (%s)" % (n, s.progress()))
    assert not s.error, "stream failed: %r" % s.error


def stopped_cleanly(d):
    """SIGTERM cordond, assert it exits 0; return how many messages this
    process had received (its "stats: received N" at exit)."""
    assert d.alive(), "cordond exited with %r:\n%s" % (d.returncode(), tail(d.logfile))
    rc = d.stop(signal.SIGTERM, timeout=LONG)
    assert rc == 0, "cordond exited %r on SIGTERM:\n%s" % (rc, tail(d.logfile))
    return received_at_exit(d.log())


def received_at_exit(log):
    """N of the last "stats: received N" line (cordond logs it when it exits)."""
    found = re.findall(r"stats: received (\d+)", log)
    assert found, "no 'stats: received' line in cordond's log"
    return int(found[-1])


def test_sigkill_three_times_during_stream(private_env):
    e, site = private_env, "dkill"
    e.broker.start()
    e.pg.start()
    # small segments: the kills also hit segment roll-over and deletion
    d = e.cordond({"spool": {"segment_bytes": "1MiB"}})
    rnd = random.Random(1234)
    points = [rnd.uniform(0.10, 0.30), rnd.uniform(0.40, 0.60), rnd.uniform(0.70, 0.85)]
    t0 = time.monotonic()
    s = Stream(e.broker.port, sequence_events(site, N), "pub-" + site, rate=N / 20).start()
    kills = []
    try:
        for frac in points:
            wait_acked(s, int(frac * N))
            time.sleep(rnd.uniform(0.0, 0.25))
            assert d.alive(), "cordond exited with %r:\n%s" % (d.returncode(), tail(d.logfile))
            at, rows_then = s.acked, stored(e.pg, site)
            assert not s.done.is_set(), "the stream ended before kill %d" % (len(kills) + 1)
            assert d.kill() == -signal.SIGKILL
            down = rnd.uniform(0.5, 2.0)
            time.sleep(down)   # the stream goes on; the broker queues for our session
            e.restart(d)
            kills.append("%d/%d/%.1fs" % (at, rows_then, down))
        s.wait(LONG)
    finally:
        s.close()
    assert s.acked == N, s.progress()
    wait_all_stored(e, d, site, N)
    figures = verify_exact(e.pg, site, N)
    stopped_cleanly(d)
    report("sigkill x3", s, figures, t0, kills_at_acked_rows_down="[%s]" % ",".join(kills),
           segments_left=len(glob.glob(os.path.join(d.config["spool"]["dir"], "*.seg"))))


def test_postgres_down_30s_during_stream(private_env):
    e, site = private_env, "dpg"
    e.broker.start()
    e.pg.start()
    d = e.cordond()
    t0 = time.monotonic()
    s = Stream(e.broker.port, sequence_events(site, N), "pub-" + site, rate=N / 50).start()
    try:
        wait_acked(s, N // 5)
        assert d.alive()
        rows_before = stored(e.pg, site)
        acked_before = s.acked
        e.pg.stop("fast")
        down_at = time.monotonic()
        while time.monotonic() - down_at < 30:
            assert d.alive(), "cordond exited with %r while PostgreSQL was down:\n%s" % (
                d.returncode(), tail(d.logfile))
            time.sleep(0.5)
        acked_during = s.acked - acked_before
        e.pg.start()
        assert d.alive()
        s.wait(LONG)
    finally:
        s.close()
    assert s.acked == N, s.progress()
    wait_all_stored(e, d, site, N)
    figures = verify_exact(e.pg, site, N)
    received = stopped_cleanly(d)
    report("postgres down 30 s", s, figures, t0, rows_at_stop=rows_before,
           acked_while_down=acked_during, cordond_received=received, redelivered=received - N)


def test_broker_restart_during_stream(private_env):
    e, site = private_env, "dmq"
    e.broker.start()
    e.pg.start()
    d = e.cordond()
    t0 = time.monotonic()
    s = Stream(e.broker.port, sequence_events(site, N), "pub-" + site, rate=N / 20).start()
    try:
        wait_acked(s, N // 2)
        assert d.alive()
        at, outstanding = s.acked, s.sent - s.acked
        since = e.broker.log_size()
        e.broker.stop()    # SIGTERM: mosquitto writes its persistence file
        assert os.path.exists(os.path.join(e.broker.dir, "mosquitto.db"))
        time.sleep(1.0)
        e.broker.start()   # same port, same persistence dir
        e.wait_connected(d, since)
        s.wait(LONG)
    finally:
        s.close()
    # paho re-sent what the old broker had not acknowledged; every message has its PUBACK
    assert s.acked == N, s.progress()
    assert s.connects >= 2, "the publisher never reconnected: %s" % s.progress()
    wait_all_stored(e, d, site, N)
    figures = verify_exact(e.pg, site, N)
    received = stopped_cleanly(d)
    report("broker restart", s, figures, t0, restarted_at_acked=at, unacked_at_restart=outstanding,
           publisher_connects=s.connects, cordond_received=received, redelivered=received - N)


def test_torn_spool_tail(private_env):
    e, site = private_env, "dtorn"
    e.broker.start()
    e.pg.start()
    d = e.cordond()
    first = N // 2
    t0 = time.monotonic()
    s1 = Stream(e.broker.port, sequence_events(site, first), "pub-" + site).start().wait(LONG)
    assert s1.acked == first, s1.progress()
    wait_all_stored(e, d, site, first)
    assert stored(e.pg, site) == first
    assert d.kill() == -signal.SIGKILL

    segs = sorted(glob.glob(os.path.join(d.config["spool"]["dir"], "*.seg")))
    assert segs, "no spool segment in %s" % d.config["spool"]["dir"]
    newest = segs[-1]
    size = os.path.getsize(newest)
    assert size > 7, "newest segment %s has %d bytes" % (newest, size)
    os.truncate(newest, size - 7)

    e.restart(d)
    s2 = Stream(e.broker.port, sequence_events(site, N - first, start=first), "pub-" + site).start()
    try:
        s2.wait(LONG)
    finally:
        s2.close()
    assert s2.acked == N - first, s2.progress()
    wait_all_stored(e, d, site, N)
    figures = verify_exact(e.pg, site, N)
    torn = [line for line in d.log().splitlines() if "torn" in line]
    assert torn, "cordond's log does not mention the torn tail:\n%s" % tail(d.logfile)
    stopped_cleanly(d)
    report("torn tail", s1.acked + s2.acked, figures, t0, segment=os.path.basename(newest),
           cut_from=size, log=repr(torn[0][-160:]))


def test_sigterm_drains_backlog(private_env):
    """SIGTERM with a backlog that cannot have drained: PostgreSQL is down
    from before cordond appends the backlog until after the SIGTERM, so the
    precondition holds by construction, not by timing."""
    e, site = private_env, "dterm"
    e.broker.start()
    e.pg.start()
    d = e.cordond({"daemon": {"shutdown_timeout": "60s"}})
    t0 = time.monotonic()
    s = Stream(e.broker.port, sequence_events(site, N), "pub-" + site, rate=N / 25).start()
    try:
        wait_acked(s, int(N * 0.15))
        assert d.alive()
        e.pg.stop("fast")
        # Bytes cordond appends from here on cannot be in PostgreSQL: it is
        # down. (A commit in flight at the stop may still release a segment:
        # then we only wait longer.)
        at_stop = spool_bytes(d)
        wait_until(lambda: spool_bytes(d) >= at_stop + 64 * 1024, LONG,
                   what=lambda: "64 KiB appended to the spool after PostgreSQL stopped (%d -> %d)"
                   % (at_stop, spool_bytes(d)))
        assert d.alive(), "cordond exited with %r while PostgreSQL was down" % d.returncode()
        d.send_signal(signal.SIGTERM)
        acked_at_term = s.acked
        wait_until(lambda: "stopping intake, draining the spool" in d.log(), what="the SIGTERM line")
        assert d.alive(), "cordond exited before PostgreSQL came back:\n%s" % tail(d.logfile)
        assert not s.done.is_set(), "the stream ended before SIGTERM"
        e.pg.start()
        rc = d.wait(LONG)
        assert rc == 0, "cordond exited %r on SIGTERM:\n%s" % (rc, tail(d.logfile))
        rows_at_exit = stored(e.pg, site)
        log = d.log()
        received = received_at_exit(log)
        assert "drained: everything received is in PostgreSQL" in log, tail(d.logfile)
        assert "shutdown deadline reached" not in log, tail(d.logfile)
        # everything cordond took from the broker is in PostgreSQL, before any restart
        assert rows_at_exit == received, \
            "%d rows after exit, cordond had received %d:\n%s" % (rows_at_exit, received, tail(d.logfile))

        e.restart(d)       # the broker kept what arrived meanwhile
        s.wait(LONG)
    finally:
        s.close()
    assert s.acked == N, s.progress()
    wait_all_stored(e, d, site, N)
    figures = verify_exact(e.pg, site, N)
    received2 = stopped_cleanly(d)
    report("sigterm with backlog", s, figures, t0, acked_at_term=acked_at_term,
           received_first_run=received, rows_at_exit=rows_at_exit,
           received_second_run=received2, redelivered=received + received2 - N)


def spool_bytes(d):
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(d.config["spool"]["dir"], "*.seg")))


def test_torn_tail_then_crash_before_commit(private_env):
    """The checkpoints (local file and PostgreSQL) name the old end of the
    spool, which the cut tail no longer reaches. Crash again after new records
    were appended but before any was committed (PostgreSQL down): the next
    start must not take the old checkpoint for a position in the new records."""
    e, site = private_env, "dtorn2"
    e.broker.start()
    e.pg.start()
    # Not clustered: it must append to its spool while PostgreSQL is down
    # at its start (clustered, the broker keeps them until the leases are
    # taken: test_ingest.py, test_clustered_starts_before_postgres).
    d = e.cordond({"cluster": {"shards": "0"}})
    first, middle = N // 2, 1000
    t0 = time.monotonic()
    s1 = Stream(e.broker.port, sequence_events(site, first), "pub-" + site).start().wait(LONG)
    assert s1.acked == first, s1.progress()
    wait_all_stored(e, d, site, first)
    assert d.kill() == -signal.SIGKILL
    newest = sorted(glob.glob(os.path.join(d.config["spool"]["dir"], "*.seg")))[-1]
    size = os.path.getsize(newest)
    os.truncate(newest, size - 7)

    e.pg.stop("fast")
    e.restart(d)                   # starts without PostgreSQL, cuts the torn tail
    base = spool_bytes(d)
    s2 = Stream(e.broker.port, sequence_events(site, middle, start=first), "pub-" + site).start().wait(LONG)
    assert s2.acked == middle, s2.progress()
    wait_until(lambda: spool_bytes(d) >= base + middle * 180, LONG,
               what=lambda: "%d records in the spool (%d bytes, was %d)" % (middle, spool_bytes(d), base))
    time.sleep(0.5)
    appended = spool_bytes(d) - base
    assert d.alive(), "cordond exited with %r:\n%s" % (d.returncode(), tail(d.logfile))
    assert d.kill() == -signal.SIGKILL   # nothing appended after the cut is committed
    e.pg.start()
    e.restart(d)

    s3 = Stream(e.broker.port, sequence_events(site, N - first - middle, start=first + middle),
                "pub-" + site).start()
    try:
        s3.wait(LONG)
    finally:
        s3.close()
    wait_all_stored(e, d, site, N)
    figures = verify_exact(e.pg, site, N)
    assert any("torn" in line for line in d.log().splitlines()), tail(d.logfile)
    stopped_cleanly(d)
    report("torn tail, then crash before commit", s1.acked + s2.acked + s3.acked, figures, t0,
           cut_from=size, appended_after_cut=appended)
