"""cordon-sim against the real pipeline: the reference compound's register, a
compressed stretch of a simulated day with every fault injected, then what the
simulator says it published must equal what PostgreSQL stored, kind by kind,
and every injected fault must have raised its alert."""

import json
import os
import subprocess

import harness

SITE = "sim"

TABLES = {   # sim summary kind -> (table, where)
    "gate_events": ("gate_events", "site = %s"),
    "gate_status": ("gate_status", "site = %s"),
    "disinfections": ("disinfections", "site = %s"),
    "hotline_events": ("hotline_events", "site = %s"),
    "isolation_checks": ("isolation_checks", "site = %s"),
    "rejects": ("rejects", "topic LIKE 'cordon/' || %s || '/%%'"),
}
FAULT_ALERTS = {   # fault -> alert kind it must raise
    "fever": "fever", "sealed": "sealed_gate", "breach": "isolation_breach",
    "unknown_card": "unknown_card", "exit_quota": "exit_quota", "hotline": "hotline_unresolved",
    "missed_check": "isolation_overdue", "silent": "gate_silent",
}


def test_sim_counts_and_faults(env, cordond):
    sim = harness.sim_binary()
    conf = harness.cordonctl_config(env.dir, env.pg.conninfo)
    harness.cordonctl(conf, "migrate", expect=0)
    csv_path = os.path.join(env.dir, "households.csv")
    script = os.path.join(env.dir, "setup.sh")
    sql = os.path.join(env.dir, "setup.sql")
    subprocess.run([sim, "register", "--site", SITE, "--seed", "3", "--out",
                    csv_path, "--script", script, "--sql", sql], check=True, timeout=60)
    harness.cordonctl(conf, "import", "households", csv_path, "--site", SITE, expect=0)
    subprocess.run(["sh", script], check=True, timeout=300,
                   env=dict(os.environ, CORDON_CONF=conf))
    with open(sql) as f:
        env.pg.query(f.read())
    assert env.pg.scalar("SELECT count(*) FROM gates WHERE site = %s AND state = 'sealed'",
                         (SITE,)) == 15
    assert env.pg.scalar("SELECT count(*) FROM households WHERE site = %s", (SITE,)) == 3427

    cordond({"rules": {"silence_timeout": "15s", "exit_quota": "1", "exit_window": "1h",
                       "check_grace": "5s", "hotline_medical_limit": "20s",
                       "repeat_interval": "30s"}})
    summary = os.path.join(env.dir, "summary.json")
    p = subprocess.run([sim, "run", "--uri", "tcp://127.0.0.1:%d" % env.broker.port,
                        "--site", SITE, "--seed", "3", "--register", csv_path,
                        "--duration", "40s", "--day", "120s", "--faults", "all",
                        "--fever-rate", "0.005", "--silent-at", "11s", "--silent-for", "20s",
                        "--summary", summary],
                       capture_output=True, text=True, timeout=200)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "gate_events" in p.stdout and "total" in p.stdout   # the table
    with open(summary) as f:
        published = json.load(f)
    rows = published["rows"]
    assert rows["gate_events"] > 50 and rows["gate_status"] > 50
    assert rows["rejects"] == 6
    assert set(published["faults"]) >= {"fever", "sealed", "breach", "malformed", "unknown_card",
                                        "skew", "exit_quota", "hotline"}

    def stored():
        return {k: env.pg.count(t, w, (SITE,)) for k, (t, w) in TABLES.items()}
    harness.wait_until(lambda: stored() == rows,
                       what=lambda: "stored %r == published %r" % (stored(), rows))
    # the vendor formats were part of the mix
    vendors = dict(env.pg.query("SELECT vendor, count(*) FROM gate_events WHERE site = %s"
                                " GROUP BY vendor", (SITE,)))
    assert {"canonical", "hikvision", "wecom"} <= set(vendors), vendors
    # the clock-skewed terminal: flagged, and its fever still raised
    assert env.pg.count("gate_events", "site = %s AND 'clock_skew' = ANY (flags)", (SITE,)) == 1

    def kinds():
        return {k for (k,) in env.pg.query("SELECT DISTINCT kind FROM alerts WHERE site = %s",
                                           (SITE,))}
    want = set(FAULT_ALERTS.values())
    harness.wait_until(lambda: want <= kinds(),
                       what=lambda: "alerts of every fault; missing %s" % (want - kinds()))
    assert env.pg.count("alerts", "site = %s AND kind = 'sealed_gate' AND gate = 'G07'",
                        (SITE,)) == 1
    assert env.pg.count("alerts", "site = %s AND kind = 'isolation_overdue' AND household = %s",
                        (SITE, published["missed_check"])) == 1
    assert env.pg.count("alerts", "site = %s AND kind = 'fever' AND severity = 'critical'",
                        (SITE,)) >= 1
    # the silent gate came back: its alert is resolved
    harness.wait_until(lambda: env.pg.count(
        "alerts", "site = %s AND kind = 'gate_silent' AND state = 'resolved'", (SITE,)) == 1,
        what="gate_silent resolved")
