"""The cluster thread (src/cluster.c, include/cluster.h; docs/scaling.md,
"Leases in PostgreSQL" and "Fencing") with a real PostgreSQL: several
tests/integration/cluster_probe processes, each the thread driven as
cordond's main loop would drive it, share 16 shards through the leases of
sql/0012_cluster.sql. A probe prints its view as a JSON line at each change
(and at SIGUSR1), releases a RELEASING shard at once, and on SIGTERM gives
everything back and exits.

Every test ends with the lease history checked over everything it did: no
two leases of one shard overlap in [acquired_at, ended_at), at most one is
open, and every owned lease has its open history row. Takeover times are
printed, never asserted (docs/performance.md has the figures)."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

import harness
from harness import ACTIVE, wait_until

SHARDS = 16
LEASE_S = 3
# it-00 .. it-49 and the shard of each among 16: cluster_shard_of(), as
# tests/unit/test_cluster.c pins it (XXH3-64 of the site, modulo 16).
SITE_SHARDS = [5, 9, 3, 1, 1, 15, 14, 11, 2, 2, 11, 11, 2, 13, 6, 7, 2, 15, 2, 2, 13, 2, 11, 6,
               10, 0, 15, 9, 11, 9, 3, 8, 9, 9, 6, 14, 7, 6, 11, 3, 10, 14, 7, 7, 1, 14, 14, 11,
               6, 11]
MISMATCH = ("[cluster] shards = 8 but the database's cluster has 16:"
            " every instance must use the same")


class Probe:
    """One cluster_probe process: its config, its JSON lines (stdout) and its
    log (stderr)."""

    name = "cluster_probe"
    _seq = 0

    def __init__(self, dir, conninfo, instance, shards=SHARDS, lease="%ds" % LEASE_S):
        binary = os.environ.get("CLUSTER_PROBE")
        assert binary and os.access(binary, os.X_OK), "set CLUSTER_PROBE (meson test does)"
        Probe._seq += 1
        self.binary = binary
        self.instance = instance
        base = os.path.join(dir, "probe-%s-%d" % (instance, Probe._seq))
        self.conffile, self.outfile, self.logfile = base + ".conf", base + ".out", base + ".log"
        with open(self.conffile, "w") as f:
            f.write("[mqtt]\nclient_id = %s\n\n[postgres]\nconninfo = %s\n\n"
                    "[cluster]\nshards = %d\nlease_time = %s\n\n[metrics]\nlisten = off\n\n"
                    "[log]\nlevel = info\n" % (instance, conninfo, shards, lease))
        self.proc = None

    def start(self):
        argv = [self.binary, self.conffile]
        if shutil.which("setpriv"):
            argv = ["setpriv", "--pdeathsig", "KILL", "--"] + argv
        with open(self.outfile, "ab") as out, open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=log,
                                         start_new_session=True)
        harness._PROCS.add(self.proc)
        ACTIVE.append(self)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def lines(self):
        """Every complete JSON line printed so far."""
        with open(self.outfile, encoding="utf-8") as f:
            text = f.read()
        return [json.loads(line) for line in text.split("\n")[:-1]]

    def last(self):
        """The last view printed (None before the first)."""
        views = [v for v in self.lines() if "why" in v]
        return views[-1] if views else None

    def owned(self, view=None):
        """{shard: epoch} of the shards OWNED in `view` (default: the last)."""
        view = view or self.last()
        if not view:
            return {}
        return {int(s): v["epoch"] for s, v in view["shards"].items() if v["state"] == "owned"}

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def usr1_view(self):
        """Asks for the view now (SIGUSR1) and returns that line."""
        n = len(self.lines())
        self.signal(signal.SIGUSR1)

        def printed():
            new = [v for v in self.lines()[n:] if v.get("why") == "usr1"]
            return new[0] if new else None
        return wait_until(printed, what="%s's view at SIGUSR1" % self.instance)

    def wait(self, timeout=harness.TIMEOUT):
        rc = harness._reap(self.proc, timeout)
        if self in ACTIVE:
            ACTIVE.remove(self)
        return rc

    def close(self):
        if self.alive():
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
        if self.proc:
            self.wait()


@pytest.fixture
def cluster(env, ctl):
    """make(instance, **kw) starts a probe; the tables start empty. At the end
    the probes are killed and the lease history of the test is checked."""
    env.pg.query("TRUNCATE cluster_settings, cluster_instances, shard_leases, lease_history")
    probes = []

    def make(instance, start=True, **kw):
        p = Probe(env.dir, env.pg.conninfo, instance, **kw)
        probes.append(p)
        return p.start() if start else p
    yield make
    for p in probes:
        p.close()
    if env.pg.alive():
        check_history(env.pg)
    found = harness.sanitizer_reports(p.logfile for p in probes)
    assert not found, "sanitizer report in a probe's log:\n" + "\n".join(found[:20])


def check_history(pg):
    """No two leases of a shard overlap; at most one open per shard; the
    owner of each lease has its open row, with its epoch."""
    overlaps = pg.query(
        "SELECT a.shard, a.epoch, a.owner, b.epoch, b.owner FROM lease_history a"
        " JOIN lease_history b ON a.shard = b.shard AND a.epoch < b.epoch"
        " WHERE tstzrange(a.acquired_at, a.ended_at, '[)')"
        "    && tstzrange(b.acquired_at, b.ended_at, '[)')")
    assert overlaps == [], "leases overlap: %r" % overlaps
    assert pg.query("SELECT shard FROM lease_history WHERE ended_at IS NULL"
                    " GROUP BY shard HAVING count(*) > 1") == []
    assert pg.query("SELECT shard FROM lease_history WHERE ended_at < acquired_at") == []
    missing = pg.query(
        "SELECT l.shard, l.owner, l.epoch FROM shard_leases l WHERE l.owner IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM lease_history h WHERE h.shard = l.shard"
        "   AND h.epoch = l.epoch AND h.owner = l.owner AND h.ended_at IS NULL)")
    assert missing == [], "owned leases without their history row: %r" % missing


def db_leases(pg):
    """{shard: (owner or None, epoch)}."""
    return {s: (o, e) for s, o, e in pg.query("SELECT shard, owner, epoch FROM shard_leases")}


def balanced(pg, probes, shards=SHARDS):
    """Every shard owned by one of `probes`, each probe's last view agreeing
    with PostgreSQL (same shards, same epochs, none RELEASING), and each
    within floor..ceil of shards / len(probes). Returns {instance: count}."""
    leases = db_leases(pg)
    if len(leases) != shards or any(o is None for o, _ in leases.values()):
        return None
    lo, hi = shards // len(probes), -(-shards // len(probes))
    counts = {}
    for p in probes:
        view = p.last()
        if not view or not view["db_ok"]:
            return None
        theirs = {s: e for s, (o, e) in leases.items() if o == p.instance}
        if p.owned(view) != theirs or len(view["shards"]) != len(theirs):
            return None
        if not lo <= len(theirs) <= hi:
            return None
        counts[p.instance] = len(theirs)
    if sum(counts.values()) != shards:
        return None
    return counts


def wait_balanced(pg, probes, what="the shards balanced"):
    return wait_until(lambda: balanced(pg, probes), what=what)


def stopped_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


# ---------------------------------------------------------------- the tests

def test_three_share_and_take_over_a_killed_one(env, ctl, cluster):
    for i in range(len(SITE_SHARDS)):
        env.pg.query("INSERT INTO sites (site) VALUES (%s) ON CONFLICT DO NOTHING",
                     ("it-%02d" % i,))
    a, b, c = cluster("a"), cluster("b"), cluster("c")
    counts = wait_balanced(env.pg, [a, b, c])
    print("three instances: %r" % counts)
    assert sorted(counts.values()) in ([5, 5, 6], [4, 6, 6])

    # cordonctl cluster: the instances and every shard with its owner and sites.
    out = ctl("cluster").stdout
    assert "16 shards, 3 instances alive" in out, out
    for p in (a, b, c):
        assert any(line.split()[:3] == [p.instance, os.uname().nodename, "alive"]
                   for line in out.splitlines()), out
    doc = json.loads(ctl("cluster", "--json").stdout)
    leases = db_leases(env.pg)
    assert doc["shards"] == SHARDS and doc["instances_alive"] == 3
    assert {i["instance"]: (i["state"], i["shards"]) for i in doc["instances"]} == \
        {p: ("alive", n) for p, n in counts.items()}
    assert [(s["shard"], s["owner"], s["epoch"]) for s in doc["leases"]] == \
        [(s, leases[s][0], leases[s][1]) for s in range(SHARDS)]
    assert [s["sites"] for s in doc["leases"]] == [SITE_SHARDS.count(s) for s in range(SHARDS)]
    assert all(s["expires_in_s"] <= LEASE_S for s in doc["leases"])
    shard_line = [line for line in out.splitlines() if line.split()[:1] == ["0"]][0]
    assert shard_line.split()[1] == leases[0][0] and shard_line.split()[-1] == \
        str(SITE_SHARDS.count(0)), out

    # SIGKILL one: the others take its shards once its leases expire.
    theirs = {s for s, (o, _) in leases.items() if o == "a"}
    t0 = time.monotonic()
    a.signal(signal.SIGKILL)
    a.wait()
    counts = wait_balanced(env.pg, [b, c], what="b and c own a's shards")
    print("a SIGKILLed: its %d shards owned by b and c after %.2f s (lease %d s): %r"
          % (len(theirs), time.monotonic() - t0, LEASE_S, counts))
    after = db_leases(env.pg)
    for s in theirs:
        assert after[s][1] == leases[s][1] + 1   # one acquisition each, a new epoch
    doc = json.loads(ctl("cluster", "--json").stdout)
    assert [i["state"] for i in doc["instances"] if i["instance"] == "a"] == ["gone"]
    s = min(theirs)
    hist = json.loads(ctl("cluster", "--history", "--shard", s, "--json").stdout)["history"]
    got = [(h["owner"], h["epoch"], h["how"]) for h in hist]
    # Newest first: the new owner's lease, open; a's, expired; before a's,
    # while the three started and shared the shards out, other holders (how
    # each ended is check_history's matter), one epoch each.
    assert got[:2] == [(after[s][0], after[s][1], None), ("a", leases[s][1], "expired")], got
    assert [e for _, e, _ in got] == list(range(after[s][1], 0, -1)), got
    text = ctl("cluster", "--history", "--shard", s).stdout
    assert text.splitlines()[0].split() == \
        ["shard", "epoch", "owner", "acquired", "ended", "how", "held"], text
    assert len(text.splitlines()) == 1 + len(hist) and " expired " in text, text


def test_a_paused_instance_does_not_act_on_what_it_lost(env, cluster):
    a, b, c = cluster("a"), cluster("b"), cluster("c")
    wait_balanced(env.pg, [a, b, c])
    b.signal(signal.SIGSTOP)
    wait_until(lambda: stopped_state(b.proc.pid), what="b stopped")
    t_stop = time.monotonic()
    seen = len(b.lines())
    lost = set(b.owned())
    # Its leases expire and a and c take them; then twice the lease passes.
    wait_until(lambda: all(db_leases(env.pg)[s][0] in ("a", "c") for s in lost),
               what="a and c own b's shards")
    print("b SIGSTOPped: its %d shards taken after %.2f s" % (len(lost), time.monotonic() - t_stop))
    wait_until(lambda: time.monotonic() - t_stop >= 2 * LEASE_S, what="2 leases paused")
    t_cont = time.monotonic()
    b.signal(signal.SIGCONT)
    first = wait_until(lambda: b.lines()[seen:][:1], what="b's first line after SIGCONT")[0]
    print("b's first view after SIGCONT: %s" % json.dumps(first))
    for s in lost:
        v = first["shards"].get(str(s))
        if v:
            assert not (v["state"] == "owned" and v["left_ms"] > 0), first
            assert v["may_act"] is False, first
    # Then they share again: a and c offer back.
    counts = wait_balanced(env.pg, [a, b, c], what="b back in the share")
    print("b continued: balanced again after %.2f s: %r" % (time.monotonic() - t_cont, counts))
    assert b.last()["lost"] >= len(lost)


def test_a_newcomer_gets_its_share(env, cluster):
    probes = [cluster("a"), cluster("b"), cluster("c")]
    wait_balanced(env.pg, probes)
    t0 = time.monotonic()
    probes.append(cluster("d"))
    counts = wait_balanced(env.pg, probes, what="d has its share")
    print("d joined: %r after %.2f s" % (counts, time.monotonic() - t0))
    assert set(counts.values()) == {4}
    released = env.pg.query("SELECT owner, count(*) FROM lease_history WHERE how = 'released'"
                            " GROUP BY owner")
    assert sum(n for _, n in released) >= 4 and "d" not in dict(released), released
    assert sum(p.last()["released"] for p in probes[:3]) >= 4


def test_a_clean_stop_hands_over_at_once(env, ctl, cluster):
    a, b = cluster("a"), cluster("b")
    wait_balanced(env.pg, [a, b])
    theirs = {s for s, (o, _) in db_leases(env.pg).items() if o == "a"}
    # a may have taken every shard before b joined and given half back
    # then: only the releases of the stop are the stop's
    stop_at = env.pg.scalar("SELECT clock_timestamp()")
    a.signal(signal.SIGTERM)
    assert a.wait() == 0, harness.tail(a.logfile)
    t0 = time.monotonic()
    assert a.lines()[-1] == {"exit": "stopped"}
    # Given back: free at once (no lease left to expire), or b's already.
    free = env.pg.query("SELECT shard, owner, expires_at <= clock_timestamp() FROM shard_leases"
                        " WHERE shard = ANY(%s)", (list(theirs),))
    assert all(o == "b" or (o is None and gone) for _, o, gone in free), free
    assert env.pg.query("SELECT stopped_at IS NOT NULL, stopping_at IS NOT NULL"
                        " FROM cluster_instances WHERE instance = 'a'") == [(True, True)]
    counts = wait_balanced(env.pg, [b], what="b owns every shard")
    print("a stopped: b owns its %d shards %.2f s after a exited (lease %d s): %r"
          % (len(theirs), time.monotonic() - t0, LEASE_S, counts))
    rows = env.pg.query(
        "SELECT r.shard, r.ended_at <= n.acquired_at FROM lease_history r"
        " JOIN lease_history n ON n.shard = r.shard AND n.epoch = r.epoch + 1"
        " WHERE r.owner = 'a' AND r.how = 'released' AND r.ended_at >= %s", (stop_at,))
    assert {s for s, _ in rows} == theirs and all(ok for _, ok in rows), rows
    out = ctl("cluster").stdout
    assert any(line.split()[:3] == ["a", os.uname().nodename, "stopped"]
               for line in out.splitlines()), out


def test_a_different_number_of_shards_is_fatal(env, cluster):
    a = cluster("a")
    wait_balanced(env.pg, [a])
    x = cluster("x", shards=8)
    assert x.wait() == 3, harness.tail(x.logfile)
    assert x.lines()[-1] == {"fatal": MISMATCH}
    assert MISMATCH in open(x.logfile).read()
    assert env.pg.query("SELECT shards FROM cluster_settings") == [(16,)]
    assert env.pg.query("SELECT count(*) FROM cluster_instances WHERE instance = 'x'") == [(0,)]
    assert balanced(env.pg, [a])


def test_postgres_away_keeps_the_owners(env, cluster):
    probes = [cluster("a"), cluster("b"), cluster("c")]
    wait_balanced(env.pg, probes)
    before = db_leases(env.pg)
    owned = {p.instance: p.owned() for p in probes}
    env.pg.stop()
    t0 = time.monotonic()
    try:
        for p in probes:
            wait_until(lambda: p.last()["db_ok"] is False, what="%s sees db_ok false" % p.instance)
        # Past every deadline: still theirs, they may act (nobody can take a
        # lease while PostgreSQL is away; the broker fences a resumed session).
        for p in probes:
            def past_deadline():
                v = p.usr1_view()
                return v if all(s["left_ms"] < 0 for s in v["shards"].values()) else None
            v = wait_until(past_deadline, what="%s's deadlines passed" % p.instance)
            assert v["db_ok"] is False
            assert p.owned(v) == owned[p.instance]
            assert all(s["may_act"] for s in v["shards"].values()), v
        print("PostgreSQL away %.1f s: every owner still may act" % (time.monotonic() - t0))
    finally:
        env.pg.start()
    t1 = time.monotonic()
    for p in probes:
        def renewed():
            v = p.last()
            return v["db_ok"] and all(s["left_ms"] > 0 for s in v["shards"].values())
        wait_until(renewed, what="%s renews again" % p.instance)
    print("PostgreSQL back: renewed after %.2f s" % (time.monotonic() - t1))
    assert db_leases(env.pg) == before
    for p in probes:
        assert p.owned() == owned[p.instance]
    assert balanced(env.pg, probes)


def test_cordonctl_cluster_before_any_instance_and_usage(ctl, cluster):
    assert ctl("cluster").stdout == ("not clustered: no instance with [cluster] shards > 0"
                                     " has run against this database\n")
    assert json.loads(ctl("cluster", "--json").stdout) == \
        {"shards": 0, "instances": [], "leases": []}
    assert ctl("cluster", "--history").stdout == "no leases yet\n"
    assert json.loads(ctl("cluster", "--history", "--json").stdout) == {"history": []}
    for args, why in ((["--shard", "3"], "--shard and --last go with --history"),
                      (["--history", "--shard", "256"], "--shard: a number from 0 to 255"),
                      (["--history", "--shard", "x"], "--shard: a number from 0 to 255"),
                      (["--history", "--last", "0"], "--last: a number from 1 to 100000"),
                      (["--frob"], "unknown option '--frob'")):
        assert why in ctl("cluster", *args, expect=2).stderr
    help = ctl("--help").stdout
    assert "cluster [--json]" in help and "cluster --history [--shard N] [--last N]" in help


def test_a_session_taken_over_comes_back_only_through_a_new_lease(env, cluster):
    a, b = cluster("a"), cluster("b")
    wait_balanced(env.pg, [a, b])
    n = len(a.lines())
    a.signal(signal.SIGUSR2)
    s = wait_until(lambda: [v["session_lost"] for v in a.lines()[n:] if "session_lost" in v],
                   what="a's session_lost line")[0]
    # Not ours from the next view on; in PostgreSQL its history ends `lost`
    # and the lease is freed (nobody holds it through PostgreSQL), so it is
    # taken again (by a or b) under the next epoch at once.
    after = wait_until(lambda: [v for v in a.lines()[n:] if "why" in v], what="a's next view")[0]
    assert str(s) not in after["shards"], after
    wait_until(lambda: a.last()["lost"] == 1, what="a counts the loss")
    lost = wait_until(lambda: env.pg.query(
        "SELECT epoch, owner FROM lease_history WHERE shard = %s AND how = 'lost'", (s,)),
        what="shard %d's lease ended as lost" % s)
    assert len(lost) == 1 and lost[0][1] == "a", lost
    epoch = lost[0][0]
    wait_until(lambda: db_leases(env.pg)[s][1] == epoch + 1, what="shard %d taken again" % s)
    wait_balanced(env.pg, [a, b])
    for v in a.lines()[n:]:
        if "why" in v and str(s) in v["shards"]:
            assert v["shards"][str(s)]["epoch"] == epoch + 1, v
