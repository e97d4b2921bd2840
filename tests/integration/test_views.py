"""include/views.h, the read side cordonctl and cordon-web share: the
household page, the daily report (sections, charts, CSV) and the gates,
zones, isolation and needs boards, run by tests/integration/views_probe
against the module's real PostgreSQL.

Most rows go straight into PostgreSQL with SQL (these tests are about the
statements); one test publishes gate events through the broker to cordond
and reads the gates board it fills. The boards count "today" in the site's
zone (Asia/Shanghai here): their rows are put between the local midnight
and now. The report is of a fixed past day, 2026-03-10."""

import datetime
import json
import os
import subprocess
import zoneinfo

import pytest

import harness
from harness import gate_event, publish_many, wait_until

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
HOSTILE = "vb' OR '1'='1"


def probe(env, *args, expect=0):
    """views_probe CONNINFO args...: the parsed JSON (or the text for
    report-csv) when it exits 0; with expect=1 the stderr."""
    binary = os.environ.get("VIEWS_PROBE")
    assert binary and os.access(binary, os.X_OK), "set VIEWS_PROBE (meson test does)"
    p = subprocess.run([binary, env.pg.conninfo] + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=harness.TIMEOUT)
    assert p.returncode == expect, "views_probe %s: exit %d\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(map(str, args)), p.returncode, p.stdout, p.stderr)
    if expect:
        return p.stderr
    return p.stdout if args[0] == "report-csv" else json.loads(p.stdout)


def sites_arg(*sites):
    return "\n".join(sites)


@pytest.fixture(scope="module")
def conf(env):
    """cordonctl's config with [rules] as views_probe's report has them."""
    path = os.path.join(env.dir, "views.conf")
    with open(path, "w") as f:
        f.write("[postgres]\nconninfo = %s\n\n[rules]\ncheck_interval = 12h\n"
                "disinfection_interval = 4h\n" % env.pg.conninfo)
    return path


@pytest.fixture(scope="module")
def ctl(conf):
    def run(*args, expect=0):
        return harness.cordonctl(conf, *args, expect=expect)
    run("migrate")
    return run


class Keys:
    n = 0

    @classmethod
    def next(cls):
        cls.n += 1
        return "vk%d" % cls.n


def event(pg, site, gate, ts, temp=36.5, flags=(), card="C-1"):
    pg.query("INSERT INTO gate_events (event_key, site, gate, ts, received_at, card,"
             " direction, temp_c, flags, vendor) VALUES (%s, %s, %s, %s, %s, %s, 'in', %s, %s,"
             " 'canonical')", (Keys.next(), site, gate, ts, ts, card, temp, list(flags)))


def alert(pg, site, kind, gate, raised):
    pg.query("INSERT INTO alerts (alert_id, site, kind, severity, state, subject, event_key,"
             " gate, raised_at, updated_at, count) VALUES (%s, %s, %s, 'critical', 'raised',"
             " 'person:P-1', %s, %s, %s, %s, 1)",
             (Keys.next(), site, kind, Keys.next(), gate, raised, raised))


def disinfect(pg, site, zone, ts):
    pg.query("INSERT INTO disinfections (event_key, site, zone, ts, received_at)"
             " VALUES (%s, %s, %s, %s, %s)", (Keys.next(), site, zone, ts, ts))


# ---------------------------------------------------------------- boards (today)

@pytest.fixture(scope="module")
def today(env, ctl):
    """Sites vb (Asia/Shanghai) and vo (the default zone, the same here),
    each with rows of today and of the day before."""
    pg = env.pg
    now = datetime.datetime.now(datetime.timezone.utc)
    midnight = datetime.datetime.combine(now.astimezone(TZ).date(), datetime.time(), TZ)
    span = now - midnight

    def t(frac):
        """A moment of today before now: frac of the way from midnight."""
        return midnight + span * frac
    yesterday = midnight - datetime.timedelta(hours=1)

    ctl("site", "add", "vb", "--timezone", "Asia/Shanghai")
    ctl("site", "add", "vo")
    for site, gate in (("vb", "G1"), ("vb", "G2"), ("vo", "G9")):
        ctl("gate", "add", site, gate)
    harness.import_households(env, ctl, "vb", [("H1", ["C-1"]), ("H2", []), ("H3", []),
                                                ("H4", [])])
    harness.import_households(env, ctl, "vo", [("H9", [])])

    # Gates: G1 3 passes today, 1 yesterday; G2 none; G9 (vo) 1.
    for f in (0.1, 0.2, 0.3):
        event(pg, "vb", "G1", t(f))
    event(pg, "vb", "G1", yesterday)
    event(pg, "vo", "G9", t(0.5))
    # G1's status: online, then offline (by ts), the online heard last.
    pg.query("INSERT INTO gate_status (event_key, site, gate, ts, received_at, state) VALUES"
             " (%s, 'vb', 'G1', %s, %s, 'offline'), (%s, 'vb', 'G1', %s, %s, 'online')",
             (Keys.next(), t(0.4), t(0.4), Keys.next(), t(0.35), t(0.45)))
    # Fever alerts at G1: 2 today, 1 yesterday; another kind today.
    alert(pg, "vb", "fever", "G1", t(0.2))
    alert(pg, "vb", "fever", "G1", t(0.3))
    alert(pg, "vb", "fever", "G1", yesterday)
    alert(pg, "vb", "unknown_card", "G1", t(0.3))

    # Zones: Z1 6 a day (2 done today, 1 yesterday), Z2 every 3 h (5 due
    # in the 16 h day), Z4 the probe's 4 h (4 due), Z3 not registered.
    ctl("zone", "add", "vb", "Z1", "--per-day", "6")
    ctl("zone", "add", "vb", "Z2", "--interval", "3h")
    ctl("zone", "add", "vb", "Z4")
    ctl("zone", "add", "vo", "Z9")
    disinfect(pg, "vb", "Z1", t(0.2))
    disinfect(pg, "vb", "Z1", t(0.6))
    disinfect(pg, "vb", "Z1", yesterday)
    disinfect(pg, "vb", "Z3", t(0.5))

    # Isolation: H1 whole household (2 residents), H4 one person, H2
    # released, H3 ended.
    for hh, person in (("H1", "P1"), ("H1", "P2")):
        pg.query("INSERT INTO residents (site, person, household) VALUES ('vb', %s, %s)",
                 (person, hh))

    def order(site, hh, person, ends_h, released=False):
        pg.query("INSERT INTO isolation_orders (site, household, person, starts_at, ends_at,"
                 " released_at) VALUES (%s, %s, %s, now() - interval '3 days',"
                 " now() + %s * interval '1 hour', %s)",
                 (site, hh, person, ends_h, now if released else None))
    order("vb", "H1", None, 240)
    order("vb", "H4", "P7", 100)
    order("vb", "H2", None, 100, released=True)
    order("vb", "H3", None, -1)
    order("vo", "H9", None, 100)

    def check(hh, ts, temp):
        pg.query("INSERT INTO isolation_checks (event_key, site, household, person, ts,"
                 " received_at, temp_c) VALUES (%s, 'vb', %s, 'P1', %s, %s, %s)",
                 (Keys.next(), hh, ts, ts, temp))
    check("H1", yesterday, 36.4)
    check("H1", t(0.2), 36.6)
    check("H1", t(0.7), 37.1)

    def call(hh, ts, outcome):
        pg.query("INSERT INTO welfare_calls (event_key, site, household, ts, received_at,"
                 " outcome) VALUES (%s, 'vb', %s, %s, %s, %s)", (Keys.next(), hh, ts, ts, outcome))
    call("H1", t(0.3), "no_answer")
    call("H1", t(0.4), "reached")
    call("H4", t(0.4), "no_answer")

    def need(site, need_id, hh, status, due_h, note=None):
        pg.query("INSERT INTO needs (site, need_id, household, category, status, opened_at,"
                 " due, note, updated_at) VALUES (%s, %s, %s, 'groceries', %s,"
                 " now() - interval '5 hours', now() + %s * interval '1 hour', %s, now())",
                 (site, need_id, hh, status, due_h, note))
    need("vb", "N1", "H1", "open", -1, note="call her at 138-1234-5678")   # overdue
    need("vb", "N2", "H1", "assigned", 2)
    need("vb", "N3", "H1", "delivered", -2)
    need("vo", "N9", "H9", "open", -1)
    return {"midnight": midnight, "now": now, "t": t}


def by(rows, *keys):
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


def test_gates_board(env, today):
    gates = by(probe(env, "gates", sites_arg("vb"), "-")["gates"], "gate")
    assert sorted(gates) == ["G1", "G2"]                     # vo's G9 left out
    g1 = gates["G1"]
    assert g1["site"] == "vb" and g1["state"] == "open" and g1["active"] is True
    assert g1["passes_today"] == 3                           # not yesterday's
    assert g1["fevers_today"] == 2                           # fever alerts raised today
    assert g1["status"] == "offline"                         # the latest by ts
    heard = env.pg.scalar("SELECT to_char(max(received_at) AT TIME ZONE 'UTC',"
                          " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM gate_status"
                          " WHERE site = 'vb' AND gate = 'G1'")
    assert g1["last_heard"] == heard                         # the status heard after the events
    assert g1["status_at"].endswith("Z")
    assert gates["G2"]["passes_today"] == 0 and gates["G2"]["status"] is None
    assert gates["G2"]["last_heard"] is None

    everything = probe(env, "gates", "-", "-")["gates"]
    assert {(g["site"], g["gate"]) for g in everything} >= {("vb", "G1"), ("vo", "G9")}
    assert [g["gate"] for g in probe(env, "gates", "-", "vo")["gates"]] == ["G9"]
    assert probe(env, "gates", sites_arg("vb"), "vo")["gates"] == []   # not one of `sites`
    assert probe(env, "gates", "", "-")["gates"] == []                 # an empty list


def test_zones_board(env, today):
    zones = by(probe(env, "zones", sites_arg("vb"), "-", "-", 14400)["zones"], "zone")
    assert sorted(zones) == ["Z1", "Z2", "Z3", "Z4"]
    assert (zones["Z1"]["per_day"], zones["Z1"]["done"], zones["Z1"]["due"]) == (6, 2, 6)
    assert (zones["Z2"]["per_day"], zones["Z2"]["done"], zones["Z2"]["due"]) == (None, 0, 5)
    assert (zones["Z4"]["done"], zones["Z4"]["due"]) == (0, 4)
    assert (zones["Z3"]["per_day"], zones["Z3"]["done"], zones["Z3"]["due"]) == (None, 1, None)
    assert zones["Z2"]["last_at"] is None and zones["Z1"]["last_at"].endswith("Z")
    # [rules] disinfection_interval 2 h: Z4 due 8.
    assert by(probe(env, "zones", sites_arg("vb"), "-", "-", 7200)["zones"], "zone")["Z4"]["due"] == 8
    # The day before: Z1 done once, Z3 not disinfected nor registered.
    day_before = (today["midnight"] - datetime.timedelta(hours=1)).date().isoformat()
    zones = by(probe(env, "zones", sites_arg("vb"), "-", day_before, 14400)["zones"], "zone")
    assert zones["Z1"]["done"] == 1 and "Z3" not in zones
    assert "EINVAL" in probe(env, "zones", "-", "-", "2026-02-31", 14400, expect=1)
    assert "EINVAL" in probe(env, "zones", "-", "-", "yesterday", 14400, expect=1)


def test_isolation_board(env, today):
    hh = by(probe(env, "isolation", sites_arg("vb"), "-")["households"], "household")
    assert sorted(hh) == ["H1", "H4"]                       # H2 released, H3 ended, H9 vo's
    h1 = hh["H1"]
    assert h1["persons"] == 2                               # the whole household's residents
    assert (h1["building"], h1["unit"], h1["room"]) == ("1", "1", "101")
    assert h1["checks_today"] == 2 and h1["last_temp_c"] == 37.1
    assert h1["calls_today"] == 2 and h1["reached_today"] is True
    assert h1["open_needs"] == 2                            # open and assigned, not delivered
    assert h1["starts"].endswith("Z") and h1["ends"] > h1["starts"]
    assert h1["last_check_at"] == env.pg.scalar(
        "SELECT to_char(max(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        " FROM isolation_checks WHERE site = 'vb' AND household = 'H1'")
    h4 = hh["H4"]
    assert (h4["persons"], h4["checks_today"], h4["calls_today"], h4["reached_today"],
            h4["open_needs"], h4["last_check_at"]) == (1, 0, 1, False, 0, None)


def test_needs_board(env, today):
    needs = probe(env, "needs", sites_arg("vb"), "-", "-")["needs"]
    assert [n["need_id"] for n in needs] == ["N1", "N2"]     # overdue first
    n1, n2 = needs
    assert n1["overdue"] is True and n2["overdue"] is False
    assert n1["note"] == "call her at 138-****-5678"        # masked as the household page
    out = json.dumps(needs)
    assert "1234" not in out
    assert [n["need_id"] for n in probe(env, "needs", sites_arg("vb"), "-", "all")["needs"]] \
        == ["N1", "N2", "N3"]
    delivered = probe(env, "needs", sites_arg("vb"), "-", "delivered")["needs"]
    assert [(n["need_id"], n["overdue"]) for n in delivered] == [("N3", False)]
    assert {n["site"] for n in probe(env, "needs", "-", "-", "open")["needs"]} >= {"vb", "vo"}
    assert probe(env, "needs", sites_arg("vb"), "vo", "-")["needs"] == []
    assert "EINVAL" in probe(env, "needs", "-", "-", "opened", expect=1)


def test_hostile_site_strings(env, today):
    """A site that is SQL is a string that names no site: every board is
    empty, nothing fails, nothing changes."""
    before = env.pg.scalar("SELECT count(*) FROM gates")
    assert probe(env, "gates", "-", HOSTILE)["gates"] == []
    assert probe(env, "zones", "-", HOSTILE, "-", 14400)["zones"] == []
    assert probe(env, "isolation", "-", HOSTILE)["households"] == []
    assert probe(env, "needs", "-", HOSTILE, "all")["needs"] == []
    # In the list: only vb's rows, the string matching nothing.
    assert {g["site"] for g in probe(env, "gates", sites_arg("vb", HOSTILE), "-")["gates"]} \
        == {"vb"}
    for odd in (HOSTILE, 'x"}', "a\\", "{vb}", "vb,vo", "NULL"):
        assert probe(env, "gates", sites_arg(odd), "-")["gates"] == [], odd
        assert probe(env, "needs", sites_arg(odd), "-", "all")["needs"] == [], odd
    assert "ENOENT" in probe(env, "report", HOSTILE, "2026-03-10", expect=1)
    assert "ENOENT" in probe(env, "household", HOSTILE, "H1", 10, expect=1)
    assert env.pg.scalar("SELECT count(*) FROM gates") == before
    assert len(probe(env, "gates", sites_arg("vb"), "-")["gates"]) == 2


def test_gates_board_from_the_broker(env, ctl, cordond, today):
    """Gate events published to cordond: the board counts today's passes
    and the fever alert cordond raises at the gate."""
    ctl("site", "add", "vc", "--timezone", "Asia/Shanghai")
    ctl("gate", "add", "vc", "G1")
    d = cordond()
    wait_until(lambda: "register loaded" in d.log(), what="cordond loading the register")
    now = harness.now_ts(-1)
    publish_many(env.broker.port, [
        gate_event("vc", "G1", "VE-1", card="C-7", person="P-7", temp_c=36.5, ts=now),
        gate_event("vc", "G1", "VE-2", card="C-8", person="P-8", temp_c=38.6, ts=now),
    ])
    wait_until(lambda: env.pg.count("gate_events", "site = 'vc'") == 2, what="2 gate events")
    wait_until(lambda: env.pg.count("alerts", "site = 'vc' AND kind = 'fever'") == 1,
               what="a fever alert")
    g = probe(env, "gates", sites_arg("vc"), "-")["gates"]
    assert len(g) == 1 and g[0]["passes_today"] == 2 and g[0]["fevers_today"] == 1, g
    assert g[0]["last_heard"] is not None


def test_household_json_is_cordonctls(env, ctl, today):
    """views_household_json gives what `cordonctl household --json` prints."""
    env.pg.query("UPDATE residents SET name = '王五' WHERE site = 'vb' AND person = 'P1'")
    page = probe(env, "household", "vb", "H1", 10)
    assert page == json.loads(ctl("household", "vb", "H1", "--json").stdout)
    assert page["phone"] == "180****1999"
    assert [r["name"] for r in page["residents"]["items"]] == ["王*", None]
    assert page["isolation_orders"]["active"] == 1 and page["needs"]["open"] == 2
    assert page["needs"]["total"] == 3
    assert len(probe(env, "household", "vb", "H1", 1)["needs"]["items"]) == 1
    assert "EINVAL" in probe(env, "household", "vb", "H1", 0, expect=1)
    assert "ENOENT" in probe(env, "household", "vb", "H7", 10, expect=1)


# ---------------------------------------------------------------- the report

DAY = "2026-03-10"


def at(hm, day=10):
    return "2026-03-%02d %s:00+08" % (day, hm)


@pytest.fixture(scope="module")
def report_day(env, ctl):
    pg = env.pg
    ctl("site", "add", "vr", "--timezone", "Asia/Shanghai")
    ctl("gate", "add", "vr", "G1")
    event(pg, "vr", "G1", at("08:15"), 36.5)
    event(pg, "vr", "G1", at("08:40"), 36.5)
    event(pg, "vr", "G1", at("09:05"), 38.2)                       # a fever
    event(pg, "vr", "G1", at("09:30"), 38.5, flags=["implausible"])  # a pass, not a fever
    event(pg, "vr", "G1", at("23:59", day=9), 39.0)               # the day before
    event(pg, "vr", "G1", at("00:00", day=11), 39.0)              # the day after
    event(pg, "vr", "G1", at("10:10"), None)                      # not screened
    ctl("zone", "add", "vr", "Z1", "--per-day", "10")
    ctl("zone", "add", "vr", "Z2", "--interval", "2h")
    ctl("zone", "add", "vr", "Z3")
    for hm in ("07:00", "12:00", "18:00"):
        disinfect(pg, "vr", "Z1", at(hm))
    disinfect(pg, "vr", "Z2", at("07:00"))


def test_report_json_charts(env, report_day):
    r = probe(env, "report", "vr", DAY)
    assert (r["site"], r["date"], r["timezone"]) == ("vr", DAY, "Asia/Shanghai")
    c = r["charts"]
    assert len(c["passes_per_hour"]) == 24 and len(c["fevers_per_hour"]) == 24
    assert c["passes_per_hour"][8] == 2 and c["passes_per_hour"][9] == 2
    assert c["passes_per_hour"][10] == 1 and sum(c["passes_per_hour"]) == 5
    assert c["fevers_per_hour"][9] == 1 and sum(c["fevers_per_hour"]) == 1
    assert c["temperatures"] == [{"temp_c": 36.5, "n": 2}, {"temp_c": 38.2, "n": 1}]
    assert c["disinfections"] == [{"zone": "Z1", "done": 3, "due": 10},
                                  {"zone": "Z2", "done": 1, "due": 8},
                                  {"zone": "Z3", "done": 0, "due": 4}]
    # The charts agree with the sections, which are the CSV's, in order.
    sections = {s["name"]: s for s in r["sections"]}
    zones = sections["zones"]
    assert zones["columns"] == ["zone", "disinfections", "last", "expected"]
    assert [[row[0], row[1], row[3]] for row in zones["rows"]] == \
        [["Z1", 3, "10"], ["Z2", 1, "8"], ["Z3", 0, "4"]]
    gates = sections["gates"]
    assert gates["title"] == "Gates"
    assert dict(zip(gates["columns"], gates["rows"][0]))["fevers"] == 1
    csv = probe(env, "report-csv", "vr", DAY)
    names = []
    for line in csv.splitlines():
        name = line.split(",")[0]
        if name not in names and name != "report":
            names.append(name)
    assert [s["name"] for s in r["sections"]] == names
    assert "EINVAL" in probe(env, "report", "-", DAY, expect=1)      # JSON: one site
    assert "EINVAL" in probe(env, "report", "vr", "10/03/2026", expect=1)


def test_report_csv_is_cordonctls(env, ctl, report_day):
    """views_report_csv writes byte for byte what `cordonctl report daily
    --csv` prints, of one site and of every site."""
    assert probe(env, "report-csv", "vr", DAY) == \
        ctl("report", "daily", "--site", "vr", "--date", DAY, "--csv").stdout
    assert probe(env, "report-csv", "-", DAY) == \
        ctl("report", "daily", "--date", DAY, "--csv").stdout
