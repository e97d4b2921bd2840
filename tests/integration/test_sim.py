"""cordon-sim against the real pipeline: the reference compound's register, a
compressed stretch of a simulated day with every fault injected, then what the
simulator says it published must equal what PostgreSQL stored, kind by kind,
and every injected fault must have raised its alert. The register's carers'
cards, its volunteers and the second_card fault, read back from PostgreSQL.
The people work (welfare calls, needs, drop-offs) and its faults, captured
from the broker by a real subscriber: topics, payload shapes, and the steps
of every need, call and drop-off of a simulated day."""

import datetime
import json
import os
import re
import subprocess

import harness
from harness import Collector

SITE = "sim"

TABLES = {   # sim summary kind -> (table, where)
    "gate_events": ("gate_events", "site = %s"),
    "gate_status": ("gate_status", "site = %s"),
    "disinfections": ("disinfections", "site = %s"),
    "hotline_events": ("hotline_events", "site = %s"),
    "isolation_checks": ("isolation_checks", "site = %s"),
    "need_events": ("need_events", "site = %s"),
    "welfare_calls": ("welfare_calls", "site = %s"),
    "dropoffs": ("dropoffs", "site = %s"),
    "rejects": ("rejects", "topic LIKE 'cordon/' || %s || '/%%'"),
}
FAULT_ALERTS = {   # fault -> alert kind it must raise
    "fever": "fever", "sealed": "sealed_gate", "breach": "isolation_breach",
    "unknown_card": "unknown_card", "exit_quota": "exit_quota", "hotline": "hotline_unresolved",
    "missed_check": "isolation_overdue", "silent": "gate_silent",
}


def register(env, site, seed, *faults):
    """cordon-sim register into `site` as scripts/demo does it (import, the
    cordonctl script, the SQL); returns (households CSV path, second cards
    listed in the CSV)."""
    sim = harness.sim_binary()
    conf = harness.cordonctl_config(env.dir, env.pg.conninfo)
    harness.cordonctl(conf, "migrate", expect=0)
    csv_path = os.path.join(env.dir, "households-%s.csv" % site)
    script = os.path.join(env.dir, "setup-%s.sh" % site)
    sql = os.path.join(env.dir, "setup-%s.sql" % site)
    subprocess.run([sim, "register", "--site", site, "--seed", str(seed), "--out",
                    csv_path, "--script", script, "--sql", sql] + list(faults),
                   check=True, timeout=60)
    harness.cordonctl(conf, "import", "households", csv_path, "--site", site, expect=0)
    subprocess.run(["sh", script], check=True, timeout=300,
                   env=dict(os.environ, CORDON_CONF=conf))
    with open(sql) as f:
        env.pg.query(f.read())
    with open(csv_path) as f:
        second = sum(len(line.rstrip("\n").split(",")[6].split(";")) - 1
                     for line in list(f)[1:])
    return csv_path, second


def ordinary_pairs(env, site):
    """The households holding more than one ordinary (not extra) active card."""
    return [hh for (hh,) in env.pg.query(
        "SELECT household FROM cards WHERE site = %s AND state = 'active' AND NOT extra"
        " GROUP BY household HAVING count(*) > 1 ORDER BY household", (site,))]


def test_register_carers_volunteers_no_fault(env):
    """register --faults none: every second card is a carer's, so no household
    holds two ordinary cards; the 24 volunteers are registered."""
    _, second = register(env, "sim-nofault", 3, "--faults", "none")
    assert second > 1000   # the reference compound: most households of 3 or more
    assert env.pg.count("cards", "site = 'sim-nofault' AND extra AND reason = 'carer'") == second
    assert env.pg.count("cards", "site = 'sim-nofault' AND (extra OR reason IS NOT NULL)") == second
    assert ordinary_pairs(env, "sim-nofault") == []
    assert env.pg.query("SELECT volunteer, team FROM volunteers WHERE site = 'sim-nofault'"
                        " ORDER BY volunteer") == \
        [("vol-%02d" % k, "team-%d" % ((k - 1) // 6 + 1)) for k in range(1, 25)]
    assert env.pg.count("volunteers", "site = 'sim-nofault' AND phone ~ '^1[0-9]{10}$'") == 24


def test_sim_counts_and_faults(env, cordond):
    sim = harness.sim_binary()
    csv_path, second = register(env, SITE, 3)
    assert env.pg.scalar("SELECT count(*) FROM gates WHERE site = %s AND state = 'sealed'",
                         (SITE,)) == 15
    assert env.pg.scalar("SELECT count(*) FROM households WHERE site = %s", (SITE,)) == 3427
    # the second_card fault: one household keeps two ordinary cards, the
    # other second cards are carers'
    assert len(ordinary_pairs(env, SITE)) == 1
    assert env.pg.count("cards", "site = %s AND extra AND reason = 'carer'", (SITE,)) == second - 1

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
    assert published["second_card"] == ordinary_pairs(env, SITE)[0]
    rows = published["rows"]
    assert set(rows) == set(TABLES)
    assert rows["gate_events"] > 50 and rows["gate_status"] > 50
    assert rows["rejects"] == 6
    assert set(published["faults"]) >= {"fever", "sealed", "breach", "malformed", "unknown_card",
                                        "skew", "exit_quota", "hotline"}

    def stored():
        return {k: env.pg.count(t, w, (SITE,)) for k, (t, w) in TABLES.items()}
    harness.wait_until(lambda: stored() == rows,
                       what=lambda: "stored %r == published %r" % (stored(), rows))
    # A needs_help call's need is opened by cordond and assigned and
    # delivered by the simulator under the id cordond gives it: every such
    # need is whole (no need made of later steps alone, without a household).
    helped = env.pg.count("welfare_calls", "site = %s AND outcome = 'needs_help'", (SITE,))
    assert helped >= 1
    harness.wait_until(lambda: env.pg.count(
        "needs", "site = %s AND need_id LIKE 'call-%%' AND status = 'delivered'"
        " AND household IS NOT NULL AND opened_at IS NOT NULL", (SITE,)) == helped,
        what="every needs_help call's need delivered")
    assert env.pg.count("needs", "site = %s AND (household IS NULL OR opened_at IS NULL)",
                        (SITE,)) == 0
    # the undelivered fault's need: assigned, never delivered
    assert env.pg.query("SELECT status, assigned_to FROM needs WHERE site = %s"
                        " AND need_id = %s", (SITE, published["undelivered"])) == \
        [("assigned", "vol-01")]
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


# ---------------------------------------------------------------- the people work

PEOPLE = "people"
NEED_KEYS = {"need_id", "id", "action", "ts", "household", "category", "due", "call_id", "by",
             "note"}
CATEGORIES = {"groceries", "medicine", "elderly_care", "counselling", "other"}
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?[+-]\d\d:\d\d$")
VOLUNTEER = re.compile(r"vol-(0[1-9]|1[0-9]|2[0-4])$")


def when(text):
    assert ISO.match(text), text
    return datetime.datetime.fromisoformat(text)


def test_sim_people_work(env):
    """A simulated day and a half of 24 s at a broker, every fault injected:
    every message on the need, call and drop-off topics is captured and read
    back against the documented shapes (docs/operations.md) and the steps
    the simulator promises; the three faults are there, and nothing else is
    left undone but what the end of the run cut off."""
    day_s = 24.0
    hour = datetime.timedelta(seconds=day_s / 24)
    summary = os.path.join(env.dir, "people-summary.json")
    with Collector(env.broker.port, "cordon/%s/#" % PEOPLE) as col:
        p = subprocess.run([harness.sim_binary(), "run", "--uri",
                            "tcp://127.0.0.1:%d" % env.broker.port, "--site", PEOPLE,
                            "--seed", "5", "--day", "24s", "--duration", "36s",
                            "--passes-per-day", "300", "--faults", "all", "--summary", summary],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=200)
        assert p.returncode == 0, p.stdout + p.stderr
        with open(summary) as f:
            published = json.load(f)
        msgs = published["messages"]
        want = msgs["need_events"] + msgs["welfare_calls"] + msgs["dropoffs"]
        prefix = "cordon/%s/" % PEOPLE

        def people():
            return [(t[len(prefix):], json.loads(pl)) for t, pl in col.snapshot()
                    if re.match(r"(need|dropoff|call/[^/]+)$", t[len(prefix):])]
        harness.wait_until(lambda: len(people()) == want,
                           what=lambda: "%d of %d people-work messages" % (len(people()), want))
        captured = people()
        hotline = [json.loads(pl) for t, pl in col.snapshot() if t == prefix + "hotline"]
    assert "need_events" in p.stdout and "welfare_calls" in p.stdout and "dropoffs" in p.stdout

    isolated = published["isolated"]
    assert len(isolated) == 40
    assert published["missed_call"] == isolated[3]
    assert published["uncollected"] == isolated[4]
    assert published["undelivered"] == "N-LATE-1"
    assert published["faults"]["undelivered"] == 2 and published["faults"]["uncollected"] == 1
    needs = [m for t, m in captured if t == "need"]
    calls = [(t.split("/", 1)[1], m) for t, m in captured if t.startswith("call/")]
    drops = [m for t, m in captured if t == "dropoff"]
    assert (len(needs), len(calls), len(drops)) == \
        (msgs["need_events"], msgs["welfare_calls"], msgs["dropoffs"])
    helped = [m for _, m in calls if m["outcome"] == "needs_help"]
    assert published["rows"]["need_events"] == len(needs) + len(helped)
    assert published["rows"]["welfare_calls"] == len(calls)
    end = max(when(m["ts"]) for _, m in captured)

    # welfare calls: every isolated household but the missed_call one is
    # reached (or helped) every day; a no_answer is called again later
    assert len(helped) >= 1
    for hh, m in calls:
        assert set(m) <= {"id", "ts", "by", "outcome", "category", "note"}, m
        assert {"id", "ts", "by", "outcome"} <= set(m), m
        assert hh in isolated and re.fullmatch(r"op-[1-3]", m["by"]), (hh, m)
        assert m["outcome"] in ("reached", "no_answer", "needs_help", "counselling"), m
        assert ("category" in m) == (m["outcome"] == "needs_help"), m
        assert m.get("category", "other") in CATEGORIES, m
        when(m["ts"])
    answered = {hh for hh, m in calls if m["outcome"] != "no_answer"}
    assert answered == set(isolated) - {published["missed_call"]}
    for i, (hh, m) in enumerate(calls):
        if m["outcome"] == "no_answer":
            assert any(h2 == hh and m2["outcome"] == "reached" for h2, m2 in calls[i + 1:]), m
    assert len({m["id"] for _, m in calls}) == len(calls)

    # needs: open, assign, deliver (before due) or cancel, in that order
    steps = {}
    for m in needs:
        assert set(m) <= NEED_KEYS and {"need_id", "id", "action", "ts"} <= set(m), m
        assert m["action"] in ("open", "assign", "deliver", "cancel"), m
        when(m["ts"])
        if m["action"] == "open":
            assert m["category"] in CATEGORIES and m["household"], m
            assert when(m["due"]) > when(m["ts"]), m
        else:
            assert "household" not in m and "due" not in m, m
        if m["action"] in ("assign", "deliver"):
            assert VOLUNTEER.match(m["by"]), m
        steps.setdefault(m["need_id"], []).append(m)
    hotline_calls = {(c["call_id"], c["household"]) for c in hotline}
    for need_id, ss in steps.items():
        actions = [m["action"] for m in ss]
        ids = ["2", "3"] if need_id.startswith("call-") else ["1", "2", "3"]
        assert [m["id"] for m in ss] == ids[:len(ss)], ss
        times = [when(m["ts"]) for m in ss]
        assert times == sorted(times), ss
        if need_id == "N-LATE-1":
            assert actions == ["open", "assign"] and ss[1]["by"] == "vol-01", ss
            assert when(ss[0]["due"]) < end, "the fault's due falls within the run"
            continue
        if need_id.startswith("call-"):
            # opened by cordond for a needs_help call: assigned, delivered
            assert re.fullmatch(r"call-[0-9a-f]{16}", need_id), need_id
            assert actions == ["assign", "deliver"], ss
            assert ss[0]["by"] == ss[1]["by"], ss
            continue
        assert re.fullmatch(r"N-\d{5}", need_id), need_id
        assert actions[0] == "open", ss
        if "call_id" in ss[0]:
            assert (ss[0]["call_id"], ss[0]["household"]) in hotline_calls, ss[0]
            assert ss[0]["category"] in ("groceries", "medicine"), ss[0]
        if when(ss[0]["ts"]) < end - 8 * hour:
            assert actions in (["open", "assign", "deliver"], ["open", "cancel"]), ss
        if actions == ["open", "assign", "deliver"]:
            assert ss[1]["by"] == ss[2]["by"], ss
            assert times[1] - times[0] < 2 * hour, ss   # within need_assign_limit
            assert times[2] < when(ss[0]["due"]), ss
        else:
            assert actions in (["open"], ["open", "assign"], ["open", "cancel"]), ss
    assert len([n for n in steps if n.startswith("call-")]) == len(helped)
    assert any("call_id" in ss[0] for ss in steps.values())

    # drop-offs: isolated households only, placed then collected, one at a
    # time; the uncollected fault's is the only one for its household
    per = {}
    for m in drops:
        assert set(m) <= {"id", "ts", "household", "item", "action", "by"}, m
        assert {"id", "ts", "household", "item", "action"} <= set(m), m
        assert m["household"] in isolated and m["action"] in ("placed", "collected"), m
        assert ("by" in m) == (m["action"] == "placed"), m
        if "by" in m:
            assert VOLUNTEER.match(m["by"]), m
        per.setdefault(m["household"], []).append(m)
    assert [(m["id"], m["action"]) for m in per[published["uncollected"]]] == \
        [("P-UNCOLLECTED-1", "placed")]
    del per[published["uncollected"]]
    assert len(per) >= 10
    for hh, ms in per.items():
        actions = [m["action"] for m in ms]
        assert actions[::2] == ["placed"] * len(actions[::2]), ms
        assert actions[1::2] == ["collected"] * len(actions[1::2]), ms
        for placed, collected in zip(ms[::2], ms[1::2]):
            # within dropoff_limit
            assert when(placed["ts"]) < when(collected["ts"]) < when(placed["ts"]) + 2 * hour
        if actions[-1] == "placed":   # cut off by the end of the run
            assert when(ms[-1]["ts"]) > end - 2 * hour, ms
