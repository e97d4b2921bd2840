"""Issue 12 point 3: a full disk under the spool (SPEC §6 G1, G3, G4).

The spool lives on an 8 MiB tmpfs (smaller than one spool segment and far
smaller than max_bytes), PostgreSQL is down and N (60,000) gate events
arrive. cordond must pause intake before the disk is full (the broker keeps
the rest in our session), go on raising alerts while paused, survive a disk
filled to its last byte (alerts it cannot write to its outbound queue on
disk stay in memory and are counted), start again on the full disk after a
SIGKILL (a damaged outbound-queue entry is set aside and counted, never
read), and, once PostgreSQL is back and the disk has some room (less than
it had: something else keeps part of it), reclaim the committed space by
itself, resume intake and store every event exactly once.

Mounting a tmpfs needs root (CI runs as root); the test is skipped otherwise.
"""

import datetime
import errno
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

import harness
from harness import IS_ROOT, Stream, free_port, publish_many, sequence_events, tail, wait_until
from test_durability import LONG, verify_exact, wait_all_stored
from test_service import rewrite_config

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="mounts a tmpfs: needs root")

N = int(os.environ.get("CORDON_DISKFULL_N", "60000"))
SITE = "dfull"
DISK = 8 << 20


@pytest.fixture
def small_disk(private_env):
    mnt = os.path.join(private_env.dir, "spoolfs")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % DISK, "tmpfs", mnt],
                   check=True)
    try:
        yield mnt
    finally:
        # cordond may still hold files there until private_env stops it
        subprocess.run(["umount", "-l", mnt], check=False)


def http(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return None, ""


def metric(base, name):
    code, text = http(base + "/metrics")
    for line in text.splitlines() if code == 200 else []:
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def fill(path):
    """Write zeros to path until the file system is full; return the bytes written."""
    n = 0
    chunk = b"\0" * 4096
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
                return n


def used(mnt):
    st = os.statvfs(mnt)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_disk_full_pauses_survives_and_resumes(private_env, small_disk):
    e = private_env
    e.broker.start()
    e.pg.start()
    conf = harness.cordonctl_config(e.dir, e.pg.conninfo)
    harness.cordonctl(conf, "migrate", expect=0)
    for g in ("G01", "G02", "G03", "G04"):
        harness.cordonctl(conf, "gate", "add", SITE, g, expect=0)
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    spool = os.path.join(small_disk, "spool")
    # An urgent medical call, open from the start: its hotline_unresolved
    # alert comes when the SIGHUP below lowers the limit, with the disk full.
    # Not clustered: the disk's sizes are for the spool alone (clustered,
    # each of the 16 shard sessions keeps about 100 KiB of its own there;
    # the spool's handling of a full disk is the same).
    d = e.cordond({"spool": {"dir": spool}, "rules": {"hotline_medical_limit": "1h"},
                   "metrics": {"listen": "127.0.0.1:%d" % port}, "cluster": {"shards": "0"}})
    wait_until(lambda: "rule state restored" in d.log(), what="the register and rule state loaded")
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    publish_many(e.broker.port, [("cordon/%s/hotline" % SITE, json.dumps(
        {"call_id": "H-1", "id": "1", "action": "open", "ts": now, "household": "3-2-401",
         "category": "medical", "urgent": True}).encode())])
    e.pg.stop("fast")
    # Someone else's 5 MiB on the same disk, for the whole test.
    other = os.path.join(small_disk, "other")
    with open(other, "wb") as f:
        f.write(b"\0" * (5 << 20))

    s = Stream(e.broker.port, sequence_events(SITE, N), "pub-" + SITE).start()
    try:
        # 1. Intake pauses before the disk is full; /healthz says why.
        wait_until(lambda: "bytes free (below" in d.log(), LONG, what="the disk-full pause")
        assert d.alive(), tail(d.logfile)
        wait_until(lambda: http(base + "/healthz")[0] == 503 and
                   "spool disk full" in http(base + "/healthz")[1], what="/healthz saying the disk is full")

        # 2. The disk filled to its last byte by someone else, then an alert:
        # it cannot be written to the outbound queue on disk. First every
        # outbound entry is acknowledged by the broker: an entry deleted at
        # its PUBACK after the fill would free room for the alert's.
        out = os.path.join(spool, "mqtt-out")
        wait_until(lambda: not any(os.path.isfile(os.path.join(out, f)) for f in os.listdir(out)),
                   what="the outbound queue on disk empty (all acknowledged)")
        filler = os.path.join(small_disk, "filler")
        fill(filler)
        rewrite_config(d, "rules", "hotline_medical_limit", "1s")
        d.send_signal(signal.SIGHUP)
        wait_until(lambda: "alert hotline_unresolved raised" in d.log(), what="the hotline alert")
        wait_until(lambda: (metric(base, "cordon_mqtt_outbound_unpersisted_total") or 0) > 0,
                   what="outbound messages counted as not written to disk")
        assert "stays in memory only" in d.log()
        assert d.alive(), tail(d.logfile)

        # 3. SIGKILL on the full disk, a damaged outbound entry left behind
        # (as a power loss would cut one), and a start on the full disk.
        d.kill()
        os.remove(filler)
        with open(os.path.join(spool, "mqtt-out", "c5-99999"), "wb") as f:
            f.write(b"CMP1\x00\x10\x00\x00cut")
        fill(filler)
        d.start()
        wait_until(lambda: "ready: spool open, intake paused" in d.log(), what="ready, paused")
        wait_until(lambda: metric(base, "cordon_mqtt_outbound_lost_total") == 1,
                   what="the damaged entry counted as lost")
        assert "is cut or damaged" in d.log()
        assert d.alive(), tail(d.logfile)

        # 4. Room again (but for the 5 MiB of someone else's: once all is
        # committed, less than twice the 2 MiB reserve is free) and
        # PostgreSQL back: everything lands, the committed space is
        # reclaimed by itself and intake resumes by itself, pausing and
        # resuming as the disk fills and empties.
        os.remove(filler)
        e.pg.start()
        s.wait(LONG)
    finally:
        s.close()
    assert s.acked == N, s.progress()
    wait_all_stored(e, d, SITE, N)
    figures = verify_exact(e.pg, SITE, N)
    assert "resuming intake" in d.log()
    assert d.log().count("resuming intake") >= 2, "intake resumed with less than twice the reserve free"
    os.remove(other)
    wait_until(lambda: used(small_disk) < DISK // 4,
               what=lambda: "committed spool space reclaimed (%d bytes used)" % used(small_disk))
    wait_until(lambda: http(base + "/healthz")[0] == 200, what="/healthz healthy again")
    assert d.alive(), tail(d.logfile)
    print("\n[disk full] N=%d %s used_at_end=%d" % (N, figures, used(small_disk)))
