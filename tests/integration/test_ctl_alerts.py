"""cordonctl's operating commands end to end (SPEC 10): alerts, ack,
resolve, stats and report daily against a real broker, PostgreSQL and
cordond. The events are timestamped now, so they fall on today's report
(the site's time zone, Asia/Shanghai by default)."""

import datetime
import json
import os
import re
import signal
import subprocess
import threading

import psycopg2
import pytest

import harness
from harness import gate_event, publish_many, wait_until

SITE = "cx"


def now_ts(offset_s=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)
    return t.isoformat(timespec="milliseconds")


def hotline(call_id, id, action, ts, **kw):
    body = {"call_id": call_id, "id": id, "action": action, "ts": ts, **kw}
    return "cordon/%s/hotline" % SITE, json.dumps(body).encode()


def alert_row(env, alert_id):
    rows = env.pg.query("SELECT state, by_whom FROM alerts WHERE alert_id = %s", (alert_id,))
    return rows[0] if rows else None


def wait_state(env, alert_id, state):
    return wait_until(lambda: (alert_row(env, alert_id) or ("",))[0] == state and alert_row(env, alert_id),
                      timeout=60, what=lambda: "alert %s %s (row %r)" % (alert_id, state,
                                                                        alert_row(env, alert_id)))


@pytest.fixture(scope="module")
def setup(env):
    conf = harness.cordonctl_config(env.dir, env.pg.conninfo)
    harness.cordonctl(conf, "migrate", expect=0)
    harness.cordonctl(conf, "gate", "add", SITE, "G01", expect=0)
    harness.cordonctl(conf, "gate", "add", SITE, "G09", "--sealed", expect=0)
    harness.cordonctl(conf, "zone", "add", SITE, "Z01", expect=0)
    return conf


def test_alerts_ack_resolve_stats_report(env, cordond, setup):
    d = cordond()
    wait_until(lambda: "register loaded" in d.log(), what="cordond loading the register")

    def ctl(*args, expect=0):
        # cordond's own config file: [postgres] and [mqtt] (uri, topic_root)
        return harness.cordonctl(d.conffile, *args, expect=expect)

    # One local day (the site's zone, Asia/Shanghai: UTC+8, no summer
    # time) holds the whole scenario, and the reports name it: a run just
    # after local midnight moves the calls' opening to that midnight
    # (their resolves, 4 and 6 minutes on, stay within max_clock_skew).
    utc = datetime.timezone.utc
    now = datetime.datetime.now(utc)
    local = now.astimezone(datetime.timezone(datetime.timedelta(hours=8)))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    t0 = max(now - datetime.timedelta(seconds=360), midnight + datetime.timedelta(seconds=1))

    def at(t, s=0):
        return (t + datetime.timedelta(seconds=s)).astimezone(utc).isoformat(
            timespec="milliseconds")
    ts, day = at(now), local.date().isoformat()
    publish_many(env.broker.port, [
        gate_event(SITE, "G01", "E-1", card="C-1", person="P-1", temp_c=38.6, ts=ts),
        gate_event(SITE, "G01", "E-2", card="C-2", person="P-2", temp_c=36.5, ts=ts),
        gate_event(SITE, "G01", "E-3", card="C-3", person="P-3", temp_c=50.0, ts=ts),
        gate_event(SITE, "G09", "E-4", card="C-4", person="P-4", temp_c=36.6, ts=ts),
        ("cordon/%s/disinfection/Z01" % SITE,
         json.dumps({"id": "D-1", "ts": ts, "crew": "crew-1", "agent": "chlorine"}).encode()),
        ("cordon/%s/isolation/HH-1/check" % SITE,
         json.dumps({"id": "K-1", "ts": ts, "person": "P-9", "temp_c": 36.5}).encode()),
        ("cordon/%s/isolation/HH-1/check" % SITE,
         json.dumps({"id": "K-2", "ts": ts, "temp_c": 36.8}).encode()),
        # medical: resolved after 4 and 6 minutes (median 5.0); other: still open
        hotline("H-1", "1", "open", at(t0), category="medical", urgent=False),
        hotline("H-1", "2", "resolve", at(t0, 240)),
        hotline("H-2", "1", "open", at(t0), category="medical", urgent=False),
        hotline("H-2", "2", "resolve", at(t0, 360)),
        hotline("H-3", "1", "open", ts, category="supplies", urgent=False),
        ("cordon/%s/gate/G01/event" % SITE, b"{not json"),
    ])

    def open_alerts():
        return env.pg.query("SELECT kind, alert_id FROM alerts WHERE site = %s"
                            " AND state <> 'resolved' ORDER BY kind", (SITE,))
    wait_until(lambda: [k for k, _ in open_alerts()] == ["fever", "sealed_gate"], timeout=60,
               what=lambda: "fever and sealed_gate open (have %r)" % (open_alerts(),))
    ids = dict(open_alerts())
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (SITE,)) == 4
               and env.pg.count("disinfections", "site = %s", (SITE,)) == 1
               and env.pg.count("isolation_checks", "site = %s", (SITE,)) == 2
               and env.pg.count("hotline_calls", "site = %s AND (category = 'supplies'"
                                " OR resolved_at IS NOT NULL)", (SITE,)) == 3
               and env.pg.count("rejects", "topic LIKE %s", ("cordon/%s/%%" % SITE,)) == 1,
               what="the events stored")

    # alerts: both, with a header; filters work.
    out = ctl("alerts").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["raised", "site", "kind", "severity", "state", "subject",
                                "count", "alert_id"], out
    assert ids["fever"] in out and ids["sealed_gate"] in out, out
    body = [l.split() for l in lines[1:]]
    assert all(r[3] == "critical" for r in body), out
    assert {r[2] for r in body} == {"fever", "sealed_gate"}, out
    assert {r[1] for r in body} == {SITE}
    out = ctl("alerts", "--kind", "fever", "--site", SITE).stdout
    assert ids["fever"] in out and ids["sealed_gate"] not in out, out
    assert "no open alerts" in ctl("alerts", "--site", "nosite").stdout

    # ack: cordond marks it acked, by op-1.
    p = ctl("ack", ids["fever"], "--by", "op-1", "--note", "on my way")
    assert "ack" in p.stdout and "%s/ack" % SITE in p.stdout, p.stdout
    assert wait_state(env, ids["fever"], "acked")[1] == "op-1"
    out = ctl("alerts", "--kind", "fever").stdout
    assert "acked" in out, out
    # resolve (--by defaults to the login name)
    ctl("resolve", ids["fever"])
    wait_state(env, ids["fever"], "resolved")
    out = ctl("alerts").stdout
    assert ids["fever"] not in out and ids["sealed_gate"] in out, out

    # errors
    p = ctl("ack", "nosuchid", expect=1)
    assert "no open alert nosuchid" in p.stderr, p.stderr
    p = ctl("resolve", ids["fever"], expect=1)       # already resolved
    assert "no open alert" in p.stderr
    ctl("ack", expect=2)
    ctl("ack", "x", "--bogus", expect=2)
    ctl("report", "weekly", expect=2)
    ctl("report", "daily", "--date", "2020-13", expect=2)
    assert "unknown site" in ctl("report", "daily", "--site", "nosite", expect=1).stderr

    # stats
    out = ctl("stats").stdout
    rows = {l.split()[0]: l.split()[1:] for l in out.splitlines() if l.split()}
    assert rows["gate_events"] == ["4", "4"], out
    assert rows["disinfections"] == ["1", "1"], out
    assert rows["isolation_checks"] == ["2", "2"], out
    assert rows["hotline_events"] == ["5", "5"], out
    assert rows["sealed_gate"][0] == "1", out            # open alerts by kind
    assert "fever" not in rows, out                      # resolved: not open
    assert "spool checkpoint" in out and "cordond-test" in out, out

    # report daily, human
    out = ctl("report", "daily", "--site", SITE, "--date", day).stdout
    assert "Daily report: site %s" % SITE in out and "Asia/Shanghai" in out, out
    rows = {l.split()[0]: l.split()[1:] for l in out.splitlines() if l.split()}
    # passes screened fevers implausible out clock_skew
    assert rows["G01"] == ["3", "3", "1", "1", "0", "0"], out
    assert rows["G09"] == ["1", "1", "0", "0", "0", "0"], out
    assert rows["Z01"][0] == "1" and re.fullmatch(r"\d\d:\d\d", rows["Z01"][1]), out
    assert rows["HH-1"] == ["2", "0", "0"], out          # checks febrile with_symptoms
    assert rows["medical"] == ["2", "0", "2", "5.0"], out
    assert rows["supplies"] == ["1", "0", "0", "-"], out
    assert rows["fever"] == ["1", "1", "0", "1"], out    # raised critical open triggers
    assert rows["sealed_gate"] == ["1", "1", "1", "1"], out
    assert "Rejected payloads" in out and rows["not_json"] == ["1"], out

    # report daily --csv: one section name per line
    out = ctl("report", "daily", "--site", SITE, "--date", day, "--csv").stdout
    lines = out.splitlines()
    assert "gates,gate,passes,screened,fevers,implausible,out,clock_skew" in lines, out
    assert "gates,G01,3,3,1,1,0,0" in lines and "gates,G09,1,1,0,0,0,0" in lines, out
    assert any(l.startswith("zones,Z01,1,") and l.endswith(",4") for l in lines), out
    assert "isolation,HH-1,2,0,0" in lines, out
    assert "hotline,category,calls,urgent,resolved,median_min_to_resolve" in lines, out
    assert "hotline,medical,2,0,2,5.0" in lines and "hotline,supplies,1,0,0,-" in lines, out
    assert "alerts,fever,1,1,0,1" in lines and "alerts,sealed_gate,1,1,1,1" in lines, out
    assert "rejects,reason,rejects" in lines and "rejects,not_json,1" in lines, out
    assert lines[1].startswith("report,%s," % SITE), out
    # another day: nothing
    out = ctl("report", "daily", "--site", SITE, "--date", "2020-01-01", "--csv").stdout
    assert "gates,G01,0,0,0,0,0,0" in out.splitlines(), out
    assert "zones,Z01,0,-,4" in out.splitlines(), out    # 16 h / 4 h expected
    assert d.alive()


# ---------------------------------------------------------------- alerts --follow

FSITE = "cf"


class Follower:
    """`cordonctl alerts --follow ...` with stdout piped (line mode); a thread
    collects its lines."""

    def __init__(self, conffile, *args):
        binary = os.environ["CORDONCTL"]
        self.proc = subprocess.Popen([binary, "-c", conffile, "alerts", "--follow"] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        harness._PROCS.add(self.proc)
        self.lines, self.errors = [], []
        for stream, into in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors)):
            threading.Thread(target=lambda s=stream, i=into: [i.append(l.rstrip("\n")) for l in s],
                             daemon=True).start()

    def output(self):
        return "\n".join(self.lines) + "\n-- stderr:\n" + "\n".join(self.errors)

    def transitions(self):
        """(id, kind, severity, transition, subject) of each transition line:
        `updated_at id kind severity transition subject text...`."""
        return [tuple(f[1:6]) for f in (l.split() for l in self.lines)
                if len(f) >= 6 and re.fullmatch(r"[0-9a-f]{32}", f[1])]

    def wait_for(self, pred, what):
        return wait_until(lambda: pred(self), timeout=60,
                          what=lambda: "%s in\n%s" % (what, self.output()))

    def stop(self, sig):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            harness._PROCS.discard(self.proc)


def open_alert_ids(env, kind):
    return [r[0] for r in env.pg.query("SELECT alert_id FROM alerts WHERE site = %s AND kind = %s"
                                       " AND state <> 'resolved' ORDER BY raised_at",
                                       (FSITE, kind))]


def test_alerts_follow(env, cordond):
    d = cordond()
    conf = d.conffile
    harness.cordonctl(conf, "gate", "add", FSITE, "G08", "--sealed", expect=0)
    harness.cordonctl(conf, "gate", "add", FSITE, "G09", "--sealed", expect=0)
    harness.wait_register_holds_gates(d, env.pg)

    # An alert open before the followers start.
    publish_many(env.broker.port, [gate_event(FSITE, "G09", "F-1", card="C-1", person="P-1",
                                              temp_c=36.6, ts=now_ts())])
    before = wait_until(lambda: open_alert_ids(env, "sealed_gate"), timeout=60,
                        what="the sealed_gate alert of G09")[0]

    every = Follower(conf, "--site", FSITE)
    fever_only = Follower(conf, "--site", FSITE, "--kind", "fever")
    try:
        # The listing comes first, after the subscription is in place.
        every.wait_for(lambda f: any(before in l for l in f.lines), "the open alert %s" % before)
        header = every.lines[0].split()
        assert header == ["raised", "site", "kind", "severity", "state", "subject", "count",
                          "alert_id"], every.output()
        fever_only.wait_for(lambda f: "no open alerts" in f.lines, "no open alerts")

        # Live: a fever and a second sealed gate.
        publish_many(env.broker.port, [
            gate_event(FSITE, "G01", "F-2", card="C-2", person="P-2", temp_c=38.6, ts=now_ts()),
            gate_event(FSITE, "G08", "F-3", card="C-3", person="P-3", temp_c=36.5, ts=now_ts()),
        ])
        fever = wait_until(lambda: open_alert_ids(env, "fever"), timeout=60, what="fever")[0]
        sealed = wait_until(lambda: [i for i in open_alert_ids(env, "sealed_gate") if i != before],
                            timeout=60, what="the sealed_gate alert of G08")[0]
        harness.cordonctl(conf, "ack", fever, "--by", "op-1", expect=0)
        every.wait_for(lambda f: (fever, "fever", "critical", "acked", "person:P-2")
                       in f.transitions(), "the ack")
        harness.cordonctl(conf, "resolve", fever, "--by", "op-1", expect=0)
        for f in (every, fever_only):
            f.wait_for(lambda f: (fever, "fever", "critical", "resolved", "person:P-2")
                       in f.transitions(), "the resolution")

        fever_lines = [t for t in every.transitions() if t[0] == fever]
        assert [t[3] for t in fever_lines] == ["raised", "acked", "resolved"], every.output()
        assert fever_lines[0] == (fever, "fever", "critical", "raised", "person:P-2")
        every.wait_for(lambda f: (sealed, "sealed_gate", "critical", "raised", "gate:G08")
                       in f.transitions(), "the live sealed_gate alert")
        # --kind fever: the fever's three transitions and nothing else.
        assert [t[3] for t in fever_only.transitions()] == ["raised", "acked", "resolved"], \
            fever_only.output()
        assert {t[0] for t in fever_only.transitions()} == {fever}, fever_only.output()
        assert before not in fever_only.output() and sealed not in fever_only.output()
        # Each transition line carries the alert's text.
        assert any("Fever 38.6" in l and fever in l for l in every.lines), every.output()

        assert every.stop(signal.SIGTERM) == 0, every.output()
        assert fever_only.stop(signal.SIGINT) == 0, fever_only.output()
    finally:
        for f in (every, fever_only):
            if f.proc.poll() is None:
                f.stop(signal.SIGKILL)
    assert d.alive()


def test_alerts_follow_broker_unreachable(env):
    conf = os.path.join(env.dir, "nobroker.conf")
    with open(conf, "w") as f:
        f.write("[postgres]\nconninfo = %s\n[mqtt]\nuri = tcp://127.0.0.1:%d\n"
                % (env.pg.conninfo, harness.free_port()))
    p = harness.cordonctl(conf, "alerts", "--follow", expect=1)
    assert "cannot connect to tcp://127.0.0.1:" in p.stderr, p.stderr
    assert p.stdout == "", p.stdout


def test_ack_resolve_return_once_stored(env, cordond):
    """cordond publishes a transition as it judges it and stores it with its
    batch just after. ack and resolve wait for both, so `alerts` run
    straight after never lists an alert as it was. While the store is held
    (a SHARE lock on `alerts` stops cordond's write; the test's reads go on)
    they still end 0 after --wait, with a warning that PostgreSQL does not
    show it yet; the row follows once the lock goes. A raise seen on MQTT
    whose row is not committed yet is acked all the same: its site comes
    from its retained state on the broker."""
    site = "cs"
    d = cordond()
    conf = d.conffile
    harness.cordonctl(conf, "gate", "add", site, "G01", expect=0)
    harness.wait_register_holds_gates(d, env.pg)

    def open_fevers():
        return [r[0] for r in env.pg.query(
            "SELECT alert_id FROM alerts WHERE site = %s AND kind = 'fever'"
            " AND state <> 'resolved' ORDER BY raised_at", (site,))]

    def fever(person):
        publish_many(env.broker.port, [gate_event(site, "G01", "S-" + person, card="C-" + person,
                                                  person=person, temp_c=38.7, ts=now_ts())])
        return wait_until(lambda: [i for i in open_fevers() if i not in seen], timeout=60,
                          what="the fever of %s" % person)[0]

    seen = []
    first = fever("P-1")
    seen.append(first)
    # Each read straight after cordonctl ends, with no wait: it is stored.
    p = harness.cordonctl(conf, "ack", first, "--by", "op-1", expect=0)
    assert "is acknowledged" in p.stdout and "warning" not in p.stderr, (p.stdout, p.stderr)
    assert alert_row(env, first) == ("acked", "op-1")
    p = harness.cordonctl(conf, "resolve", first, "--by", "op-2", expect=0)
    assert "is resolved" in p.stdout and "warning" not in p.stderr, (p.stdout, p.stderr)
    assert alert_row(env, first) == ("resolved", "op-2")
    assert first not in harness.cordonctl(conf, "alerts").stdout

    second = fever("P-2")
    seen.append(second)
    dba = psycopg2.connect(env.pg.conninfo)
    try:
        dba.cursor().execute("LOCK TABLE alerts IN SHARE MODE")
        p = harness.cordonctl(conf, "resolve", second, "--by", "op-3", "--wait", "5", expect=0)
        assert "alert %s is resolved" % second in p.stdout, p.stdout
        assert ("warning: cordond resolved alert %s, but PostgreSQL does not show it yet"
                % second) in p.stderr, p.stderr
        assert alert_row(env, second)[0] == "raised"
    finally:
        dba.rollback()
        dba.close()
    wait_state(env, second, "resolved")
    assert alert_row(env, second) == ("resolved", "op-3")

    # A raise seen on MQTT before its row is committed (alerts --follow
    # shows it at once): ack finds its site in the broker's retained state.
    with harness.Collector(env.broker.port, "cordon/%s/alert/fever" % site) as live:
        dba = psycopg2.connect(env.pg.conninfo)
        try:
            dba.cursor().execute("LOCK TABLE alerts IN SHARE MODE")
            publish_many(env.broker.port, [gate_event(site, "G01", "S-P-3", card="C-P-3",
                                                      person="P-3", temp_c=38.9, ts=now_ts())])
            _, payload = live.wait_for(lambda t, p: b'"person:P-3"' in p)
            third = json.loads(payload)["alert_id"]
            assert alert_row(env, third) is None
            p = harness.cordonctl(conf, "ack", third, "--by", "op-4", "--wait", "5", expect=0)
            assert "alert %s is acknowledged" % third in p.stdout, (p.stdout, p.stderr)
            assert "PostgreSQL does not show it yet" in p.stderr, p.stderr
        finally:
            dba.rollback()
            dba.close()
    wait_state(env, third, "acked")
    assert alert_row(env, third) == ("acked", "op-4")
    # Unknown to both: said so, after asking the broker.
    p = harness.cordonctl(conf, "ack", "0123456789abcdef0123456789abcdef", expect=1)
    assert "no open alert 0123456789abcdef0123456789abcdef" in p.stderr, p.stderr
