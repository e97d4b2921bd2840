"""The register as cordond caches it (issue 13, point 8): packed blocks per
site, a NOTIFY naming a site reloads that site's cards only, and what the
lookups return seen from outside: a fever alert carries the household of
its card (registry_card) and that household's building (registry_household);
an unknown or revoked card raises unknown_card, except at a site without
cards. Also the cordon_register_* metrics and the load line.

Order, not time, tells that nothing was raised: the rules see a site's
messages in the order they were published and publish their alerts in that
order, so once the alert of a later message arrives, an earlier message's
alert would have arrived before it. Waits are bounded; nothing is timed.
"""

import json
import os
import urllib.request

import harness
from harness import Collector, free_port, gate_event, publish_many, wait_until

LONG = 120
HEADER = "household,building,unit,room,size,phone,cards\n"
CARD64 = "K" * 64                       # a card id of NORM_ID_MAX bytes
BUILDING_A = "一号楼 Ａ座"              # UTF-8, as the CSV allows
BUILDING_B = "七号楼"


def write_csv(dir, name, rows):
    """rows: [(household, building, [cards])]"""
    path = os.path.join(dir, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER)
        for i, (hh, building, cards) in enumerate(rows):
            f.write("%s,%s,1,%d,2,,%s\n" % (hh, building, 101 + i, ";".join(cards)))
    return path


def metrics(port):
    """{'name': value} of the unlabelled samples on /metrics, {} while it does not answer."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


class Alerts:
    def __init__(self, port, site):
        self.site, self.col = site, Collector(port, "cordon/%s/alert/#" % site)

    def all(self):
        return [json.loads(p) for t, p in self.col.snapshot()]

    def wait(self, kind, pred):
        def found():
            return next((a for a in self.all() if a["kind"] == kind
                         and a["transition"] == "raised" and pred(a)), None)
        return wait_until(found, LONG, what=lambda: "%s on %s (have %r)" % (
            kind, self.site, [(a["kind"], a["subject"]) for a in self.all()]))

    def close(self):
        self.col.close()


def fever(env, site, id, card, person):
    """A 38.9 °C reading with `card`; returns once the broker has it."""
    publish_many(env.broker.port, [gate_event(site, "G01", id, card=card, person=person,
                                              temp_c=38.9)])


def test_lookups_partial_reload_and_metrics(env, cordond):
    conf = harness.cordonctl_config(env.dir, env.pg.conninfo)

    def ctl(*args):
        return harness.cordonctl(conf, *args, expect=0)
    ctl("migrate")
    # The same card id C-1 in two sites, in households of different buildings.
    ctl("import", "households", write_csv(env.dir, "a.csv", [
        ("1-1-101", BUILDING_A, ["C-1", CARD64]),
        ("1-1-102", BUILDING_A, ["C-2"])]), "--site", "rca")
    ctl("import", "households", write_csv(env.dir, "b.csv", [
        ("7-1-101", BUILDING_B, ["C-1"])]), "--site", "rcb")
    ctl("card", "add", "rcb", "C-X", "--household", "7-1-101", "--extra")
    ctl("gate", "add", "rcc", "G01")          # a site with a gate and no cards

    port = free_port()
    d = cordond({"metrics": {"listen": "127.0.0.1:%d" % port}})
    wait_until(lambda: "register loaded" in d.log(), LONG, what="the first register load")
    a, b, c = Alerts(env.broker.port, "rca"), Alerts(env.broker.port, "rcb"), \
        Alerts(env.broker.port, "rcc")
    try:
        # Cards of both sites, a 64-byte id, an extra card: their households
        # and buildings in the fever alerts.
        fever(env, "rca", "A-1", "C-1", "P-A1")
        fever(env, "rca", "A-2", CARD64, "P-A2")
        fever(env, "rcb", "B-1", "C-1", "P-B1")
        fever(env, "rcb", "B-2", "C-X", "P-B2")
        for al, person, hh, building in ((a, "P-A1", "1-1-101", BUILDING_A),
                                         (a, "P-A2", "1-1-101", BUILDING_A),
                                         (b, "P-B1", "7-1-101", BUILDING_B),
                                         (b, "P-B2", "7-1-101", BUILDING_B)):
            f = al.wait("fever", lambda x, p=person: x["subject"] == "person:" + p)
            assert (f["household"], f["building"]) == (hh, building), f
        # An unregistered card where the site has cards raises unknown_card;
        # at a site without cards it does not (the fever after it is the
        # barrier: its alert comes after any of the card's).
        publish_many(env.broker.port, [gate_event("rca", "G01", "A-3", card="C-404", temp_c=36.5)])
        u = a.wait("unknown_card", lambda x: x["subject"] == "card:C-404")
        assert u["household"] is None
        publish_many(env.broker.port, [gate_event("rcc", "G01", "C-1", card="C-404", temp_c=36.5)])
        fever(env, "rcc", "C-2", "C-405", "P-C1")
        f = c.wait("fever", lambda x: x["subject"] == "person:P-C1")
        assert f["household"] is None and f["building"] is None, f
        assert [x for x in c.all() if x["kind"] == "unknown_card"] == []

        # cordonctl revokes C-1 of rca: NOTIFY cordon_register 'rca' reloads
        # rca's cards only; rcb's block is kept, and its C-1 still active.
        loads = d.log().count("register loaded")
        ctl("card", "revoke", "rca", "C-1")
        wait_until(lambda: d.log().count("register loaded") > loads, LONG, what="the reload")
        line = [x for x in d.log().splitlines() if "register loaded" in x][-1]
        assert "the cards of the sites named reloaded" in line, line
        publish_many(env.broker.port, [gate_event("rca", "G01", "A-4", card="C-1", temp_c=36.5)])
        r = a.wait("unknown_card", lambda x: x["subject"] == "card:C-1")
        assert r["gate"] == "G01"
        fever(env, "rcb", "B-3", "C-1", "P-B3")
        f = b.wait("fever", lambda x: x["subject"] == "person:P-B3")
        assert (f["household"], f["building"]) == ("7-1-101", BUILDING_B), f
        assert [x for x in b.all() if x["kind"] == "unknown_card"] == []
        fever(env, "rca", "A-5", "C-2", "P-A5")
        f = a.wait("fever", lambda x: x["subject"] == "person:P-A5")
        assert (f["household"], f["building"]) == ("1-1-102", BUILDING_A), f

        # A NOTIFY without a site reloads everything.
        loads = d.log().count("register loaded")
        env.pg.query("NOTIFY cordon_register")
        wait_until(lambda: d.log().count("register loaded") > loads, LONG, what="the reload")
        line = [x for x in d.log().splitlines() if "register loaded" in x][-1]
        assert "all read" in line, line

        # The metrics of the register in use.
        cards = env.pg.scalar("SELECT count(*) FROM cards")
        households = env.pg.scalar("SELECT count(*) FROM households")
        m = wait_until(lambda: (lambda x: x if x.get("cordon_register_cards") == cards
                                else None)(metrics(port)), LONG, what="cordon_register_cards")
        assert m["cordon_register_households"] == households
        assert m["cordon_register_bytes"] > 0
        assert m["cordon_register_load_seconds"] > 0
    finally:
        for al in (a, b, c):
            al.close()


WRITER = "cordon_writer"


def test_failed_reload_heals(env, cordond):
    """A reload that fails (here: the register's role may not read `cards`
    for a moment) must not lose the change it was for. cordonctl revokes
    C-1 of rfa and NOTIFYs 'rfa'; the reload fails; SELECT is granted back
    without another NOTIFY, and the register thread must try again by
    itself: C-1 then raises unknown_card. It used to log the failure and
    forget the site named, so that C-1 stayed active until rfa changed
    again, later reloads of other sites sharing rfa's stale block. The
    healed reload is a partial one through the real loader (rows streamed,
    blocks sorted and sealed), and rfb's block, shared from the last load,
    still answers."""
    # Sites of their own: the module's env (and its database) is shared with
    # the test above.
    conf = harness.cordonctl_config(env.dir, env.pg.conninfo)

    def ctl(*args):
        return harness.cordonctl(conf, *args, expect=0)
    ctl("migrate")
    ctl("import", "households", write_csv(env.dir, "a.csv", [
        ("1-1-101", BUILDING_A, ["C-1", "C-3"]),
        ("1-1-102", BUILDING_A, ["C-2"])]), "--site", "rfa")
    ctl("import", "households", write_csv(env.dir, "b.csv", [
        ("7-1-101", BUILDING_B, ["C-1"])]), "--site", "rfb")
    # cordond as a role that only reads and writes the tables, so that a
    # privilege can be taken from it and given back.
    env.pg.query("CREATE ROLE %s LOGIN" % WRITER)
    env.pg.query("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO %s" % WRITER)
    conninfo = env.pg.conninfo.replace("user=cordon", "user=" + WRITER)
    assert conninfo != env.pg.conninfo

    d = cordond({"postgres": {"conninfo": conninfo}})
    wait_until(lambda: "register loaded" in d.log(), LONG, what="the first register load")
    a, b = Alerts(env.broker.port, "rfa"), Alerts(env.broker.port, "rfb")
    try:
        env.pg.query("REVOKE SELECT ON cards FROM %s" % WRITER)
        loads = d.log().count("register loaded")
        ctl("card", "revoke", "rfa", "C-1")
        wait_until(lambda: "register reload failed" in d.log(), LONG,
                   what="the reload to fail")
        line = [x for x in d.log().splitlines() if "register reload failed" in x][0]
        assert "cards" in line, line
        assert d.log().count("register loaded") == loads, d.log()

        env.pg.query("GRANT SELECT ON cards TO %s" % WRITER)     # no NOTIFY
        wait_until(lambda: d.log().count("register loaded") > loads, LONG,
                   what="the reload, retried without another NOTIFY")
        line = [x for x in d.log().splitlines() if "register loaded" in x][-1]
        assert "the cards of the sites named reloaded" in line, line
        assert "register reloaded after" in d.log()

        publish_many(env.broker.port, [gate_event("rfa", "G01", "A-1", card="C-1",
                                                  temp_c=36.5)])
        r = a.wait("unknown_card", lambda x: x["subject"] == "card:C-1")
        assert r["gate"] == "G01"
        # The rest of rfa, read again, and rfb, shared from the first load.
        fever(env, "rfa", "A-2", "C-2", "P-A2")
        f = a.wait("fever", lambda x: x["subject"] == "person:P-A2")
        assert (f["household"], f["building"]) == ("1-1-102", BUILDING_A), f
        fever(env, "rfa", "A-3", "C-3", "P-A3")
        f = a.wait("fever", lambda x: x["subject"] == "person:P-A3")
        assert (f["household"], f["building"]) == ("1-1-101", BUILDING_A), f
        fever(env, "rfb", "B-1", "C-1", "P-B1")
        f = b.wait("fever", lambda x: x["subject"] == "person:P-B1")
        assert (f["household"], f["building"]) == ("7-1-101", BUILDING_B), f
        assert [x for x in b.all() if x["kind"] == "unknown_card"] == []
        assert [x["subject"] for x in a.all() if x["kind"] == "unknown_card"
                and x["transition"] == "raised"] == ["card:C-1"]
    finally:
        a.close()
        b.close()
