"""cordonctl and the register (SPEC 5, 10): import of the reference compound's
household CSV, refusal of a malformed one with nothing written, the gate, zone,
card and isolation commands checked in the tables, NOTIFY cordon_register, and
usage/error exit codes.

Runs cordonctl as a subprocess against the private PostgreSQL of the module's
`env` (the broker is started too but not used). Each test works on its own
site so that they do not depend on each other's order.
"""

import csv
import os
import re
import select
import subprocess
import sys
import time

import psycopg2
import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_REGISTER = os.path.join(HERE, "..", "..", "tools", "gen_register.py")
HEADER = "household,building,unit,room,size,phone,cards\n"
# A run of 11 digits standing alone: not the digits inside a hex id
# (an alert_id may hold eleven in a row).
PHONE_RE = re.compile(r"(?<![0-9A-Za-z])\d{11}(?![0-9A-Za-z])")


@pytest.fixture(scope="module")
def ctl(env):
    """ctl(*args, expect=None) -> CompletedProcess; every output is checked
    for unmasked phone numbers (SPEC 3: phones never leave the database)."""
    conf = harness.cordonctl_config(env.dir, env.pg.conninfo)

    def run(*args, expect=None):
        p = harness.cordonctl(conf, *args, expect=expect)
        assert not PHONE_RE.search(p.stdout + p.stderr), \
            "cordonctl printed a phone number:\n" + p.stdout + p.stderr
        return p
    run.conf = conf
    harness.cordonctl(conf, "migrate", expect=0)
    return run


class Listener:
    """A psycopg2 connection LISTENing on cordon_register."""

    def __init__(self, conninfo):
        self.conn = psycopg2.connect(conninfo)
        self.conn.autocommit = True
        self.conn.cursor().execute("LISTEN cordon_register")

    def drain(self, wait=0.0):
        """Return the payloads received so far, waiting up to `wait` s for the first."""
        deadline = time.monotonic() + wait
        while True:
            self.conn.poll()
            if self.conn.notifies:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([self.conn], [], [], left)
        got = [n.payload for n in self.conn.notifies if n.channel == "cordon_register"]
        self.conn.notifies.clear()
        return got

    def close(self):
        self.conn.close()


@pytest.fixture
def listener(env):
    lst = Listener(env.pg.conninfo)
    yield lst
    lst.close()


def register_checksum(pg):
    """One value that changes when any register row changes."""
    parts = []
    for table, order in (("sites", "site"), ("gates", "site, gate"), ("zones", "site, zone"),
                         ("households", "site, household"), ("cards", "site, card"),
                         ("residents", "site, person"), ("isolation_orders", "id")):
        parts.append(pg.scalar("SELECT %s || ':' || count(*) || ':' ||"
                               " coalesce(md5(string_agg(t::text, '|' ORDER BY %s)), '')"
                               " FROM %s t" % (repr(table), order, table)))
    return parts


def generate(path, seed=7):
    subprocess.run([sys.executable, GEN_REGISTER, "--seed", str(seed), "-o", path],
                   check=True, capture_output=True)
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write(path, text):
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------- import

def test_import_reference_compound(env, ctl, capsys):
    path = os.path.join(env.dir, "reference.csv")
    rows = generate(path)
    cards = sum(len(r["cards"].split(";")) for r in rows)
    assert len(rows) == 3427
    assert sum(int(r["size"]) for r in rows) == 10803
    assert len({r["building"] for r in rows}) == 52
    assert all(re.fullmatch(r"\d{11}", r["phone"]) for r in rows)
    assert all(re.fullmatch(r"C-\d{5}", c) for r in rows for c in r["cards"].split(";"))
    assert {len(r["cards"].split(";")) for r in rows} == {1, 2}
    # the generator is deterministic
    again = os.path.join(env.dir, "reference-again.csv")
    generate(again)
    with open(path, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read()

    t0 = time.monotonic()
    p = ctl("import", "households", path, "--site", "ref", expect=0)
    elapsed = time.monotonic() - t0
    with capsys.disabled():
        print("\nimport of the reference compound (%d households, %d cards): %.2f s wall; "
              "cordonctl says: %s" % (len(rows), cards, elapsed, p.stdout.strip()))
    assert "3427 new" in p.stdout
    assert env.pg.count("households", "site = 'ref'") == 3427
    assert env.pg.count("cards", "site = 'ref'") == cards
    assert env.pg.scalar("SELECT sum(size) FROM households WHERE site = 'ref'") == 10803
    assert env.pg.count("sites", "site = 'ref'") == 1   # created by the import
    sample = rows[1234]
    assert env.pg.query("SELECT building, unit, room, size, phone FROM households"
                        " WHERE site = 'ref' AND household = %s", (sample["household"],)) == \
        [(sample["building"], sample["unit"], sample["room"], int(sample["size"]), sample["phone"])]
    for card in sample["cards"].split(";"):
        assert env.pg.query("SELECT household, state, extra FROM cards WHERE site = 'ref'"
                            " AND card = %s", (card,)) == [(sample["household"], "active", False)]

    # A re-import of the same file changes nothing.
    before = register_checksum(env.pg)
    p = ctl("import", "households", path, "--site", "ref", expect=0)
    assert "0 new, 0 updated, 3427 unchanged" in p.stdout
    assert register_checksum(env.pg) == before

    # A changed row is updated, the others are left alone.
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines(True)
    fields = lines[10].rstrip("\n").split(",")
    fields[4] = "9" if fields[4] != "9" else "8"
    fields[5] = ""
    lines[10] = ",".join(fields) + "\n"
    changed = write(os.path.join(env.dir, "changed.csv"), "".join(lines))
    p = ctl("import", "households", changed, "--site", "ref", expect=0)
    assert "0 new, 1 updated, 3426 unchanged" in p.stdout
    assert env.pg.query("SELECT size, phone FROM households WHERE site = 'ref' AND household = %s",
                        (fields[0],)) == [(int(fields[4]), None)]
    assert env.pg.count("households", "site = 'ref'") == 3427
    assert env.pg.count("cards", "site = 'ref'") == cards


def test_import_quoting(env, ctl):
    """RFC 4180 quoting, CRLF line ends, a UTF-8 BOM, blank lines and
    non-ASCII text are read as such."""
    path = write(os.path.join(env.dir, "quoted.csv"),
                 "\ufeff" + HEADER.replace("\n", "\r\n")
                 + '"q-1","Bldg ""A"", east","1","101",2,"13800000000","Q-1;Q-2"\r\n'
                 + "\r\n"
                 + 'q-2,"3号楼","2,5",\\201,0,,\r\n'
                 + '"q-3","multi\nline? no: quoted comma, ok",1,1,1,,Q-3\r\n')
    p = ctl("import", "households", path, "--site", "quoted")
    # a newline inside a quoted building is a control character: refused
    assert p.returncode == 1
    assert "quoted.csv:5: building has a control character" in p.stderr
    assert env.pg.count("households", "site = 'quoted'") == 0

    path = write(path, "\ufeff" + HEADER.replace("\n", "\r\n")
                 + '"q-1","Bldg ""A"", east","1","101",2,"13800000000","Q-1;Q-2"\r\n'
                 + "\r\n"
                 + 'q-2,"3号楼","2,5",\\201,0,,\r\n')
    ctl("import", "households", path, "--site", "quoted", expect=0)
    assert env.pg.query("SELECT household, building, unit, room, size, phone FROM households"
                        " WHERE site = 'quoted' ORDER BY household") == [
        ("q-1", 'Bldg "A", east', "1", "101", 2, "13800000000"),
        ("q-2", "3号楼", "2,5", "\\201", 0, None)]
    assert env.pg.query("SELECT card, household FROM cards WHERE site = 'quoted' ORDER BY card") \
        == [("Q-1", "q-1"), ("Q-2", "q-1")]


def test_import_malformed(env, ctl, listener):
    good = write(os.path.join(env.dir, "good.csv"), HEADER
                 + "1-1-101,1,1,101,3,13800000001,M-0001;M-0002\n"
                 + "1-1-102,1,1,102,2,,M-0003\n")
    ctl("import", "households", good, "--site", "mal", expect=0)
    assert listener.drain(wait=5) == ["mal"]
    before = register_checksum(env.pg)

    bad = write(os.path.join(env.dir, "bad.csv"), HEADER
                + "1-1-101,1,1,101,4,13800000001,M-0001;M-0002\n"      # 2: fine (an update)
                + "1-1-103,1,1,103,2,13800000003\n"                    # 3: 6 fields
                + ",1,1,104,2,,M-0004\n"                               # 4: empty household
                + "1-1-105,1,1,105,many,,M-0005\n"                     # 5: size
                + "1-1-106,1,1,106,51,,M-0006\n"                       # 6: size out of range
                + "1-1-107,1,1,107,2,1380000,M-0007\n"                 # 7: phone
                + "1-1-1/8,1,1,108,2,,M-0008\n"                        # 8: household id
                + "1-1-109,1,1,109,2,,M 0009\n"                        # 9: card id
                + "1-1-110,1,1,110,2,,M-0001\n"                        # 10: card twice in the file
                + "1-1-111,1,1,111,2,,M-0003\n"                        # 11: card of 1-1-102
                + '1-1-112,1,1,"1"12,2,,M-0012\n'                      # 12: bad quoting
                + "1-1-113,1,1,113,2,,M-0013\n")                       # 13: fine
    p = ctl("import", "households", bad, "--site", "mal", expect=1)
    expected = {
        3: "expected 7 fields",
        4: "empty household",
        5: "size 'many' is not a whole number from 0 to 50",
        6: "size '51' is not a whole number from 0 to 50",
        7: "phone is not 11 digits",
        8: "bad household id '1-1-1/8'",
        9: "bad card id 'M 0009'",
        10: "card M-0001 is also listed on line 2",
        11: "card M-0003 belongs to household 1-1-102",
        12: "text after the closing quote",
    }
    reported = re.findall(r"^(.*bad\.csv):(\d+): (.*)$", p.stderr, re.M)
    assert {int(line) for _, line, _ in reported} == set(expected), p.stderr
    for path, line, reason in reported:
        assert path == bad
        assert expected[int(line)] in reason, (line, reason)
    assert [int(line) for _, line, _ in reported] == sorted(expected)   # in line order
    assert "10 bad rows" in p.stderr and "nothing imported" in p.stderr
    assert "13800000001" not in p.stderr
    assert register_checksum(env.pg) == before
    assert listener.drain(wait=0.5) == []   # rolled back: no notification

    # More than 100 bad rows: the first 100 are listed, the rest counted.
    many = write(os.path.join(env.dir, "many.csv"), HEADER
                 + "".join("h-%d,1,1,1,x,,\n" % i for i in range(150)))
    p = ctl("import", "households", many, "--site", "mal", expect=1)
    assert len(re.findall(r"^.*many\.csv:\d+: ", p.stderr, re.M)) == 100
    assert "50 more bad rows" in p.stderr and "150 bad rows" in p.stderr

    # A wrong header is refused as such.
    hdr = write(os.path.join(env.dir, "header.csv"), "household,building,unit,room,size,phone\n")
    p = ctl("import", "households", hdr, "--site", "mal", expect=1)
    assert "header.csv:1: the header must be exactly " + HEADER.strip() in p.stderr
    assert register_checksum(env.pg) == before


# ---------------------------------------------------------------- register commands

def test_register_commands(env, ctl, listener):
    pg = env.pg
    hh = write(os.path.join(env.dir, "cmd.csv"), HEADER
               + "2-1-101,2,1,101,3,18012341999,K-0001\n2-1-102,2,1,102,1,,K-0002\n")
    ctl("import", "households", hh, "--site", "cmd", expect=0)
    assert listener.drain(wait=5) == ["cmd"]

    def changed(*args):
        """Run a command that must succeed and notify cordond about site cmd."""
        p = ctl(*args, expect=0)
        assert listener.drain(wait=5) == ["cmd"], args
        return p

    # site
    changed("site", "add", "cmd", "--timezone", "Asia/Urumqi")
    assert pg.scalar("SELECT timezone FROM sites WHERE site = 'cmd'") == "Asia/Urumqi"
    p = ctl("site", "add", "cmd2", "--timezone", "Nowhere/Atlantis", expect=1)
    assert "unknown time zone" in p.stderr
    assert pg.count("sites", "site = 'cmd2'") == 0

    # gates
    changed("gate", "add", "cmd", "G01")
    changed("gate", "add", "cmd", "G02", "--sealed", "--format", "hikvision", "--unit", "f")
    assert pg.query("SELECT gate, state, format, unit FROM gates WHERE site = 'cmd' ORDER BY gate") \
        == [("G01", "open", "auto", "c"), ("G02", "sealed", "hikvision", "f")]
    changed("gate", "seal", "cmd", "G01")
    assert pg.scalar("SELECT state FROM gates WHERE site = 'cmd' AND gate = 'G01'") == "sealed"
    changed("gate", "open", "cmd", "G02")
    assert pg.scalar("SELECT state FROM gates WHERE site = 'cmd' AND gate = 'G02'") == "open"
    p = ctl("gate", "add", "cmd", "G01", expect=1)
    assert "already exists" in p.stderr
    p = ctl("gate", "list", "cmd", expect=0)
    lines = [line.split() for line in p.stdout.splitlines()]
    assert lines == [["site", "gate", "state", "format", "unit"],
                     ["cmd", "G01", "sealed", "auto", "c"],
                     ["cmd", "G02", "open", "hikvision", "f"]]
    p = ctl("gate", "list", expect=0)
    assert "G02" in p.stdout
    assert listener.drain() == []   # lists notify nobody

    # zones: without --interval a zone has none of its own (it follows
    # [rules] disinfection_interval, 4h by default)
    p = changed("zone", "add", "cmd", "Z01")
    assert p.stdout == "zone cmd/Z01 added: disinfection every 4h ([rules] disinfection_interval)\n"
    changed("zone", "add", "cmd", "Z02", "--interval", "90m")
    assert pg.query("SELECT zone, interval_s FROM zones WHERE site = 'cmd' ORDER BY zone") \
        == [("Z01", None), ("Z02", 5400)]
    p = ctl("zone", "list", "cmd", expect=0)
    assert [line.split() for line in p.stdout.splitlines()] == \
        [["site", "zone", "interval"], ["cmd", "Z01", "4h", "(default)"], ["cmd", "Z02", "90m"]]

    # cards
    changed("card", "add", "cmd", "K-0100", "--household", "2-1-101", "--extra")
    assert pg.query("SELECT household, state, extra FROM cards WHERE site = 'cmd'"
                    " AND card = 'K-0100'") == [("2-1-101", "active", True)]
    changed("card", "revoke", "cmd", "K-0001")
    assert pg.scalar("SELECT state FROM cards WHERE site = 'cmd' AND card = 'K-0001'") == "revoked"
    p = ctl("card", "add", "cmd", "K-0002", "--household", "2-1-101", expect=1)
    assert "belongs to household 2-1-102" in p.stderr
    p = ctl("card", "add", "cmd", "K-0200", "--household", "9-9-999", expect=1)
    assert "unknown household 9-9-999" in p.stderr
    assert pg.count("cards", "site = 'cmd' AND card = 'K-0200'") == 0
    changed("card", "add", "cmd", "K-0001", "--household", "2-1-101")   # reactivates
    assert pg.scalar("SELECT state FROM cards WHERE site = 'cmd' AND card = 'K-0001'") == "active"

    # isolation: without --check-interval an order has none of its own (it
    # follows [rules] check_interval, 12h by default)
    p = changed("isolate", "cmd", "--household", "2-1-101")
    assert p.stdout.endswith(", a check every 12h ([rules] check_interval)\n"), p.stdout
    changed("isolate", "cmd", "--household", "2-1-102", "--person", "P-7", "--days", "7",
            "--check-interval", "8h")
    rows = pg.query("SELECT household, person, round(extract(epoch FROM ends_at - starts_at)),"
                    " check_interval_s, released_at IS NULL FROM isolation_orders"
                    " WHERE site = 'cmd' ORDER BY id")
    assert rows == [("2-1-101", None, 14 * 86400, None, True),
                    ("2-1-102", "P-7", 7 * 86400, 28800, True)]
    p = ctl("isolate", "cmd", "--household", "2-1-101", expect=1)
    assert "already under isolation order" in p.stderr
    changed("release", "cmd", "--household", "2-1-101")
    assert pg.query("SELECT household, released_at IS NOT NULL FROM isolation_orders"
                    " WHERE site = 'cmd' ORDER BY id") == [("2-1-101", True), ("2-1-102", False)]
    p = ctl("release", "cmd", "--household", "2-1-101", expect=1)
    assert "no active isolation order" in p.stderr
    assert listener.drain(wait=0.5) == []   # failed commands notify nobody


def test_register_defaults_follow_the_config(env, listener):
    """What cordonctl creates without --timezone, --interval or
    --check-interval has no value of its own (NULL): cordond applies the
    config's [site] timezone, [rules] disinfection_interval and [rules]
    check_interval to it (test_config_keys.py sees that in cordond), and
    cordonctl shows the configured value. An operator who sets 6h gets 6h."""
    conf = os.path.join(env.dir, "defaults.conf")
    with open(conf, "w") as f:
        f.write("[postgres]\nconninfo = %s\n[site]\ntimezone = Asia/Urumqi\n"
                "[rules]\ncheck_interval = 6h\ndisinfection_interval = 90m\n" % env.pg.conninfo)

    def ctl(*args):
        p = harness.cordonctl(conf, *args, expect=0)
        assert listener.drain(wait=5) == ["dfl"], args
        return p
    hh = os.path.join(env.dir, "dfl.csv")
    with open(hh, "w") as f:
        f.write(HEADER + "1-1-101,1,1,101,2,,D-0001\n")
    assert ctl("site", "add", "dfl").stdout == \
        "site dfl added (time zone Asia/Urumqi, from [site] timezone)\n"
    ctl("import", "households", hh, "--site", "dfl")
    assert ctl("zone", "add", "dfl", "Z01").stdout == \
        "zone dfl/Z01 added: disinfection every 90m ([rules] disinfection_interval)\n"
    p = ctl("isolate", "dfl", "--household", "1-1-101")
    assert re.fullmatch(r"isolation order \d+: household 1-1-101 \(all\) at site dfl, from "
                        r"\S+ \S+ until \S+ \S+ \(Asia/Urumqi\), a check every 6h "
                        r"\(\[rules\] check_interval\)\n", p.stdout), p.stdout
    assert env.pg.query("SELECT s.timezone, z.interval_s, o.check_interval_s FROM sites s"
                        " JOIN zones z USING (site) JOIN isolation_orders o USING (site)"
                        " WHERE site = 'dfl'") == [(None, None, None)]
    p = harness.cordonctl(conf, "zone", "list", "dfl", expect=0)
    assert p.stdout.splitlines()[1].split() == ["dfl", "Z01", "90m", "(default)"]


# ---------------------------------------------------------------- errors

def test_errors(env, ctl, listener):
    ctl("gate", "add", "err", "G01", expect=0)
    listener.drain(wait=5)
    before = register_checksum(env.pg)

    p = ctl("frobnicate", expect=2)
    assert "unknown command 'frobnicate'" in p.stderr
    ctl(expect=2)                                              # no command
    ctl("gate", expect=2)                                      # no subcommand
    ctl("gate", "add", "err", expect=2)                        # missing gate
    ctl("gate", "add", "err", "G02", "--colour", "red", expect=2)
    ctl("gate", "add", "err", "G02", "--format", "telepathy", expect=2)
    ctl("gate", "add", "err", "G02", "--unit", "r", expect=2)
    ctl("gate", "add", "err", "G 02", expect=2)                # bad id
    ctl("zone", "add", "err", "Z01", "--interval", "soon", expect=2)
    ctl("isolate", "err", expect=2)                            # --household is required
    ctl("isolate", "err", "--household", "h", "--days", "0", expect=2)
    ctl("card", "add", "err", "C-1", expect=2)
    ctl("import", "households", "x.csv", expect=2)             # --site is required
    ctl("import", "cats", "x.csv", "--site", "err", expect=2)

    p = ctl("gate", "seal", "err", "G99", expect=1)
    assert "unknown gate G99 at site err" in p.stderr
    p = ctl("card", "revoke", "err", "C-404", expect=1)
    assert "unknown card C-404" in p.stderr
    p = ctl("import", "households", os.path.join(env.dir, "missing.csv"), "--site", "err",
            expect=1)
    assert "cannot open" in p.stderr and "missing.csv" in p.stderr

    assert register_checksum(env.pg) == before
    assert listener.drain(wait=0.5) == []

    p = ctl("--help", expect=0)
    for command in ("migrate", "site add", "import households", "gate add", "gate seal",
                    "gate open", "gate list", "zone add", "zone list", "card add",
                    "card revoke", "isolate", "release"):
        assert command in p.stdout, command
    p = ctl("migrate", expect=0)
    assert re.fullmatch(r"schema version \d+\n", p.stdout)


def test_bad_config(env):
    bad = os.path.join(env.dir, "bad.conf")
    write(bad, "[postgres]\nconninfo = %s\nfrobs = 3\n" % env.pg.conninfo)
    p = harness.cordonctl(bad, "gate", "list", expect=1)
    assert "bad.conf:3:" in p.stderr
    p = harness.cordonctl(os.path.join(env.dir, "none.conf"), "gate", "list", expect=1)
    assert "cannot open" in p.stderr
    unreachable = harness.cordonctl_config(env.dir, "host=%s port=1 dbname=cordon user=cordon"
                                           % env.dir, name="unreachable.conf")
    p = harness.cordonctl(unreachable, "migrate", expect=1)
    assert "cannot connect to PostgreSQL" in p.stderr


def test_cordond_reloads_on_notify(env, ctl, cordond):
    """A running cordond reloads its register cache after a cordonctl change."""
    d = cordond()
    harness.wait_until(lambda: "register loaded" in d.log(), what="cordond's first register load")
    gates = env.pg.count("gates")
    ctl("gate", "add", "reload", "G01", "--sealed", expect=0)
    harness.wait_until(lambda: re.search(r"register loaded: \d+ sites, %d gates" % (gates + 1),
                                         d.log()),
                       what="cordond reloading the register with %d gates" % (gates + 1))
