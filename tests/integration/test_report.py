"""`cordonctl report daily`: what was expected beside what was done (issue
16). Rows go straight into PostgreSQL with SQL (the people work's tables,
isolation orders and checks, disinfections, zones with per_day) around one
local day, 2026-03-10 in Asia/Shanghai (UTC+8: 2026-03-09T16:00Z to
2026-03-10T16:00Z), with rows just before and after it; every figure of the
new sections is checked, in the text form and in the CSV form. No cordond:
the report reads PostgreSQL only."""

import os

import pytest

import harness

SITE = "rp"
DAY = "2026-03-10"
TZ = "+08"


def at(local):
    """'D 09:00', 'D-1 23:00', 'D+1 08:00' as a timestamptz literal of the site's zone."""
    day, hm = local.split()
    offset = int(day[1:]) if len(day) > 1 else 0
    return "2026-03-%02d %s:00%s" % (10 + offset, hm, TZ)


@pytest.fixture(scope="module")
def conf(env):
    """A cordonctl config whose [rules] intervals differ from the defaults,
    so that rows without an interval of their own show which they follow."""
    path = os.path.join(env.dir, "report.conf")
    with open(path, "w") as f:
        f.write("[postgres]\nconninfo = %s\n\n[rules]\ncheck_interval = 8h\n"
                "disinfection_interval = 3h\n" % env.pg.conninfo)
    return path


@pytest.fixture(scope="module")
def ctl(conf):
    def run(*args, expect=0):
        return harness.cordonctl(conf, *args, expect=expect)
    run("migrate")
    return run


@pytest.fixture(scope="module")
def day(env, ctl):
    pg = env.pg
    ctl("site", "add", SITE, "--timezone", "Asia/Shanghai")
    harness.import_households(env, ctl, SITE, [("H1", []), ("H2", []), ("H3", []), ("H4", [])])
    for hh, person in (("H1", "P1"), ("H1", "P2"), ("H3", "P9")):
        pg.query("INSERT INTO residents (site, person, household) VALUES (%s, %s, %s)",
                 (SITE, person, hh))

    ctl("zone", "add", SITE, "Z1", "--per-day", "10")
    ctl("zone", "add", SITE, "Z2", "--interval", "2h")
    ctl("zone", "add", SITE, "Z3")
    assert pg.query("SELECT zone, interval_s, per_day FROM zones WHERE site = %s ORDER BY zone",
                    (SITE,)) == [("Z1", None, 10), ("Z2", 7200, None), ("Z3", None, None)]

    def order(hh, person, starts, ends, interval=None, released=None):
        pg.query("INSERT INTO isolation_orders (site, household, person, starts_at, ends_at,"
                 " check_interval_s, released_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (SITE, hh, person, at(starts), at(ends), interval,
                  at(released) if released else None))
    order("H1", None, "D-5 08:00", "D+10 08:00")                    # all day, [rules] 8h
    order("H2", None, "D 10:00", "D+14 10:00", interval=6 * 3600)   # 14 h of it
    order("H3", "P9", "D-2 10:00", "D+12 10:00", interval=4 * 3600,
          released="D 09:00")                                       # 9 h of it
    order("H4", None, "D-14 12:00", "D-1 12:00")                    # over before the day

    n = [0]

    def key():
        n[0] += 1
        return "k%d" % n[0]

    def check(hh, person, when):
        pg.query("INSERT INTO isolation_checks (event_key, site, household, person, ts,"
                 " received_at, temp_c) VALUES (%s, %s, %s, %s, %s, %s, 36.6)",
                 (key(), SITE, hh, person, at(when), at(when)))
    for when in ("D 08:00", "D 14:00", "D 21:00"):
        check("H1", "P1", when)
    check("H1", "P2", "D 09:00")
    check("H1", "P2", "D-1 23:00")          # the day before
    check("H1", "P2", "D+1 00:00")          # the day after (the end is not in the day)
    check("H1", None, "D 12:00")            # names nobody: the household's, not P1's or P2's
    check("H2", None, "D 11:00")
    check("H2", None, "D 20:00")

    def call(hh, when, outcome):
        pg.query("INSERT INTO welfare_calls (event_key, site, household, ts, received_at,"
                 " outcome) VALUES (%s, %s, %s, %s, %s, %s)",
                 (key(), SITE, hh, at(when), at(when), outcome))
    call("H1", "D 09:00", "no_answer")
    call("H1", "D 10:00", "reached")
    call("H2", "D-1 10:00", "reached")      # the day before
    call("H2", "D 10:30", "no_answer")
    call("H3", "D 08:30", "needs_help")
    call("H4", "D 16:00", "counselling")    # not isolated that day

    def need(need_id, category, status, opened, due=None, delivered=None, cancelled=None):
        pg.query("INSERT INTO needs (site, need_id, household, category, status, opened_at,"
                 " due, delivered_at, cancelled_at, updated_at)"
                 " VALUES (%s, %s, 'H1', %s, %s, %s, %s, %s, %s, now())",
                 (SITE, need_id, category, status, at(opened), due and at(due),
                  delivered and at(delivered), cancelled and at(cancelled)))
    need("N1", "groceries", "delivered", "D 08:00", "D 12:00", delivered="D 11:00")   # 180 min
    need("N2", "groceries", "delivered", "D 09:00", "D 10:00", delivered="D 13:00")   # late
    need("N3", "groceries", "delivered", "D-1 20:00", "D-1 23:00", delivered="D 01:00")
    need("N4", "medicine", "open", "D 14:00", "D+1 10:00")
    need("N5", "medicine", "assigned", "D-2 10:00", "D-1 10:00")       # overdue, open
    need("N6", "medicine", "cancelled", "D 07:00", "D 09:00", cancelled="D 08:00")
    need("N7", "other", "delivered", "D-3 10:00", "D-2 10:00", delivered="D-1 10:00")
    need("N8", None, "delivered", "D 10:00", delivered="D+1 09:00")    # no due
    need("N9", "medicine", "delivered", "D 15:00", "D 18:00", delivered="D+1 08:00")

    def disinfect(zone, when):
        pg.query("INSERT INTO disinfections (event_key, site, zone, ts, received_at)"
                 " VALUES (%s, %s, %s, %s, %s)", (key(), SITE, zone, at(when), at(when)))
    disinfect("Z1", "D-1 21:00")
    for h in (6, 8, 10, 12, 14, 16):
        disinfect("Z1", "D %02d:00" % h)
    disinfect("Z1", "D 21:30")
    for h in range(6, 22, 2):
        disinfect("Z2", "D %02d:15" % h)
    disinfect("Z9", "D 07:00")              # a zone not registered

    def dropoff(hh, when, action):
        pg.query("INSERT INTO dropoffs (event_key, site, household, ts, received_at, item,"
                 " action) VALUES (%s, %s, %s, %s, %s, 'box', %s)",
                 (key(), SITE, hh, at(when), at(when), action))
    dropoff("H1", "D-1 18:00", "placed")
    dropoff("H1", "D 09:00", "placed")
    dropoff("H1", "D 10:00", "collected")
    dropoff("H1", "D 17:00", "placed")
    dropoff("H1", "D 18:00", "collected")
    dropoff("H2", "D-2 09:00", "placed")
    dropoff("H2", "D-2 10:00", "collected")
    dropoff("H3", "D-1 09:00", "placed")
    dropoff("H4", "D 11:00", "placed")
    dropoff("H4", "D+1 09:00", "collected")
    return DAY


# What each new section must say, in order: (section, header, rows).
EXPECTED = [
    ("zones", "zone,disinfections,last,expected",
     ["Z1,7,21:30,10",          # per_day
      "Z2,8,20:15,8",           # 16 h / its 2 h
      "Z3,0,-,5",               # 16 h / [rules] disinfection_interval 3 h
      "Z9,1,07:00,-"]),         # not registered: nothing expected
    ("health_checks", "household,person,hours,due,done,missing",
     ["H1,P1,24.0,3,3,0",       # each resident of a household order; [rules] 8 h
      "H1,P2,24.0,3,1,2",
      "H2,-,14.0,2,2,0",        # no residents: the household; 14 h / 6 h
      "H3,P9,9.0,2,0,2"]),      # a person order released at 09:00; 9 h / 4 h
    ("welfare", "household,due,calls,reached,needs_help,counselling",
     ["H1,1,2,1,0,0",
      "H2,1,1,0,0,0",           # no_answer does not reach
      "H3,1,1,1,1,0",           # released that day: still due
      "H4,0,1,1,0,1"]),         # called, not isolated
    ("needs", "category,opened,delivered,cancelled,overdue,open,median_min_to_deliver",
     ["-,1,0,0,0,1,-",
      "groceries,2,3,0,2,0,240.0",      # median of 180, 240, 300 min
      "medicine,3,0,1,2,3,-"]),
    ("dropoffs", "household,placed,collected,uncollected",
     ["H1,2,2,1",
      "H3,0,0,1",
      "H4,1,0,1"]),
]


def csv_section(lines, name):
    return [l[len(name) + 1:] for l in lines if l.startswith(name + ",")]


def test_report_csv(ctl, day):
    out = ctl("report", "daily", "--site", SITE, "--date", day, "--csv").stdout
    lines = out.splitlines()
    assert lines[:2] == ["report,site,date,timezone", "report,%s,%s,Asia/Shanghai" % (SITE, day)]
    for name, header, rows in EXPECTED:
        assert csv_section(lines, name) == [header] + rows, (name, out)
    # the old sections stay
    assert csv_section(lines, "isolation") == ["household,checks,febrile,with_symptoms",
                                               "H1,5,0,0", "H2,2,0,0", "H3,0,0,0"], out
    names = [l.split(",")[0] for l in lines]
    order = [n for i, n in enumerate(names) if n not in names[:i]]
    assert order == ["report", "gates", "zones", "isolation", "health_checks", "welfare",
                     "needs", "dropoffs", "exception_cards", "hotline", "alerts",
                     "rejects"], out


def text_sections(out):
    """{title: [rows as lists of fields]} of the human report."""
    found = {}
    for block in out.strip().split("\n\n")[1:]:
        title, header, *rows = block.splitlines()
        found[title] = [header.split()] + [r.split() for r in rows if set(r.strip()) - {"-", "+"}]
    return found


def test_report_text(ctl, day):
    out = ctl("report", "daily", "--site", SITE, "--date", day).stdout
    assert out.startswith("Daily report: site %s, %s (Asia/Shanghai)\n" % (SITE, day)), out
    found = text_sections(out)
    titles = {"zones": "Disinfection zones",
              "health_checks": "Health checks, due and done per isolated person",
              "welfare": "Welfare calls, due and reached per household",
              "needs": "Needs", "dropoffs": "Drop-offs"}
    for name, header, rows in EXPECTED:
        got = found.get(titles[name])
        assert got is not None, (name, out)
        assert got == [header.split(",")] + [r.split(",") for r in rows], (name, out)


def test_report_other_day_and_defaults(ctl, day):
    # The day after: the needs and drop-offs carried over, the orders still on.
    out = ctl("report", "daily", "--site", SITE, "--date", "2026-03-11", "--csv").stdout
    lines = out.splitlines()
    assert csv_section(lines, "needs") == [
        "category,opened,delivered,cancelled,overdue,open,median_min_to_deliver",
        "-,0,1,0,0,0,1380.0",          # N8: D 10:00 -> D+1 09:00
        "medicine,0,1,0,3,2,1020.0"], out   # N9 late; N4, N5 still open past due
    assert csv_section(lines, "dropoffs") == ["household,placed,collected,uncollected",
                                              "H1,0,0,1", "H3,0,0,1", "H4,0,1,0"], out
    assert "health_checks,H1,P1,24.0,3,0,3" in lines and "health_checks,H2,-,24.0,4,0,4" \
        in lines and not any(l.startswith("health_checks,H3,") for l in lines), out
    # Long before: nothing due, nothing done.
    out = ctl("report", "daily", "--site", SITE, "--date", "2026-01-01", "--csv").stdout
    lines = out.splitlines()
    for name, header, _ in EXPECTED[1:]:
        assert csv_section(lines, name) == [header], (name, out)
    assert csv_section(lines, "zones")[1:] == ["Z1,0,-,10", "Z2,0,-,8", "Z3,0,-,5"], out


def test_report_exception_cards(ctl, env, day):
    """The register's exception cards by reason, with their passes that
    day; ordinary and revoked cards are not listed."""
    site, pg = "rq", env.pg
    ctl("site", "add", site, "--timezone", "Asia/Shanghai")
    harness.import_households(env, ctl, site, [("K1", ["C-1"]), ("K2", ["C-2"]),
                                               ("K3", ["C-3"])])
    ctl("card", "add", site, "C-1B", "--household", "K1", "--extra", "--reason", "carer")
    ctl("card", "add", site, "C-2B", "--household", "K2", "--extra", "--reason", "carer")
    ctl("card", "add", site, "C-3B", "--household", "K3", "--extra")
    ctl("card", "add", site, "C-3C", "--household", "K3", "--extra", "--reason", "carer")
    ctl("card", "revoke", site, "C-3C")
    for i, (card, direction, local) in enumerate([
            ("C-1B", "out", "D 08:00"), ("C-1B", "in", "D 09:00"), ("C-2B", "out", "D 10:00"),
            ("C-1B", "out", "D-1 23:00"), ("C-3B", "in", "D+1 00:30"), ("C-1", "out", "D 11:00"),
            ("C-3C", "out", "D 12:00")]):
        pg.query("INSERT INTO gate_events (event_key, site, gate, ts, received_at, card,"
                 " direction, vendor) VALUES (%s, %s, 'G01', %s, now(), %s, %s, 'canonical')",
                 ("%s/G01/%d" % (site, i), site, at(local), card, direction))
    lines = ctl("report", "daily", "--site", site, "--date", day, "--csv").stdout.splitlines()
    assert csv_section(lines, "exception_cards") == [
        "reason,cards,households,passes,out", "-,1,1,0,0", "carer,2,2,3,2"], lines
    out = ctl("report", "daily", "--site", site, "--date", day).stdout
    assert text_sections(out)["Exception cards"] == [
        ["reason", "cards", "households", "passes", "out"], ["-", "1", "1", "0", "0"],
        ["carer", "2", "2", "3", "2"]], out


def test_zone_per_day(ctl, env):
    p = ctl("zone", "add", SITE, "Z4", "--per-day", "3")
    assert p.stdout == ("zone %s/Z4 added: disinfection every 3h ([rules] disinfection_interval)"
                        ", 3 a day\n" % SITE)
    p = ctl("zone", "add", SITE, "Z4", "--interval", "90m")
    assert p.stdout == "zone %s/Z4 updated: disinfection every 90m, 3 a day\n" % SITE
    p = ctl("zone", "add", SITE, "Z4", "--per-day", "12")
    assert p.stdout == "zone %s/Z4 updated: disinfection every 90m, 12 a day\n" % SITE
    assert env.pg.query("SELECT interval_s, per_day FROM zones WHERE site = %s AND zone = 'Z4'",
                        (SITE,)) == [(5400, 12)]
    for bad in ("0", "1441", "x", "2.5"):
        assert "--per-day" in ctl("zone", "add", SITE, "Z5", "--per-day", bad, expect=2).stderr
    assert "--per-day" in ctl("zone", "add", SITE, "Z4", expect=1).stderr
    assert env.pg.count("zones", "site = %s AND zone = 'Z5'", (SITE,)) == 0
