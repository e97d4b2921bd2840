"""Shared parts of the benchmarks (bench/ingest, bench/latency, bench/backfill):
private servers from the integration harness, publishers, process figures. Benchmarks print figures and assert nothing.
"""

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("CORDOND", os.path.join(ROOT, "build", "cordond"))
SIM = os.environ.get("CORDON_SIM", os.path.join(ROOT, "build", "cordon-sim"))

import harness  # noqa: E402
from harness import Broker, Cordond, Postgres, free_port, make_tmpdir, sequence_events, wait_until  # noqa: E402,F401

# mosquitto_pub -l at QoS 1 stops early past 65,535 lines (message ids wrap).
LINES_PER_PUBLISHER = 50000

# Appended to the harness's mosquitto.conf (the last setting wins): a
# production broker keeps persistence on with Mosquitto's default autosave
# (the harness's 0 saves only at exit); or persistence off, for comparison.
BROKER_PRODUCTION = "autosave_interval 1800\n"
BROKER_NO_PERSISTENCE = "persistence false\n"


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_tree_seconds(pid):
    """CPU seconds of a live process and of its live children (PostgreSQL:
    the postmaster and its backends)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_busy():
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def peak_rss_mib(pid):
    """The process's peak resident set (VmHWM), MiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def syscall_us(n=20000):
    """What one system call costs here, in µs (getppid, a call that does
    nothing, from Python: ~0.05 µs of it is Python's). Every message costs
    the broker, the publisher and the consumer several system calls, so on
    a VM where they are slow (a few µs instead of a tenth) every figure
    here is several times worse; print it beside them."""
    t0 = time.thread_time()  # CPU time: the wall clock would count other processes' turns
    for _ in range(n):
        os.getppid()
    return (time.thread_time() - t0) / n * 1e6


def machine():
    """One line: CPUs, model, memory, load, a system call's cost, versions."""
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.split("\n")[0]
    pg = subprocess.run([os.path.join(harness.PG_BIN, "postgres"), "--version"],
                        capture_output=True, text=True).stdout.strip()
    return "%d CPUs (%s), %.0f GiB, kernel %s, load %.2f, a system call %.2f µs; %s; %s" % (
        os.cpu_count(), model, mem, platform.release(), os.getloadavg()[0], syscall_us(), mosq.strip(),
        pg)


def popen(argv, stdin=None, log=os.devnull):
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as i, open(log, "ab") as o:
        return subprocess.Popen(argv, stdin=i, stdout=o, stderr=o, start_new_session=True)


def killpg(p):
    if p is not None and p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


class Publishers:
    """Canonical gate events (harness.sequence_events, 4 gates) published at
    QoS 1 by `mosquitto_pub -l -q 1 -M 1000`, one process per chunk of at
    most 50,000 lines (past 65,535 lines mosquitto_pub stops early), each
    reading its payloads from a file written beforehand (a Python publisher
    tops out near 5,000 msg/s here and would be the bottleneck). Each exits
    once the broker has acknowledged its last message.

    By default the chunks are published one after the other by a single
    mosquitto_pub at a time: one publisher, as a gateway or a bridge feeds a
    production broker. parallel=True starts every chunk at once (what
    bench/ingest did until 2026-11-30: four or more publishers competing with
    the broker and the consumer for two cores, which measured the scheduler
    more than the consumer; bench/ingest --parallel-publishers keeps it)."""

    def __init__(self, dir, port, site, count, prefix="S", events=None, parallel=False):
        """events: (topic, payload) pairs to publish instead of
        sequence_events(site, count)."""
        self.parallel = parallel
        by_topic = {}
        for topic, payload in events if events is not None else \
                sequence_events(site, count, prefix=prefix):
            by_topic.setdefault(topic, []).append(payload)
        self.dir, self.port, self.procs, self.files, self.threads, self.exits = dir, port, [], [], [], []
        self.last_keys = []     # event key of each publisher's last message
        n = 0
        for topic, payloads in sorted(by_topic.items()):
            for k in range(0, len(payloads), LINES_PER_PUBLISHER):
                path = os.path.join(dir, "pub-%d.txt" % n)
                chunk = payloads[k:k + LINES_PER_PUBLISHER]
                with open(path, "wb") as f:
                    f.write(b"\n".join(chunk) + b"\n")
                self.files.append((topic, path))
                gate = topic.split("/")[3]
                self.last_keys.append("%s/%s/%s" % (site, gate, json.loads(chunk[-1])["id"]))
                n += 1

    def _spawn(self, n):
        topic, path = self.files[n]
        p = popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port),
                   "-i", "bench-pub-%d" % n, "-q", "1", "-M", "1000", "-l", "-t", topic],
                  path, os.path.join(self.dir, "pub.log"))
        self.procs.append(p)
        return p

    def start(self):
        self.stopped = False
        t0 = time.monotonic()
        if self.parallel:
            for n in range(len(self.files)):
                t = threading.Thread(target=self._reap, args=(self._spawn(n),), daemon=True)
                t.start()
                self.threads.append(t)
        else:
            t = threading.Thread(target=self._in_turn, daemon=True)
            t.start()
            self.threads.append(t)
        return t0

    def _reap(self, p):
        p.wait()
        self.exits.append(time.monotonic())

    def _in_turn(self):
        for n in range(len(self.files)):
            if self.stopped:
                return
            p = self._spawn(n)
            p.wait()
            self.exits.append(time.monotonic())
            if p.returncode != 0:
                return

    def wait(self, timeout=1800):
        """Return when the last publisher exited (its last PUBACK)."""
        for t in self.threads:
            t.join(timeout)
        for p in self.procs:
            if p.poll() != 0:
                raise SystemExit("mosquitto_pub exited %r:\n%s"
                                 % (p.poll(), harness.tail(os.path.join(self.dir, "pub.log"))))
        return max(self.exits)

    def kill(self):
        self.stopped = True
        for p in self.procs:
            killpg(p)


def metric(port, name):
    """The sum of the samples of `name` (all labels) on cordond's /metrics,
    or None when the endpoint does not answer."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(float(v) for v in re.findall(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M))


class Setup:
    """A private Mosquitto and PostgreSQL (durable: fsync on) in a temporary
    folder, and a cordond with its metrics on a free port. Use as a context
    manager: everything is stopped and removed at the end."""

    def __init__(self, prefix="cordon-bench-", durable=True, broker_persistence=True):
        """broker_persistence: Mosquitto as in production (persistence on,
        its default autosave_interval of 1800 s); False: persistence off."""
        self.dir = make_tmpdir(prefix)
        os.mkdir(os.path.join(self.dir, "broker"))
        os.mkdir(os.path.join(self.dir, "pg"))
        self.broker = Broker(os.path.join(self.dir, "broker"),
                             extra=BROKER_PRODUCTION if broker_persistence else BROKER_NO_PERSISTENCE)
        self.pg = Postgres(os.path.join(self.dir, "pg"), durable=durable)
        self.cordond = None
        self.metrics_port = None
        self.procs = []

    def __enter__(self):
        self.broker.start()
        return self

    def start_pg(self):
        self.pg.start()
        return self.pg

    def start_cordond(self, overrides=None, wait_schema=True):
        self.metrics_port = free_port()
        conf = {"log": {"level": "notice"},
                "metrics": {"listen": "127.0.0.1:%d" % self.metrics_port}}
        for section, kv in (overrides or {}).items():
            conf.setdefault(section, {}).update(kv)
        since = self.broker.log_size()
        d = self.cordond = Cordond(self.dir, self.broker.port, self.pg.conninfo, conf)
        d.start()
        wait_until(lambda: d.alive() and self.broker.subscribed(d.inbound_id, since), 60,
                   what="cordond connected")
        if wait_schema:
            # Rules (and so the store) start once the register and the rule
            # state are loaded: a run timed before that would include the wait.
            wait_until(lambda: "rule state restored" in d.log(), 60,
                       what="cordond's register and rule state loaded")
        return d

    def wait_stored(self, keys, timeout=3600, interval=0.05):
        """Wait until the events with these keys are in PostgreSQL and return
        the time. Given each publisher's last event: cordond commits in the
        order it received, and each publisher's messages arrive in order, so
        that is all of them (an index lookup each, cheap enough to poll)."""
        d = self.cordond

        def done():
            assert d.alive(), "cordond exited:\n" + harness.tail(d.logfile)
            return self.pg.scalar("SELECT count(*) FROM gate_events WHERE event_key = ANY(%s)",
                                  (list(keys),)) == len(keys)
        wait_until(done, timeout, interval=interval, what="the last events stored")
        return time.monotonic()

    def __exit__(self, *exc):
        for p in self.procs:
            killpg(p)
        if self.cordond is not None and self.cordond.alive():
            self.cordond.kill()
        self.broker.stop()
        if self.pg.alive():
            self.pg.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False
