"""Issue 12: what becomes of acknowledged messages when the spool itself is
damaged (one byte flipped in the last segment, or in a closed one while
cordond runs), cut (a torn tail, then SIGTERM), or deleted under a running
cordond.

Each test publishes N canonical gate events (sequence numbers 0..N-1, one
site) and ends with an exact count: rows + spool_corrupt rejects = N, the
missing sequence numbers are exactly the damaged records (their bytes are in
the reject's payload), nothing doubled. Races are controlled, not timed:
PostgreSQL is stopped so that what cordond acknowledged stays in the spool,
and the tests wait on metrics and log lines.
"""

import glob
import json
import os
import re
import shutil
import signal
import urllib.error
import urllib.request

import pytest

from harness import Collector, Stream, free_port, metric, sequence_events, tail, wait_until

N = 10000
LONG = 300


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return None, str(err)


class Daemon:
    """A cordond of private_env `e` with metrics on a free port."""

    def __init__(self, e, overrides=None):
        self.port = free_port()
        cfg = {"metrics": {"listen": "127.0.0.1:%d" % self.port}}
        for section, kv in (overrides or {}).items():
            cfg.setdefault(section, {}).update(kv)
        self.e = e
        self.d = e.cordond(cfg)
        self.spool = self.d.config["spool"]["dir"]
        # The tests stop PostgreSQL next: first let cordond make its schema,
        # so that it is there to query when PostgreSQL comes back.
        wait_until(lambda: e.pg.query("SELECT to_regclass('rejects') IS NOT NULL")[0][0],
                   what="cordond's schema in PostgreSQL")

    def metrics(self):
        return get("http://127.0.0.1:%d/metrics" % self.port)[1]

    def metric(self, name):
        return metric(self.metrics(), name)

    def healthz(self):
        return get("http://127.0.0.1:%d/healthz" % self.port)

    def wait_received(self, n):
        wait_until(lambda: self.metric("cordon_messages_received_total") == n, LONG,
                   what=lambda: "cordond to have received %d (metrics say %s)"
                   % (n, self.metric("cordon_messages_received_total")))

    def wait_metric(self, name, value):
        wait_until(lambda: self.metric(name) == value, LONG,
                   what=lambda: "%s == %s (is %s)" % (name, value, self.metric(name)))

    def spool_id(self):
        with open(os.path.join(self.spool, "spool.id")) as f:
            return f.read().strip()


def stream_all(e, site, n=N):
    s = Stream(e.broker.port, sequence_events(site, n), "pub-" + site).start().wait(LONG)
    assert s.acked == n, s.progress()
    return s


def rows(pg, site):
    return pg.count("gate_events", "site = %s", (site,))


def corrupt_rejects(pg):
    return pg.query("SELECT reject_key, detail, payload, payload_len FROM rejects"
                    " WHERE reason = 'spool_corrupt' ORDER BY reject_key")


def seqs(pg, site):
    got = [int(r[0]) for r in pg.query(
        "SELECT substr(split_part(event_key, '/', 3), 3) FROM gate_events WHERE site = %s",
        (site,))]
    return got


def flip(path, offset):
    """Flips every bit of the byte at `offset` in `path`; returns its old value."""
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(1)
        f.seek(offset)
        f.write(bytes([old[0] ^ 0xFF]))
    return old[0]


def check_damage(e, site, spool_id, seg_start, offset, old_byte):
    """rows + spool_corrupt rejects account for all N: exactly one record is
    lost, and it is the one whose bytes (with the flipped byte put back)
    are the reject's payload. Returns (rows, rejects, damaged bytes)."""
    wait_until(lambda: rows(e.pg, site) + len(corrupt_rejects(e.pg)) >= N, LONG,
               what=lambda: "%d rows + %d rejects to reach %d"
               % (rows(e.pg, site), len(corrupt_rejects(e.pg)), N))
    got = seqs(e.pg, site)
    rej = corrupt_rejects(e.pg)
    missing = sorted(set(range(N)) - set(got))
    assert len(got) == len(set(got)), "doubled rows"
    assert len(rej) == 1, rej
    assert len(missing) == 1, missing[:20]
    assert len(got) == N - 1
    key, detail, payload, length = rej[0]
    payload = bytes(payload)
    m = re.fullmatch(r"spool:([0-9a-f]{32}):(\d+)", key)
    assert m and m.group(1) == spool_id, key
    pos = int(m.group(2))
    flipped = seg_start + offset
    assert pos <= flipped < pos + length, (pos, flipped, length)
    assert length == len(payload), (length, len(payload))
    fixed = bytearray(payload)
    fixed[flipped - pos] = old_byte
    assert ('"id": "S-%07d"' % missing[0]).encode() in fixed, fixed
    assert str(pos) in detail, detail
    return len(got), len(rej), length


def test_flipped_byte_in_last_segment(private_env):
    """One byte flipped in the middle of the last segment, between two runs:
    recovery keeps the records after it; only the damaged one is lost, and
    it is in rejects (it was acknowledged: the broker will not send it
    again)."""
    e, site = private_env, "dlast"
    e.broker.start()
    e.pg.start()
    c = Daemon(e)
    e.pg.stop("fast")
    stream_all(e, site)
    c.wait_received(N)
    assert c.d.kill() == -signal.SIGKILL
    segs = sorted(glob.glob(os.path.join(c.spool, "*.seg")))
    assert len(segs) == 1, segs
    size = os.path.getsize(segs[0])
    offset = size // 2
    old = flip(segs[0], offset)

    e.pg.start()
    e.restart(c.d)
    got, rej, length = check_damage(e, site, c.spool_id(), 0, offset, old)
    c.wait_metric("cordon_spool_damaged_spans_total", 1)
    assert c.metric("cordon_spool_damaged_bytes_total") == length
    # counted by the store once the reject is written: a later rendering
    c.wait_metric('cordon_rejects_total{reason="spool_corrupt"}', 1)
    assert c.metric("cordon_spool_torn_bytes") == 0
    log = c.d.log()
    assert "with whole records after it: kept" in log, tail(c.d.logfile)
    assert "torn tail" not in log, tail(c.d.logfile)
    assert "the records in them are lost" in log, tail(c.d.logfile)
    assert c.d.stop() == 0
    print("\n[spool] last segment: N=%d rows=%d spool_corrupt=%d damaged_bytes=%d lost=1"
          % (N, got, rej, length))


def test_flipped_byte_in_closed_segment_while_running(private_env):
    """One byte flipped in a closed segment under a running cordond, in
    records the store has not read yet (PostgreSQL down): the store's reader
    skips only that record."""
    e, site = private_env, "dclosed"
    e.broker.start()
    e.pg.start()
    c = Daemon(e, {"spool": {"segment_bytes": "256KiB", "max_bytes": "64MiB"},
                   "postgres": {"batch_rows": "500"}})
    e.pg.stop("fast")
    stream_all(e, site)
    c.wait_received(N)
    segs = sorted(glob.glob(os.path.join(c.spool, "*.seg")))
    assert len(segs) >= 6, segs
    # the third segment: past the two batches (1,000 records) in memory
    target = segs[2]
    seg_start = int(os.path.basename(target)[:20])
    offset = os.path.getsize(target) // 2
    old = flip(target, offset)

    e.pg.start()
    got, rej, length = check_damage(e, site, c.spool_id(), seg_start, offset, old)
    c.wait_metric("cordon_spool_damaged_spans_total", 1)
    assert c.metric("cordon_spool_damaged_bytes_total") == length
    log = c.d.log()
    assert "skipping to" not in log, tail(c.d.logfile)
    assert c.d.stop() == 0
    print("\n[spool] closed segment while running: N=%d rows=%d spool_corrupt=%d"
          " damaged_bytes=%d lost=1" % (N, got, rej, length))


def test_torn_tail_then_sigterm_drains_at_once(private_env):
    """A torn tail cut at start leaves a gap of positions before the new
    segment. Nothing is pending: SIGTERM drains at once (exit 0, no
    deadline), and every figure counts bytes, not positions."""
    e, site = private_env, "dgap"
    n = 1000
    e.broker.start()
    e.pg.start()
    c = Daemon(e, {"daemon": {"shutdown_timeout": "600s"}})
    stream_all(e, site, n)
    wait_until(lambda: rows(e.pg, site) == n, LONG, what="%d rows" % n)
    assert c.d.kill() == -signal.SIGKILL
    newest = sorted(glob.glob(os.path.join(c.spool, "*.seg")))[-1]
    os.truncate(newest, os.path.getsize(newest) - 7)

    e.restart(c.d)
    wait_until(lambda: c.metric("cordon_spool_torn_bytes"), what="the metrics after the restart")
    torn = c.metric("cordon_spool_torn_bytes")
    assert 0 < torn < 400, torn
    assert c.metric("cordon_spool_backlog_bytes") == 0
    log = c.d.log()
    assert re.search(r"replaying from position \d+ \(0 bytes not yet in PostgreSQL\)", log), \
        tail(c.d.logfile)
    rc = c.d.stop(signal.SIGTERM, timeout=60)
    assert rc == 0, "cordond exited %r on SIGTERM:\n%s" % (rc, tail(c.d.logfile))
    log = c.d.log()
    assert "drained: everything received is in PostgreSQL" in log, tail(c.d.logfile)
    assert "shutdown deadline reached" not in log, tail(c.d.logfile)
    assert len(re.findall(r"are a gap that holds no data", log)) == 1, tail(c.d.logfile)
    assert "stepping over the gap" not in log
    assert rows(e.pg, site) == n
    print("\n[spool] torn tail: N=%d rows=%d torn_bytes=%d backlog_bytes=0 sigterm=drained"
          % (n, rows(e.pg, site), torn))


def test_spool_dir_deleted_while_running(private_env):
    """rm -rf of the spool directory mid-stream: cordond stops acknowledging
    (the broker keeps the rest), says so (log, metric, health, backlog
    alert), still loads what the deleted files held, then makes the
    directory again and takes the rest: every message once.

    The backlog alert is raised at once, but reaches the broker only when
    the receive callback stops waiting for the spool: Paho holds its lock
    while our callback waits, so nothing goes out over MQTT meanwhile (the
    broker drops us after the keepalive and publishes our will)."""
    e, site = private_env, "ddel"
    e.broker.start()
    e.pg.start()
    c = Daemon(e)
    with Collector(e.broker.port, "cordon/_daemon/alert/#") as alerts:
        e.pg.stop("fast")
        s = Stream(e.broker.port, sequence_events(site, N), "pub-" + site, rate=N / 20).start()
        try:
            wait_until(lambda: (c.metric("cordon_messages_received_total") or 0) >= N // 4,
                       LONG, what="a quarter of the stream in the spool")
            shutil.rmtree(c.spool)
            wait_until(lambda: "spool directory %s was deleted" % c.spool in c.d.log(), LONG,
                       what="the log to say the spool directory was deleted")
            c.wait_metric("cordon_spool_writable", 0)
            code, body = c.healthz()
            assert code == 503 and "spool directory deleted" in body, (code, body)
            wait_until(lambda: "alert backlog raised" in c.d.log(), LONG,
                       what="the backlog alert raised")
            held = c.metric("cordon_messages_received_total")
            assert held < N
            assert not os.path.exists(c.spool)
            assert c.d.alive()

            e.pg.start()
            s.wait(LONG)
        finally:
            s.close()
        assert s.acked == N, s.progress()
        wait_until(lambda: rows(e.pg, site) >= N, LONG,
                   what=lambda: "%d rows (have %d)" % (N, rows(e.pg, site)))
        raised = alerts.wait_for(lambda t, p: t.endswith("/backlog")
                                 and json.loads(p).get("state") == "raised", LONG)
        assert json.loads(raised[1])["text"].endswith(": spool directory deleted"), raised
        alerts.wait_for(lambda t, p: t.endswith("/backlog")
                        and json.loads(p).get("state") == "resolved", LONG)
    got = seqs(e.pg, site)
    assert len(got) == N and set(got) == set(range(N)), \
        "%d rows, %d distinct" % (len(got), len(set(got)))
    assert e.pg.count("rejects") == 0
    c.wait_metric("cordon_spool_writable", 1)
    assert c.healthz()[0] == 200
    log = c.d.log()
    assert log.count("was deleted while cordond runs") == 1, tail(c.d.logfile)
    assert "made again" in log, tail(c.d.logfile)
    assert os.path.exists(os.path.join(c.spool, "spool.id"))
    assert c.d.stop() == 0
    print("\n[spool] directory deleted: N=%d acked=%d rows=%d rejects=0 received_at_delete=%d"
          % (N, s.acked, len(got), held))
