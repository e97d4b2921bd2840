"""cordon-sim load against the real pipeline: every acknowledged message is
one row, the paced mode reports its rate (printed, never asserted: the
machine is shared), and a --stamp'ed fever reading's publish time can be read
back from the event_id of the alert it raised."""

import json
import re
import subprocess
import time

import harness
from harness import Collector, wait_until

LONG = 180


def load(env, site, *args, timeout=LONG):
    """Run cordon-sim load; return its report {published, acknowledged, elapsed_s, rate_msg_s}."""
    p = subprocess.run([harness.sim_binary(), "load", "--uri",
                        "tcp://127.0.0.1:%d" % env.broker.port, "--site", site]
                       + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    report = dict(re.findall(r"^(published|acknowledged|elapsed_s|rate_msg_s)\s+(\S+)$",
                             p.stdout, re.M))
    assert set(report) == {"published", "acknowledged", "elapsed_s", "rate_msg_s"}, p.stdout
    return {k: float(v) for k, v in report.items()}


def stored(env, d, site, n):
    def enough():
        assert d.alive(), "cordond exited with %r" % d.returncode()
        return env.pg.count("gate_events", "site = %s", (site,)) >= n
    wait_until(enough, LONG, what=lambda: "%d rows for %s (have %d)"
               % (n, site, env.pg.count("gate_events", "site = %s", (site,))))
    return env.pg.count("gate_events", "site = %s", (site,))


def test_load_as_fast_as_possible(env, cordond, capsys):
    d = cordond()
    r = load(env, "ld1", "--count", 5000, "--rate", 0)
    assert r["published"] == r["acknowledged"] == 5000
    assert stored(env, d, "ld1", 5000) == 5000
    time.sleep(1)    # nothing more arrives
    assert env.pg.count("gate_events", "site = 'ld1'") == 5000
    assert env.pg.scalar("SELECT count(DISTINCT event_key) FROM gate_events"
                         " WHERE site = 'ld1'") == 5000
    with capsys.disabled():
        print("\nload --rate 0 --count 5000: %.0f msg/s" % r["rate_msg_s"])


def test_load_paced_mix(env, cordond, capsys):
    d = cordond()
    r = load(env, "ld2", "--count", 4000, "--rate", 2000, "--format", "mix")
    assert r["published"] == r["acknowledged"] == 4000
    with capsys.disabled():
        print("\nload --rate 2000 --count 4000: %.0f msg/s in %.3f s"
              % (r["rate_msg_s"], r["elapsed_s"]))
    # WeCom reports make one row per reading, one reading each here
    assert stored(env, d, "ld2", 4000) == 4000
    vendors = dict(env.pg.query("SELECT vendor, count(*) FROM gate_events WHERE site = 'ld2'"
                                " GROUP BY vendor"))
    assert {"canonical", "hikvision", "wecom"} <= set(vendors), vendors


def test_load_stamp_in_alert(env, cordond):
    cordond()
    with Collector(env.broker.port, "cordon/ld3/alert/fever") as alerts:
        before = time.time() * 1e6
        load(env, "ld3", "--count", 400, "--rate", 0, "--fever-every", 100, "--stamp")
        after = time.time() * 1e6

        def raised():
            return [json.loads(p) for _, p in alerts.snapshot()
                    if json.loads(p)["transition"] == "raised"]
        wait_until(lambda: len(raised()) == 4, LONG,
                   what=lambda: "4 fever alerts raised (have %d)" % len(raised()))
    for a in raised():
        # event_id = <site>/<gate>/L-<run>-<seq>-<usec>
        site, gate, rid = a["event_id"].split("/")
        assert site == "ld3" and gate == a["gate"], a
        m = re.fullmatch(r"L-[0-9a-f]{8}-(\d+)-(\d+)", rid)
        assert m, a["event_id"]
        assert int(m.group(1)) % 100 == 0
        assert before <= int(m.group(2)) <= after, (before, a["event_id"], after)


def test_load_over_sites(env, cordond):
    """--sites 12: the messages go round sites ld4-00..ld4-11, ten each, and
    each site's ten over ten of its gates."""
    d = cordond()
    r = load(env, "ld4", "--count", 120, "--rate", 0, "--sites", 12)
    assert r["published"] == r["acknowledged"] == 120
    wait_until(lambda: env.pg.count("gate_events", "site LIKE 'ld4-%%'") >= 120, LONG,
               what="120 rows over ld4-*")
    assert d.alive()
    rows = env.pg.query("SELECT site, count(*), count(DISTINCT gate) FROM gate_events"
                        " WHERE site LIKE 'ld4%%' GROUP BY site ORDER BY site")
    assert rows == [("ld4-%02d" % k, 10, 10) for k in range(12)], rows
