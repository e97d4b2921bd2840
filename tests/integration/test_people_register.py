"""cordonctl's commands of the people work (issue 16): import residents
(ID numbers only as cordond's keyed hash, every bad row as FILE:LINE,
nothing half-applied), volunteers with masked phones, exception cards with
a reason, the household page (text and --json) and purge resident, checked
against every column of every table that could hold the person.

cordonctl runs against the private PostgreSQL of the module's `env`; the
rows of the new topics (needs, welfare calls, drop-offs) are written with
SQL here, their normalizer being another change. One test starts cordond
to check that a gate event naming a person by ID number carries the hash
the import wrote. Each test works on its own site.
"""

import datetime
import hashlib
import hmac
import json
import os
import re

import psycopg2
import pytest

import harness
from harness import gate_event, publish_many, wait_until

KEY = b"people-register-test-key"
# Test ID numbers (17 digits and a check character), never stored plain.
ID1 = "110101199003078515"
ID2 = "11010519491231002X"
ID3 = "320102198001011234"
ID4 = "440301198512120011"
ID5 = "44030119851212002X"
PHONE = "18012341999"
PHONE2 = "13900001111"
# A run of 11 digits standing alone: not the digits inside a hex id
# (an alert_id may hold eleven in a row).
PHONE_RE = re.compile(r"(?<![0-9A-Za-z])\d{11}(?![0-9A-Za-z])")


def id_hash(number):
    """What cordond stores for an ID number: "id:" + 32 hex digits of
    HMAC-SHA256 under the key (docs/config.md, id_key_file)."""
    return "id:" + hmac.new(KEY, number.encode(), hashlib.sha256).hexdigest()[:32]


def write(env, name, text):
    path = os.path.join(env.dir, name)
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(text)
    return path


@pytest.fixture(scope="module")
def keyfile(env):
    path = os.path.join(env.dir, "id.key")
    with open(path, "wb") as f:
        f.write(KEY + b"\n")
    return path


def make_ctl(conf):
    def run(*args, expect=None):
        p = harness.cordonctl(conf, *args, expect=expect)
        out = p.stdout + p.stderr
        # Phones and ID numbers never leave the database.
        assert not PHONE_RE.search(out), "cordonctl printed a phone number:\n" + out
        for n in (ID1, ID2, ID3, ID4, ID5):
            assert n not in out, "cordonctl printed an ID number:\n" + out
        return p
    run.conf = conf
    return run


@pytest.fixture(scope="module")
def ctl(env, keyfile):
    """cordonctl with [site] id_key_file; every output is checked for
    phone and ID numbers."""
    conf = os.path.join(env.dir, "ctl-key.conf")
    with open(conf, "w") as f:
        f.write("[postgres]\nconninfo = %s\n\n[site]\nid_key_file = %s\n"
                % (env.pg.conninfo, keyfile))
    run = make_ctl(conf)
    run("migrate", expect=0)
    return run


@pytest.fixture(scope="module")
def ctl_nokey(env):
    return make_ctl(harness.cordonctl_config(env.dir, env.pg.conninfo, "ctl-nokey.conf"))


def households(env, ctl, site, rows):
    """Import rows [(household, [cards])] into site (phone PHONE each)."""
    ctl("site", "add", site, expect=0)
    harness.import_households(env, lambda *a: ctl(*a, expect=0), site, rows, phone=PHONE)


def residents(env, site):
    return env.pg.query("SELECT person, household, name, born::text, phone, id_hash"
                        " FROM residents WHERE site = %s ORDER BY person", (site,))


def mentions(pg, needle):
    """[(table, column, rows)] of every column of every table that can hold
    text (text, varchar, arrays, json, bytea) with `needle` anywhere in a
    value; bytes columns are searched byte for byte."""
    conn = psycopg2.connect(pg.conninfo, connect_timeout=5)
    try:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT c.table_name, c.column_name, c.data_type"
                    " FROM information_schema.columns c JOIN information_schema.tables t"
                    " USING (table_schema, table_name)"
                    " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
                    " AND c.data_type IN ('text', 'character varying', 'ARRAY', 'json',"
                    " 'jsonb', 'bytea') ORDER BY 1, 2")
        tables = {}
        for table, column, dtype in cur.fetchall():
            tables.setdefault(table, []).append((column, dtype))
        assert {"residents", "gate_events", "alerts", "rejects"} <= set(tables)
        found = []
        for table, columns in sorted(tables.items()):
            conds = ["position(convert_to(%%(n)s, 'UTF8') IN \"%s\") > 0" % c if t == "bytea"
                     else "strpos(\"%s\"::text, %%(n)s) > 0" % c for c, t in columns]
            cur.execute("SELECT %s FROM \"%s\"" % (", ".join(
                "count(*) FILTER (WHERE %s)" % c for c in conds), table), {"n": needle})
            found += [(table, c, n) for (c, _), n in zip(columns, cur.fetchone()) if n]
        return found
    finally:
        conn.close()


# ---------------------------------------------------------------- import residents

def test_import_residents(env, ctl, keyfile):
    site = "pr1"
    households(env, ctl, site, [("1-1-101", ["C-101"]), ("1-1-102", ["C-102"])])
    path = write(env, "res1.csv",
                 "household,person,born,phone,id_number,name\n"
                 "1-1-101,P-1,1950-03-07,%s,%s,张三\n"
                 "1-1-101,P-2,,,%s,\n"
                 "\"1-1-102\",P-3,2000-02-29,,,\"Li, Si\"\n" % (PHONE, ID1, ID2.lower()))
    p = ctl("import", "residents", path, "--site", site, expect=0)
    assert re.fullmatch(r"imported %s into site pr1 in \d+\.\d\d s: 3 rows; residents: 3 new, "
                        r"0 updated, 0 unchanged; ID numbers: 2 hashed\n" % re.escape(path),
                        p.stdout), p.stdout
    assert p.stderr == ""
    assert residents(env, site) == [
        ("P-1", "1-1-101", "张三", "1950-03-07", PHONE, id_hash(ID1)),
        ("P-2", "1-1-101", None, None, None, id_hash(ID2.lower())),
        ("P-3", "1-1-102", "Li, Si", "2000-02-29", None, None),
    ]
    # the numbers are nowhere, in any column of any table
    for n in (ID1, ID2, ID2.lower()):
        assert mentions(env.pg, n) == []

    # a re-import updates: a new phone, a move, a name column left out
    # keeps the names; the same file again changes nothing
    path2 = write(env, "res2.csv",
                  "person,household,id_number,born,phone\n"
                  "P-1,1-1-101,%s,1950-03-07,%s\n"
                  "P-2,1-1-102,%s,,\n"
                  "P-3,1-1-102,,2000-02-29,\n" % (ID1, PHONE2, ID2.lower()))
    p = ctl("import", "residents", path2, "--site", site, expect=0)
    assert "residents: 0 new, 2 updated, 1 unchanged; ID numbers: 2 hashed" in p.stdout
    assert residents(env, site) == [
        ("P-1", "1-1-101", "张三", "1950-03-07", PHONE2, id_hash(ID1)),
        ("P-2", "1-1-102", None, None, None, id_hash(ID2.lower())),
        ("P-3", "1-1-102", "Li, Si", "2000-02-29", None, None),
    ]
    p = ctl("import", "residents", path2, "--site", site, expect=0)
    assert "residents: 0 new, 0 updated, 3 unchanged" in p.stdout


def test_import_residents_refuses_bad_rows(env, ctl):
    site = "pr2"
    households(env, ctl, site, [("2-1-101", ["C-201"])])
    ok = write(env, "res-ok.csv", "household,person,born,phone,id_number\n"
                                  "2-1-101,Q-1,1970-01-01,,%s\n" % ID3)
    ctl("import", "residents", ok, "--site", site, expect=0)
    before = residents(env, site)
    tomorrow = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()
    path = write(env, "res-bad.csv",
                 "household,person,born,phone,id_number,name\n"
                 "2-1-101,Q-2,1980-05-05,%s,%s,ok\n"          # 2: good
                 "9-9-999,Q-3,,,,\n"                          # 3: unknown household
                 "2-1-101,Q-4,2021-02-29,,,\n"                # 4: no such date
                 "2-1-101,Q-5,%s,,,\n"                        # 5: future
                 "2-1-101,Q-6,,1801234,,\n"                   # 6: short phone
                 "2-1-101,Q-7,,,11010119900307851,\n"         # 7: 17 characters
                 "2-1-101,Q-2,,,,\n"                          # 8: person twice
                 "2-1-101,%s,,,,\n"                           # 9: person is an ID number
                 "2-1-101,Q-8,,,\n"                           # 10: 5 fields
                 "2-1-101,Q-9,,,%s,\n"                        # 11: id_number twice in the file
                 "2-1-101,Q-10,,,%s,\n"                       # 12: id_number of Q-1
                 "2-1-101,Q 11,1890-01-01,,,\n"               # 13: bad id, before 1900
                 "2-1-101,Q-12,,,,\"a\x01b\"\n"               # 14: control character
                 % (PHONE, ID1, tomorrow, ID2, ID1, ID3))
    p = ctl("import", "residents", path, "--site", site, expect=1)
    assert p.stdout == ""
    assert p.stderr.splitlines() == [
        "%s:3: household 9-9-999 is not in the register of site pr2 (import households first)" % path,
        "%s:4: born is not a date YYYY-MM-DD from 1900 on" % path,
        "%s:5: born is in the future" % path,
        "%s:6: phone is not 11 digits" % path,
        "%s:7: id_number is not 17 digits and a check digit or X" % path,
        "%s:8: person Q-2 is also on line 2" % path,
        "%s:9: person is an ID number (put it in id_number)" % path,
        "%s:10: expected 6 fields (as the header), found 5" % path,
        "%s:11: id_number is also on line 2" % path,
        "%s:12: id_number is that of person Q-1" % path,
        "%s:13: bad person id 'Q 11' (use 1 to 64 of A-Z a-z 0-9 _ -); born is not a date "
        "YYYY-MM-DD from 1900 on" % path,
        "%s:14: name has a control character" % path,
        "cordonctl: 12 bad rows in %s: nothing imported" % path,
    ]
    assert residents(env, site) == before
    assert mentions(env.pg, ID1) == [] and mentions(env.pg, ID2) == []

    # the header names its columns, each once
    for header in ("household,person,born,phone\n", "household,person,born,phone,id_number,nom\n",
                   "household,person,person,born,phone,id_number\n"):
        bad = write(env, "res-header.csv", header + "2-1-101,Q-20,,,\n")
        p = ctl("import", "residents", bad, "--site", site, expect=1)
        assert p.stderr == ("%s:1: the header must name the columns "
                            "household,person,born,phone,id_number[,name] "
                            "(each once, in any order)\n" % bad)
    p = ctl("import", "residents", ok, "--site", "nosuch", expect=1)
    assert p.stderr == "cordonctl: unknown site nosuch\n"
    p = ctl("import", "residents", ok, expect=2)
    assert "--site is required" in p.stderr
    assert residents(env, site) == before


def test_import_residents_without_key_drops_id_numbers(env, ctl, ctl_nokey):
    site = "pr3"
    households(env, ctl, site, [("3-1-101", ["C-301"])])
    path = write(env, "res-nokey.csv", "household,person,born,phone,id_number\n"
                                       "3-1-101,R-1,,,%s\n"
                                       "3-1-101,R-2,,,\n" % ID1)
    p = ctl_nokey("import", "residents", path, "--site", site, expect=0)
    assert "residents: 2 new, 0 updated, 0 unchanged; ID numbers: 1 dropped " \
           "(no [site] id_key_file)" in p.stdout
    assert p.stderr == ("cordonctl: warning: no [site] id_key_file in %s: 1 ID number of %s "
                        "dropped, never stored\n" % (ctl_nokey.conf, path))
    assert [(r[0], r[5]) for r in residents(env, site)] == [("R-1", None), ("R-2", None)]
    assert mentions(env.pg, ID1) == []
    # with the key the hash comes; without it again the hash stays
    ctl("import", "residents", path, "--site", site, expect=0)
    assert residents(env, site)[0][5] == id_hash(ID1)
    p = ctl_nokey("import", "residents", path, "--site", site, expect=0)
    assert "residents: 0 new, 0 updated, 2 unchanged" in p.stdout
    assert residents(env, site)[0][5] == id_hash(ID1)

    # a key file configured but unreadable, or too short: nothing imported
    for name, content in (("missing.key", None), ("short.key", b"0123456789abcde\n")):
        keypath = os.path.join(env.dir, name)
        if content is not None:
            with open(keypath, "wb") as f:
                f.write(content)
        conf = os.path.join(env.dir, "ctl-%s.conf" % name)
        with open(conf, "w") as f:
            f.write("[postgres]\nconninfo = %s\n\n[site]\nid_key_file = %s\n"
                    % (env.pg.conninfo, keypath))
        before = residents(env, site)
        p = make_ctl(conf)("import", "residents", path, "--site", site, expect=1)
        assert p.stdout == ""
        assert p.stderr == ("cordonctl: cannot read [site] id_key_file %s: No such file or "
                            "directory\n" % keypath if content is None else
                            "cordonctl: [site] id_key_file %s: the key must be at least 16 "
                            "bytes\n" % keypath)
        assert residents(env, site) == before


def test_cordond_gives_gate_events_the_imported_hash(env, ctl, cordond, keyfile):
    """The import's hash is the value cordond puts in gate_events.person for
    a pass that names the person by ID number (the two meet)."""
    site = "pr4"
    households(env, ctl, site, [("4-1-101", ["C-401"])])
    ctl("gate", "add", site, "G01", expect=0)
    path = write(env, "res4.csv", "household,person,born,phone,id_number\n"
                                  "4-1-101,S-1,,,%s\n" % ID2)
    ctl("import", "residents", path, "--site", site, expect=0)
    cordond({"site": {"id_key_file": keyfile}})
    publish_many(env.broker.port, [gate_event(site, "G01", "E-1", card="C-401", person=ID2,
                                              ts=harness.now_ts())])
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (site,)) == 1,
               what="the gate event stored")
    stored = env.pg.scalar("SELECT person FROM gate_events WHERE site = %s", (site,))
    assert stored == residents(env, site)[0][5] == id_hash(ID2)


# ---------------------------------------------------------------- volunteers, cards

def test_volunteers(env, ctl):
    site = "pr5"
    ctl("site", "add", site, expect=0)
    p = ctl("volunteer", "add", site, "V-1", "--team", "east", "--phone", PHONE, expect=0)
    assert p.stdout == "volunteer pr5/V-1 added: team east, phone 180****1999\n"
    p = ctl("volunteer", "add", site, "V-2", expect=0)
    assert p.stdout == "volunteer pr5/V-2 added: team -, phone -\n"
    p = ctl("volunteer", "add", site, "V-2", expect=1)
    assert "volunteer V-2 already exists at site pr5" in p.stderr
    p = ctl("volunteer", "add", site, "V-2", "--phone", PHONE2, expect=0)
    assert p.stdout == "volunteer pr5/V-2 updated: team -, phone 139****1111\n"
    assert env.pg.query("SELECT volunteer, team, phone, active FROM volunteers WHERE site = %s"
                        " ORDER BY volunteer", (site,)) == \
        [("V-1", "east", PHONE, True), ("V-2", None, PHONE2, True)]
    p = ctl("volunteer", "list", site, expect=0)
    assert [l.split() for l in p.stdout.splitlines()] == [
        ["site", "volunteer", "team", "phone", "active"],
        ["pr5", "V-1", "east", "180****1999", "yes"],
        ["pr5", "V-2", "-", "139****1111", "yes"],
    ]
    assert "pr5" in ctl("volunteer", "list", expect=0).stdout
    # the phone is checked, and never echoed
    p = ctl("volunteer", "add", site, "V-3", "--phone", "1801234199", expect=2)
    assert "--phone is not 11 digits" in p.stderr and "1801234199" not in p.stderr
    ctl("volunteer", "add", site, "bad id", expect=2)
    p = ctl("volunteer", "add", "nosuch", "V-1", expect=1)
    assert "unknown site nosuch" in p.stderr
    ctl("volunteer", "list", "nosuch", expect=1)


def test_card_reason(env, ctl):
    site = "pr6"
    households(env, ctl, site, [("6-1-101", ["C-601"])])
    p = ctl("card", "add", site, "C-602", "--household", "6-1-101", "--reason", "carer", expect=2)
    assert "--reason is the reason of an exception: it needs --extra" in p.stderr
    ctl("card", "add", site, "C-602", "--household", "6-1-101", "--extra", "--reason", "a b",
        expect=2)
    p = ctl("card", "add", site, "C-602", "--household", "6-1-101", "--extra", "--reason",
            "carer", expect=0)
    assert p.stdout == "card pr6/C-602 added to household 6-1-101 (extra: carer)\n"
    # the same again is an error; another reason changes it
    p = ctl("card", "add", site, "C-602", "--household", "6-1-101", "--extra", "--reason",
            "carer", expect=1)
    assert "already registered to household 6-1-101 at site pr6 (extra: carer)" in p.stderr
    p = ctl("card", "add", site, "C-602", "--household", "6-1-101", "--extra", "--reason",
            "nurse", expect=0)
    assert p.stdout == "card pr6/C-602 of household 6-1-101 marked (extra: nurse)\n"
    # an exception without a reason, and a plain card made one
    ctl("card", "add", site, "C-603", "--household", "6-1-101", "--extra", expect=0)
    p = ctl("card", "add", site, "C-601", "--household", "6-1-101", "--extra", "--reason",
            "carer", expect=0)
    assert p.stdout == "card pr6/C-601 of household 6-1-101 marked (extra: carer)\n"
    assert env.pg.query("SELECT card, state, extra, reason FROM cards WHERE site = %s"
                        " ORDER BY card", (site,)) == [
        ("C-601", "active", True, "carer"), ("C-602", "active", True, "nurse"),
        ("C-603", "active", True, None)]


# ---------------------------------------------------------------- household page

def fill_household(env, ctl, site, hh, person, number, card, other_card):
    """Rows of every kind about household hh (person, registered with ID
    number `number`, card `card`), written with SQL where no cordonctl
    command makes them; returns their alert ids."""
    pg = env.pg
    h = id_hash(number)
    ts = "2026-03-01 08:00:00+00"
    for i in range(12):   # 12 checks: the page shows the last 10
        pg.query("INSERT INTO isolation_checks (event_key, site, household, person, ts,"
                 " received_at, temp_c, symptoms) VALUES (%s, %s, %s, %s,"
                 " %s::timestamptz + %s * interval '1 hour', now(), %s, %s)",
                 ("%s/chk/%d" % (site, i), site, hh, h if i == 11 else person, ts, i,
                  37.8 if i == 11 else 36.5, ["cough"] if i == 11 else []))
    pg.query("INSERT INTO welfare_calls (event_key, site, household, ts, received_at, by_whom,"
             " outcome, note) VALUES (%s, %s, %s, %s, now(), 'V-1', 'needs_help',"
             " 'call back on ' || %s)", (site + "/wc/1", site, hh, ts, PHONE2))
    # a long note: its phone masked at the end too (whole in --json)
    pg.query("INSERT INTO welfare_calls (event_key, site, household, ts, received_at, by_whom,"
             " outcome, note) VALUES (%s, %s, %s, %s::timestamptz - interval '1 day', now(),"
             " 'V-2', 'reached', repeat('x', 300) || E' \\n' || %s)",
             (site + "/wc/0", site, hh, ts, PHONE))
    pg.query("INSERT INTO needs (site, need_id, household, category, status, opened_at, due,"
             " assigned_to, updated_at) VALUES (%s, 'N-1', %s, 'medicine', 'assigned', %s,"
             " %s::timestamptz + interval '4 hours', 'V-1', now()),"
             " (%s, 'N-2', %s, 'groceries', 'delivered', %s::timestamptz - interval '1 day',"
             " NULL, NULL, now())", (site, hh, ts, ts, site, hh, ts))
    pg.query("UPDATE needs SET delivered_at = opened_at + interval '2 hours'"
             " WHERE site = %s AND need_id = 'N-2'", (site,))
    pg.query("INSERT INTO dropoffs (event_key, site, household, ts, received_at, item, action,"
             " by_whom) VALUES (%s, %s, %s, %s, now(), 'medicine', 'placed', 'V-1')",
             (site + "/do/1", site, hh, ts))
    for i, (c, p) in enumerate([(card, person), (card, h), (other_card, "X-9")]):
        pg.query("INSERT INTO gate_events (event_key, site, gate, ts, received_at, card,"
                 " person, direction, temp_c, mask, vendor) VALUES (%s, %s, 'G01',"
                 " %s::timestamptz + %s * interval '1 minute', now(), %s, %s, 'out', 36.6,"
                 " true, 'canonical')", ("%s/G01/E-%d" % (site, i), site, ts, i, c, p))
    alerts = {}
    for aid, kind, subject, state, hh_col in (
            ("a1" + site, "fever", "person:" + h, "resolved", None),
            ("a2" + site, "missed_check", "household:" + hh, "raised", hh),
            ("a3" + site, "unknown_card", "card:" + other_card, "resolved", None)):
        pg.query("INSERT INTO alerts (alert_id, site, kind, severity, state, subject, event_key,"
                 " household, raised_at, updated_at, count) VALUES (%s, %s, %s, 'warning', %s,"
                 " %s, 'k', %s, %s, %s, 1)", (aid, site, kind, state, subject, hh_col, ts, ts))
        pg.query("INSERT INTO alert_transitions (alert_id, transition, count, at, severity)"
                 " VALUES (%s, 'raised', 1, %s, 'warning')", (aid, ts))
        alerts[kind] = aid
    return alerts


def test_household_page(env, ctl):
    site = "pr7"
    households(env, ctl, site, [("7-1-101", ["C-701"]), ("7-1-102", ["C-799"])])
    ctl("site", "add", site, "--timezone", "Asia/Shanghai", expect=0)
    path = write(env, "res7.csv", "household,person,born,phone,id_number,name\n"
                                  "7-1-101,T-1,1948-12-01,%s,%s,王五\n"
                                  "7-1-101,T-2,,,,\n" % (PHONE2, ID3))
    ctl("import", "residents", path, "--site", site, expect=0)
    ctl("card", "add", site, "C-702", "--household", "7-1-101", "--extra", "--reason", "carer",
        expect=0)
    ctl("isolate", site, "--household", "7-1-101", "--person", "T-1", expect=0)
    alerts = fill_household(env, ctl, site, "7-1-101", "T-1", ID3, "C-701", "C-702")

    p = ctl("household", site, "7-1-101", expect=0)
    out = p.stdout
    lines = out.splitlines()
    assert lines[0] == ("household pr7/7-1-101: building 1, unit 1, room 101, size 2, "
                        "phone 180****1999 (times in Asia/Shanghai)")
    assert "id:" not in out     # never a hash, and (checked by ctl) no number
    assert "王五" not in out     # a name only masked

    def section(title):
        i = next(i for i, l in enumerate(lines) if l.startswith(title + ":"))
        rows = []
        for l in lines[i + 1:]:
            if not l.startswith("  "):
                break
            rows.append(l.split())
        return lines[i], rows
    head, rows = section("residents")
    assert head == "residents: 2"
    assert rows == [["person", "name", "born", "phone"],
                    ["T-1", "王*", "1948-12-01", "139****1111"],
                    ["T-2", "-", "-", "-"]]
    # aligned on a terminal, where 王五 takes 4 columns
    i = lines.index("residents: 2")
    assert lines[i + 1:i + 4] == ["  person  name  born        phone",
                                  "  T-1     王*   1948-12-01  139****1111",
                                  "  T-2     -     -           -"]
    head, rows = section("cards")
    assert head == "cards: 2"
    assert rows == [["card", "state", "extra", "reason"],
                    ["C-701", "active", "no", "-"], ["C-702", "active", "yes", "carer"]]
    head, rows = section("isolation orders")
    assert head == "isolation orders: 1 (1 active)"
    assert rows[0] == ["id", "person", "starts", "ends", "released", "status"]
    assert rows[1][1] == "T-1" and rows[1][-2:] == ["-", "active"]
    head, rows = section("health checks")
    assert head == "health checks: 12, the last 10 shown"
    assert rows[0] == ["ts", "person", "temp_c", "symptoms"]
    # newest first, in the site's time zone (08:00 UTC + 11 h = 03:00 +08)
    assert rows[1] == ["2026-03-02", "03:00", "T-1", "37.8", '["cough"]']
    assert rows[2] == ["2026-03-02", "02:00", "T-1", "36.5", "[]"]
    assert len(rows) == 11
    head, rows = section("welfare calls")
    assert head == "welfare calls: 2"
    assert rows[1] == ["2026-03-01", "16:00", "needs_help", "V-1", "call", "back", "on",
                       "139****1111"]
    assert rows[2] == ["2026-02-28", "16:00", "reached", "V-2", "x" * 57 + "..."]
    head, rows = section("needs")
    assert head == "needs: 2 (1 open)"
    assert rows[0] == ["need_id", "category", "status", "opened", "due", "assigned_to",
                       "delivered"]
    assert rows[1] == ["N-1", "medicine", "assigned", "2026-03-01", "16:00", "2026-03-01",
                       "20:00", "V-1", "-"]
    assert rows[2] == ["N-2", "groceries", "delivered", "2026-02-28", "16:00", "-", "-",
                       "2026-02-28", "18:00"]
    head, rows = section("drop-offs")
    assert head == "drop-offs: 1"
    assert rows[1] == ["2026-03-01", "16:00", "placed", "medicine", "V-1"]
    head, rows = section("passes")
    assert head == "passes: 3"
    assert [r[3] for r in rows[1:]] == ["C-702", "C-701", "C-701"]
    assert rows[1] == ["2026-03-01", "16:02", "G01", "C-702", "out", "36.6", "yes"]
    head, rows = section("alerts")
    assert head == "alerts: 3 (1 open)"
    assert rows[0] == ["raised", "kind", "severity", "state", "subject", "count", "alert_id"]
    assert [r[2:6] for r in rows[1:]] == [
        ["missed_check", "warning", "raised", "household:7-1-101"],
        ["fever", "warning", "resolved", "person:T-1"],        # the hash, shown as its person
        ["unknown_card", "warning", "resolved", "card:C-702"]]
    assert [r[-1] for r in rows[1:]] == [alerts["missed_check"], alerts["fever"],
                                         alerts["unknown_card"]]

    # --last
    # --last N: the last N of each list of events; residents and cards whole
    p = ctl("household", site, "7-1-101", "--last", "2", expect=0)
    assert "health checks: 12, the last 2 shown\n" in p.stdout
    assert "residents: 2\n" in p.stdout and "  T-2 " in p.stdout
    assert "cards: 2\n" in p.stdout and "  C-702 " in p.stdout

    # --json: the same fields, times in UTC
    page = json.loads(ctl("household", site, "7-1-101", "--json", expect=0).stdout)
    assert {k: page[k] for k in ("site", "household", "building", "unit", "room", "size",
                                 "phone", "timezone")} == {
        "site": "pr7", "household": "7-1-101", "building": "1", "unit": "1", "room": "101",
        "size": 2, "phone": "180****1999", "timezone": "Asia/Shanghai"}
    assert page["residents"] == {"total": 2, "items": [
        {"person": "T-1", "name": "王*", "born": "1948-12-01", "phone": "139****1111"},
        {"person": "T-2", "name": None, "born": None, "phone": None}]}
    assert page["cards"]["items"][1] == {"card": "C-702", "state": "active", "extra": True,
                                         "reason": "carer"}
    assert page["isolation_orders"]["total"] == 1 and page["isolation_orders"]["active"] == 1
    assert page["isolation_orders"]["items"][0]["status"] == "active"
    assert isinstance(page["isolation_orders"]["items"][0]["id"], int)
    chk = page["isolation_checks"]
    assert chk["total"] == 12 and len(chk["items"]) == 10
    assert chk["items"][0] == {"ts": "2026-03-01T19:00:00.000Z", "person": "T-1",
                               "temp_c": 37.8, "symptoms": ["cough"]}
    assert page["welfare_calls"] == {"total": 2, "items": [
        {"ts": "2026-03-01T08:00:00.000Z", "outcome": "needs_help", "by": "V-1",
         "note": "call back on 139****1111"},
        {"ts": "2026-02-28T08:00:00.000Z", "outcome": "reached", "by": "V-2",
         "note": "x" * 300 + " \n180****1999"}]}
    assert page["needs"]["total"] == 2 and page["needs"]["open"] == 1
    assert page["needs"]["items"][0] == {
        "need_id": "N-1", "category": "medicine", "status": "assigned",
        "opened": "2026-03-01T08:00:00.000Z", "due": "2026-03-01T12:00:00.000Z",
        "assigned_to": "V-1", "delivered": None}
    assert page["dropoffs"]["items"] == [{"ts": "2026-03-01T08:00:00.000Z", "action": "placed",
                                          "item": "medicine", "by": "V-1"}]
    assert page["passes"]["total"] == 3
    assert page["passes"]["items"][0] == {"ts": "2026-03-01T08:02:00.000Z", "gate": "G01",
                                          "card": "C-702", "direction": "out", "temp_c": 36.6,
                                          "mask": True}
    assert page["alerts"]["total"] == 3 and page["alerts"]["open"] == 1
    assert [(a["kind"], a["subject"], a["alert_id"]) for a in page["alerts"]["items"]] == [
        ("missed_check", "household:7-1-101", alerts["missed_check"]),
        ("fever", "person:T-1", alerts["fever"]),
        ("unknown_card", "card:C-702", alerts["unknown_card"])]
    assert "id:" not in json.dumps(page)

    # the other household has its own page: nothing of 7-1-101 on it
    other = json.loads(ctl("household", site, "7-1-102", "--json", expect=0).stdout)
    assert other["residents"] == {"total": 0, "items": []}
    assert other["passes"]["total"] == 0 and other["alerts"]["total"] == 0
    text = ctl("household", site, "7-1-102", expect=0).stdout
    assert "residents: none" in text and "alerts: none" in text

    p = ctl("household", site, "9-9-999", expect=1)
    assert p.stderr == "cordonctl: unknown household 9-9-999 at site pr7\n" and p.stdout == ""
    ctl("household", site, expect=2)
    ctl("household", site, "7-1-101", "--last", "0", expect=2)


# ---------------------------------------------------------------- purge

def test_purge_resident(env, ctl):
    site = "pr8"
    households(env, ctl, site, [("8-1-101", ["C-801"])])
    ctl("site", "add", site, "--timezone", "Asia/Shanghai", expect=0)
    person, keep = "PURGE-ME-8", "KEEP-ME-8"
    path = write(env, "res8.csv", "household,person,born,phone,id_number,name\n"
                                  "8-1-101,%s,1960-01-01,%s,%s,赵六\n"
                                  "8-1-101,%s,1961-01-01,,%s,\n" % (person, PHONE2, ID4, keep, ID5))
    ctl("import", "residents", path, "--site", site, expect=0)
    h, hk = id_hash(ID4), id_hash(ID5)
    ctl("isolate", site, "--household", "8-1-101", "--person", person, expect=0)
    ctl("isolate", site, "--household", "8-1-101", "--person", keep, expect=0)
    alerts = fill_household(env, ctl, site, "8-1-101", person, ID4, "C-801", "C-802")
    pg = env.pg
    # more of the person: a check of the kept person, a pass under the
    # plain id with a reused key, an ack, an aggregate's sample, a reject
    pg.query("INSERT INTO isolation_checks (event_key, site, household, person, ts, received_at)"
             " VALUES (%s, %s, '8-1-101', %s, now(), now())", (site + "/chk/keep", site, keep))
    pg.query("INSERT INTO gate_events (event_key, site, gate, ts, received_at, card, person,"
             " vendor) VALUES (%s, %s, 'G01', now(), now(), 'C-801', %s, 'canonical')",
             (site + "/G01/E-0~0123456789ab", site, person))
    pg.query("INSERT INTO event_keys_reused (event_key, content_hash, derived_key, event_table,"
             " received_at) VALUES (%s, '\\x01', %s, 'gate_events', now())",
             (site + "/G01/E-0", site + "/G01/E-0~0123456789ab"))
    pg.query("INSERT INTO acks (event_key, site, alert_id, by_whom, action, ts, received_at)"
             " VALUES (%s, %s, %s, 'op', 'ack', now(), now())",
             (site + "/ack/1", site, alerts["fever"]))
    pg.query("INSERT INTO alerts (alert_id, site, kind, severity, state, subject, event_key,"
             " raised_at, updated_at, count, distinct_subjects, sample) VALUES"
             " ('agg' || %s, %s, 'fever', 'warning', 'resolved', '*', 'k', now(), now(), 3, 3,"
             " %s)", (site, site, "person:%s person:%s person:other" % (keep, h)))
    pg.query("INSERT INTO rejects (reject_key, received_at, topic, reason, payload, payload_len)"
             " VALUES ('rj' || %s, now(), %s, 'bad_json', convert_to(%s, 'UTF8'), 20)",
             (site, "cordon/%s/gate/G01/event" % site, '{"person":"%s",' % person))
    # the person also has an open alert: refused, nothing changed
    pg.query("INSERT INTO alerts (alert_id, site, kind, severity, state, subject, event_key,"
             " raised_at, updated_at, count) VALUES ('open' || %s, %s, 'fever', 'critical',"
             " 'raised', %s, 'k', now(), now(), 1)", (site, site, "person:" + person))
    before = {n: mentions(pg, n) for n in (person, h)}
    assert before[person] and before[h]
    p = ctl("purge", "resident", site, person, expect=1)
    assert p.stderr == ("cordonctl: person %s at site %s has 1 open alert (first: open%s, fever):"
                        " resolve it first (cordonctl resolve ID); nothing purged\n"
                        % (person, site, site))
    assert {n: mentions(pg, n) for n in (person, h)} == before
    pg.query("UPDATE alerts SET state = 'resolved' WHERE alert_id = 'open' || %s", (site,))

    kept = mentions(pg, keep)
    kept_hash = mentions(pg, hk)
    p = ctl("purge", "resident", site, person, expect=0)
    lines = p.stdout.splitlines()
    assert lines[0] == "purged person %s of household 8-1-101 at site %s: 24 rows" % (person, site)
    assert dict(l.split() for l in lines[1:]) == {
        "alert_transitions": "1", "acks": "1", "alerts": "2", "alerts.sample": "1",
        "event_keys_reused": "1", "gate_events": "3", "isolation_checks": "12",
        "isolation_orders": "1", "rejects": "1", "residents": "1"}
    # no row anywhere holds the person or the hash of the ID number
    # (no column of any table: ids, subjects, samples, payloads)
    assert mentions(pg, person) == []
    assert mentions(pg, h) == []
    # the other resident keeps every row
    assert mentions(pg, keep) == kept
    assert mentions(pg, hk) == kept_hash
    assert pg.scalar("SELECT sample FROM alerts WHERE alert_id = 'agg' || %s", (site,)) == \
        "person:%s person:other" % keep
    assert pg.count("residents", "site = %s", (site,)) == 1
    # the household's own rows stay
    assert pg.count("alerts", "site = %s AND subject = %s", (site, "household:8-1-101")) == 1
    assert pg.count("gate_events", "site = %s", (site,)) == 1   # C-802's pass by X-9
    p = ctl("purge", "resident", site, person, expect=1)
    assert p.stderr == "cordonctl: nothing of person %s at site %s\n" % (person, site)
    ctl("purge", "resident", site, expect=2)
    ctl("purge", "residents", site, person, expect=2)


def test_purge_person_called_null(env, ctl):
    """A person id that SQL would read as NULL in an array literal."""
    site = "pr9"
    households(env, ctl, site, [("9-1-101", ["C-901"])])
    path = write(env, "res9.csv", "household,person,born,phone,id_number\n"
                                  "9-1-101,NULL,,,\n9-1-101,null2,,,\n")
    ctl("import", "residents", path, "--site", site, expect=0)
    for i, who in enumerate(("NULL", "null2")):
        env.pg.query("INSERT INTO gate_events (event_key, site, gate, ts, received_at, card,"
                     " person, vendor) VALUES (%s, %s, 'G01', now(), now(), 'C-901', %s,"
                     " 'canonical')", ("%s/G01/N-%d" % (site, i), site, who))
    p = ctl("purge", "resident", site, "NULL", expect=0)
    assert p.stdout.startswith("purged person NULL of household 9-1-101 at site pr9: 2 rows\n")
    assert env.pg.query("SELECT person FROM residents WHERE site = %s", (site,)) == [("null2",)]
    assert env.pg.query("SELECT person FROM gate_events WHERE site = %s", (site,)) == \
        [("null2",)]


def test_help_lists_the_commands(ctl):
    p = ctl("--help", expect=0)
    for command in ("import residents", "--reason WORD", "volunteer add", "volunteer list",
                    "household S H", "purge resident"):
        assert command in p.stdout, command
    p = ctl("import", "people", "x.csv", expect=2)
    assert "import what? ('households' or 'residents')" in p.stderr
