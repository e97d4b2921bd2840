"""cordonctl's operating commands end to end (SPEC 10): alerts, ack,
resolve, stats and report daily against a real broker, PostgreSQL and
cordond. The events are timestamped now, so they fall on today's report
(the site's time zone, Asia/Shanghai by default)."""

import datetime
import json

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

    ts = now_ts()
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
        hotline("H-1", "1", "open", now_ts(-360), category="medical", urgent=False),
        hotline("H-1", "2", "resolve", now_ts(-120)),
        hotline("H-2", "1", "open", now_ts(-360), category="medical", urgent=False),
        hotline("H-2", "2", "resolve", ts),
        hotline("H-3", "1", "open", ts, category="supplies", urgent=False),
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
                                " OR resolved_at IS NOT NULL)", (SITE,)) == 3,
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
    out = ctl("report", "daily", "--site", SITE).stdout
    assert "Daily report: site %s" % SITE in out and "Asia/Shanghai" in out, out
    rows = {l.split()[0]: l.split()[1:] for l in out.splitlines() if l.split()}
    assert rows["G01"] == ["3", "3", "1", "1"], out      # passes screened fevers implausible
    assert rows["G09"] == ["1", "1", "0", "0"], out
    assert rows["Z01"] == ["1"], out
    assert rows["HH-1"] == ["2"], out
    assert rows["medical"] == ["2", "2", "5.0"], out
    assert rows["supplies"] == ["1", "0", "-"], out
    assert rows["fever"][0] == "1" and rows["sealed_gate"][0] == "1", out

    # report daily --csv: one section name per line
    out = ctl("report", "daily", "--site", SITE, "--csv").stdout
    lines = out.splitlines()
    assert "gates,gate,passes,screened,fevers,implausible" in lines, out
    assert "gates,G01,3,3,1,1" in lines and "gates,G09,1,1,0,0" in lines, out
    assert "zones,Z01,1" in lines, out
    assert "isolation,HH-1,2" in lines, out
    assert "hotline,category,calls,resolved,median_min_to_resolve" in lines, out
    assert "hotline,medical,2,2,5.0" in lines and "hotline,supplies,1,0,-" in lines, out
    assert "alerts,fever,1,1,0" in lines and "alerts,sealed_gate,1,1,1" in lines, out
    assert lines[1].startswith("report,%s," % SITE), out
    # another day: nothing
    out = ctl("report", "daily", "--site", SITE, "--date", "2020-01-01", "--csv").stdout
    assert "gates,G01,0,0,0,0" in out.splitlines(), out
    assert d.alive()
