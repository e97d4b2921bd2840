"""The register thread's part in sites' hand-overs (include/registry.h,
include/handover.h; table site_handovers, sql/0013_handover.sql) with a
real PostgreSQL, through tests/integration/registry_probe: the steps in
each snapshot (reg_site.handover), registry_note_handover() writing them
(both steps, idempotent, the first time kept, a site not registered
skipped, written after PostgreSQL came back, retried after a failed
write), its NOTIFY reloading this instance's register, and the sites of a
shard's seed with [cluster] discovery on and off."""

import json
import os
import re
import shutil
import subprocess

import pytest
import xxhash

import harness
from harness import ACTIVE, wait_until

SENT, CUT = 1, 2   # HANDOVER_SENT, HANDOVER_DISCOVERY_CUT
SHARDS = 4


def shard_of(site, nshards=SHARDS):
    """cluster_shard_of(): XXH3-64 of the site, modulo the shards."""
    return xxhash.xxh3_64_intdigest(site.encode()) % nshards


def test_shard_of_is_cluster_shard_of():
    # tests/unit/test_cluster.c pins it-00..it-02 among 16 (5, 9, 3)
    assert [shard_of("it-%02d" % i, 16) for i in range(3)] == [5, 9, 3]


class Probe:
    """One registry_probe: commands on its stdin, its JSON lines (stdout)
    and its log (stderr) in files."""

    name = "registry_probe"
    _seq = 0

    def __init__(self, dir, conninfo):
        binary = os.environ.get("REGISTRY_PROBE")
        assert binary and os.access(binary, os.X_OK), "set REGISTRY_PROBE (meson test does)"
        Probe._seq += 1
        base = os.path.join(dir, "registry-probe-%d" % Probe._seq)
        self.outfile, self.logfile = base + ".out", base + ".log"
        argv = [binary, conninfo]
        if shutil.which("setpriv"):
            argv = ["setpriv", "--pdeathsig", "KILL", "--"] + argv
        with open(self.outfile, "ab") as out, open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=log,
                                         start_new_session=True)
        harness._PROCS.add(self.proc)
        ACTIVE.append(self)
        self.seq = 0

    def lines(self):
        with open(self.outfile, encoding="utf-8") as f:
            text = f.read()
        return [json.loads(line) for line in text.split("\n")[:-1]]

    def log(self):
        with open(self.logfile, encoding="utf-8", errors="replace") as f:
            return f.read()

    def cmd(self, text):
        """Sends one command and returns its answer."""
        assert self.proc.poll() is None, "registry_probe exited:\n" + self.log()
        self.seq += 1
        seq = self.seq
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()

        def answered():
            return next((x for x in self.lines() if x.get("seq") == seq), None)
        return wait_until(answered, what="registry_probe's answer to %r" % text)

    def note(self, site, shard, step):
        assert self.cmd("note %s %d %d" % (site, shard, step))["note"] == 0

    def pending(self):
        return self.cmd("pending")["pending"]

    def wait_written(self):
        wait_until(lambda: self.pending() == 0, what="the hand-over steps written")

    def snapshot(self, want):
        """Waits for a snapshot whose sites include `want` ({site: flags})
        with those flags; returns its sites."""
        def seen():
            snaps = [x for x in self.lines() if "snapshot" in x]
            if not snaps:
                return None
            sites = snaps[-1]["sites"]
            return sites if all(sites.get(s) == f for s, f in want.items()) else None
        return wait_until(seen, what="a snapshot with %r (last: %r)"
                          % (want, [x for x in self.lines() if "snapshot" in x][-1:]))

    def seed(self, shard, tag):
        """Asks for the seed of one shard among SHARDS; returns it."""
        before = len([x for x in self.lines() if "seed" in x and x.get("seq") is None])
        self.cmd("seed %d %d %d" % (SHARDS, shard, tag))

        def loaded():
            seeds = [x for x in self.lines() if "seed" in x and x.get("seq") is None]
            return seeds[before] if len(seeds) > before else None
        return wait_until(loaded, what="the seed of shard %d" % shard)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            rc = harness._reap(self.proc, harness.TIMEOUT)
            assert rc == 0, "registry_probe exited %r:\n%s" % (rc, self.log())
        else:
            harness._reap(self.proc, 1)
        if self in ACTIVE:
            ACTIVE.remove(self)


@pytest.fixture
def probe(env, ctl):
    """make() starts a probe on env's PostgreSQL (migrated) and returns it
    once its first snapshot is out."""
    made = []

    def make():
        p = Probe(env.dir, env.pg.conninfo)
        made.append(p)
        wait_until(lambda: any("snapshot" in x for x in p.lines()),
                   what="registry_probe's first snapshot")
        return p
    yield make
    for p in made:
        p.close()
    found = harness.sanitizer_reports(p.logfile for p in made)
    assert not found, "sanitizer report in a probe's log:\n" + "\n".join(found[:20])


def register(pg, *sites):
    pg.query("INSERT INTO sites (site) SELECT unnest(%s::text[])", (list(sites),))


def row(pg, site):
    """(shard, sent_at, discovery_cut_at) of site, or None."""
    rows = pg.query("SELECT shard, sent_at, discovery_cut_at FROM site_handovers"
                    " WHERE site = %s", (site,))
    return rows[0] if rows else None


def test_snapshot_has_the_steps(env, probe):
    register(env.pg, "hs-none", "hs-sent", "hs-both", "hs-cut")
    env.pg.query("INSERT INTO site_handovers (site, shard, sent_at, discovery_cut_at) VALUES"
                 " ('hs-sent', 1, now(), NULL), ('hs-both', 2, now(), now()),"
                 " ('hs-cut', 3, NULL, now())")
    p = probe()
    p.snapshot({"hs-none": 0, "hs-sent": SENT, "hs-both": SENT | CUT, "hs-cut": CUT})
    # a change another instance made comes with its NOTIFY
    env.pg.query("UPDATE site_handovers SET discovery_cut_at = now() WHERE site = 'hs-sent'")
    env.pg.query("SELECT pg_notify('cordon_register', 'hs-sent')")
    p.snapshot({"hs-none": 0, "hs-sent": SENT | CUT, "hs-both": SENT | CUT, "hs-cut": CUT})
    # a site removed takes its row with it
    env.pg.query("DELETE FROM sites WHERE site = 'hs-cut'")
    assert row(env.pg, "hs-cut") is None


def test_note_writes_each_step_once(env, probe):
    register(env.pg, "hn-a", "hn-b")
    p = probe()
    other = probe()      # another instance
    assert p.snapshot({"hn-a": 0, "hn-b": 0})

    p.note("hn-a", 3, SENT)
    p.wait_written()
    shard, sent, cut = row(env.pg, "hn-a")
    assert shard == 3 and sent is not None and cut is None
    # this instance's own NOTIFY reloaded its register, and the other's
    p.snapshot({"hn-a": SENT, "hn-b": 0})
    other.snapshot({"hn-a": SENT, "hn-b": 0})

    # again: the first time stays
    p.note("hn-a", 3, SENT)
    p.wait_written()
    assert row(env.pg, "hn-a") == (3, sent, None)

    p.note("hn-a", 3, CUT)
    p.wait_written()
    shard, sent2, cut = row(env.pg, "hn-a")
    assert shard == 3 and sent2 == sent and cut is not None
    p.snapshot({"hn-a": SENT | CUT, "hn-b": 0})
    p.note("hn-a", 3, CUT)
    p.note("hn-a", 3, SENT | CUT)
    p.wait_written()
    assert row(env.pg, "hn-a") == (3, sent, cut)

    # both steps in one note; a cut before any sent keeps the shard given
    p.note("hn-b", 2, CUT)
    p.wait_written()
    assert row(env.pg, "hn-b")[0] == 2 and row(env.pg, "hn-b")[1] is None
    p.note("hn-b", 1, SENT | CUT)
    p.wait_written()
    shard, sent, cut = row(env.pg, "hn-b")
    assert shard == 1 and sent is not None and cut is not None
    p.snapshot({"hn-a": SENT | CUT, "hn-b": SENT | CUT})

    # a site nobody registered: skipped, nothing left queued, no failure
    p.note("hn-ghost", 1, SENT | CUT)
    p.wait_written()
    assert row(env.pg, "hn-ghost") is None
    assert "hand-over steps in site_handovers failed" not in p.log()

    # out of range: refused, nothing queued
    assert p.cmd("note hn-a 256 1")["note"] < 0
    assert p.cmd("note hn-a 1 4")["note"] < 0
    assert p.cmd("note hn-a 1 0")["note"] < 0
    assert p.pending() == 0


def test_note_survives_a_postgresql_restart(env, probe):
    register(env.pg, "hr-a")
    p = probe()
    p.snapshot({"hr-a": 0})
    env.pg.stop()
    try:
        p.note("hr-a", 1, SENT)
        p.note("hr-a", 2, SENT)           # the same step: once, the last shard
        p.note("hr-a", 3, CUT)            # a shard with a cut alone: not taken
        p.note("hr-ghost", 2, SENT | CUT)
        assert p.pending() == 4
    finally:
        env.pg.start()
    p.wait_written()
    shard, sent, cut = row(env.pg, "hr-a")
    assert shard == 2 and sent is not None and cut is not None
    assert row(env.pg, "hr-ghost") is None
    p.snapshot({"hr-a": SENT | CUT})


def test_a_failed_write_is_tried_again(env, probe):
    register(env.pg, "hf-a")
    p = probe()
    p.snapshot({"hf-a": 0})
    env.pg.query("ALTER TABLE site_handovers RENAME TO site_handovers_away")
    try:
        p.note("hf-a", 1, SENT)
        wait_until(lambda: re.search(r"recording 1 hand-over steps in site_handovers failed:"
                                     r".*site_handovers.* does not exist; retrying", p.log()),
                   what="the failed write in the probe's log")
        assert p.pending() == 1
    finally:
        env.pg.query("ALTER TABLE site_handovers_away RENAME TO site_handovers")
    p.wait_written()
    # logged after the queue is cleared, outside its lock: waited for
    wait_until(lambda: re.search(r"hand-over steps recorded after \d+ failed attempts", p.log()),
               what="the recovered write logged")
    assert row(env.pg, "hf-a")[0] == 1
    p.snapshot({"hf-a": SENT})


def pick(prefix, shard, n):
    """n site names starting with prefix whose shard among SHARDS is `shard`."""
    names = ("%s%d" % (prefix, i) for i in range(10000))
    out = [s for s in names if shard_of(s) == shard][:n]
    assert len(out) == n
    return out


@pytest.mark.parametrize("discovery", [False, True])
def test_shard_seeds(env, probe, discovery):
    """A site registered with its hand-over done (HANDOVER_DISCOVERY_CUT)
    is of its hash shard; with discovery on, every other one (registered
    and not handed over, or handed to the marker only, or nobody
    registered it) is of shard 0, whose seed reads every site."""
    prefix = "hd%d-" % discovery
    done, sent, none, unreg = pick(prefix, 1, 4)
    zero_done, = pick(prefix + "z", 0, 1)
    register(env.pg, done, sent, none, zero_done)
    env.pg.query("INSERT INTO site_handovers (site, shard, sent_at, discovery_cut_at)"
                 " VALUES (%s, 1, now(), now()), (%s, 1, now(), NULL), (%s, 0, now(), now())",
                 (done, sent, zero_done))
    ours = [done, sent, none, unreg, zero_done]
    for i, site in enumerate(ours):
        env.pg.query(
            "INSERT INTO alerts (alert_id, site, kind, severity, state, subject, event_key,"
            " raised_at, updated_at, count) VALUES (%s, %s, 'fever', 'warning', 'raised',"
            " 'person:P1', %s, now(), now(), 1)",
            ("%032x" % (0x4d0000 + 16 * discovery + i), site, site + "/k"))
    p = probe()
    assert p.cmd("discovery %d" % discovery)["discovery"] is discovery

    def sites(seed):
        return sorted(s for s in seed["alerts"] if s.startswith(prefix))
    s0 = p.seed(0, 7)
    assert s0["seed"] == [7, 0, 0, 0]
    s1 = p.seed(1, 8)
    assert s1["seed"] == [0, 8, 0, 0]
    if discovery:
        # shard 0's seed reads every site's rows (its sites include those
        # nobody registered, whose state no list names); the main loop
        # keeps the rows of the sites whose home is shard 0 (daemon.c,
        # seed_shard())
        assert sites(s0) == sorted(ours)
        assert sites(s1) == [done]
    else:
        assert sites(s0) == [zero_done]
        assert sites(s1) == sorted([done, sent, none, unreg])
    assert sites(p.seed(2, 9)) == [] and sites(p.seed(3, 10)) == []
