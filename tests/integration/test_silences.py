"""Silences and gate maintenance windows (issue 17), the operator's side:
cordonctl silence add/list/expire, gate maintain, and `alerts` showing a
silenced alert as silenced, against a real PostgreSQL (cordonctl applies
the migrations, sql/0010) and, for the alerts, a real broker and cordond.

silence_match(site, kind, subject, at) (sql/0010) is the one definition of
"is this alert silenced", asked here directly for its semantics."""

import datetime
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import threading
from zoneinfo import ZoneInfo

import harness
from harness import gate_event, now_ts, publish_many, wait_until

TZ = "Asia/Shanghai"


def silence_id(out):
    m = re.search(r"silence (\d+)", out)
    assert m, out
    return int(m.group(1))


def match(env, site, kind, subject, at="now()"):
    # `at` is SQL text of this file, never input
    return env.pg.scalar("SELECT silence_match(%%s, %%s, %%s, %s)" % at, (site, kind, subject))


def row(env, sid):
    return env.pg.query("SELECT site, kinds, subject, extract(epoch FROM ends_at - starts_at),"
                        " reason, by_whom, maintenance, expired_at IS NOT NULL"
                        " FROM silences WHERE id = %s", (sid,))[0]


def listed(ctl, *args):
    """silence list --json as a dict by id."""
    return {s["id"]: s for s in json.loads(ctl("silence", "list", *args, "--json").stdout)}


def test_add_list_expire(env, ctl, monkeypatch):
    ctl("site", "add", "sa", "--timezone", TZ)
    ctl("gate", "add", "sa", "G01")
    out = ctl("silence", "add", "sa", "--kind", "fever", "--kind", "unknown_card",
              "--subject", "person:*", "--for", "2h", "--reason", "fire drill",
              "--by", "alice").stdout
    sid = silence_id(out)
    assert "kinds fever,unknown_card, subject person:*" in out, out
    assert row(env, sid) == ("sa", ["fever", "unknown_card"], "person:*", 7200, "fire drill",
                             "alice", False, False)
    # The end it prints is the row's, in the site's time zone.
    ends = env.pg.scalar("SELECT ends_at FROM silences WHERE id = %s", (sid,))
    assert ends.astimezone(ZoneInfo(TZ)).strftime("%Y-%m-%d %H:%M") in out, out

    # --by defaults to $USER; --kind '*' is every kind (kinds NULL).
    monkeypatch.setenv("USER", "bob")
    every = silence_id(ctl("silence", "add", "sa", "--kind", "*", "--for", "30m",
                           "--reason", "network work").stdout)
    assert row(env, every)[:2] == ("sa", None) and row(env, every)[5] == "bob"
    assert row(env, every)[2] is None

    # list: the text table and the JSON.
    text = ctl("silence", "list", "sa").stdout
    lines = text.splitlines()
    assert lines[0].split() == ["id", "site", "kinds", "subject", "starts", "ends", "state",
                                "by", "maintenance", "alerts", "reason"], text
    mine = [l for l in lines[1:] if l.split()[0] == str(sid)]
    assert len(mine) == 1, text
    f = mine[0].split()
    assert f[1:4] == ["sa", "fever,unknown_card", "person:*"], text
    assert f[8:10] == ["active", "alice"] and f[10:12] == ["no", "0"], text
    assert mine[0].endswith("fire drill"), text
    js = listed(ctl, "sa")
    assert set(js) == {sid, every}
    assert js[sid]["kinds"] == ["fever", "unknown_card"] and js[sid]["subject"] == "person:*"
    assert js[sid]["state"] == "active" and js[sid]["maintenance"] is False
    assert js[sid]["alerts"] == 0 and js[sid]["expired_at"] is None
    assert js[every]["kinds"] is None and js[every]["subject"] is None

    # expire: gone from the default list, shown as expired with --all.
    assert "expired" in ctl("silence", "expire", str(sid)).stdout
    assert row(env, sid)[7] is True
    assert sid not in listed(ctl, "sa")
    assert listed(ctl, "sa", "--all")[sid]["state"] == "expired"
    assert listed(ctl, "sa", "--all")[sid]["expired_at"]
    # Expiring again, or an unknown id: exit 1, clear message.
    p = ctl("silence", "expire", str(sid), expect=1)
    assert "already expired" in p.stderr, p.stderr
    p = ctl("silence", "expire", "987654", expect=1)
    assert "no silence 987654" in p.stderr, p.stderr
    # An ended one (its end passed, never expired).
    ended = env.pg.scalar("INSERT INTO silences (site, kinds, starts_at, ends_at, reason)"
                          " VALUES ('sa', '{fever}', now() - interval '2 hours',"
                          " now() - interval '1 hour', 'old') RETURNING id")
    p = ctl("silence", "expire", str(ended), expect=1)
    assert "already ended" in p.stderr, p.stderr
    assert listed(ctl, "sa", "--all")[ended]["state"] == "ended"
    assert ended not in listed(ctl, "sa")


def test_validation(env, ctl):
    ctl("gate", "add", "sv", "G01")
    before = env.pg.count("silences")
    base = ["silence", "add", "sv"]
    cases = [
        (base + ["--kind", "fevre", "--for", "1h", "--reason", "x"], "unknown kind"),
        (base + ["--kind", "*", "--kind", "fever", "--for", "1h", "--reason", "x"], "alone"),
        (base + ["--kind", "fever", "--for", "soon", "--reason", "x"], "--for"),
        (base + ["--kind", "fever", "--for", "31d", "--reason", "x"], "--for"),
        (base + ["--kind", "fever", "--for", "0s", "--reason", "x"], "--for"),
        (base + ["--kind", "fever", "--reason", "x"], "--for is required"),
        (base + ["--kind", "fever", "--for", "1h"], "--reason is required"),
        (base + ["--kind", "fever", "--for", "1h", "--reason", ""], "--reason is required"),
        (base + ["--for", "1h", "--reason", "x"], "--kind or --subject"),
        (base + ["--kind", "fever", "--for", "1h", "--reason", "x", "--start", "tomorrow"],
         "--start"),
        (["silence", "add", "bad site", "--kind", "fever", "--for", "1h", "--reason", "x"],
         "site"),
        (["silence", "expire", "12x"], "silence id"),
        (["gate", "maintain", "sv", "G01"], "--for"),
        (["gate", "maintain", "sv", "G01", "--end", "--for", "1h"], "--end"),
    ]
    for args, msg in cases:
        p = ctl(*args, expect=2)
        assert msg in p.stderr, (args, p.stderr)
    # Looked up: an unknown site or gate is exit 1.
    p = ctl("silence", "add", "nosuchsite", "--kind", "fever", "--for", "1h", "--reason", "x",
            expect=1)
    assert "unknown site nosuchsite" in p.stderr, p.stderr
    # A site cordond raised alerts for without a register of it can be silenced.
    env.pg.query("INSERT INTO alerts (alert_id, site, kind, severity, state, subject, event_key,"
                 " raised_at, updated_at, count) VALUES ('unreg-1', 'unreg', 'unknown_card',"
                 " 'warning', 'raised', 'card:C-1', 'k', now(), now(), 1)")
    unreg = silence_id(ctl("silence", "add", "unreg", "--kind", "unknown_card", "--for", "1h",
                           "--reason", "x").stdout)
    assert match(env, "unreg", "unknown_card", "card:C-1") == unreg
    assert listed(ctl, "unreg")[unreg]["alerts"] == 1
    ctl("silence", "expire", str(unreg))
    p = ctl("gate", "maintain", "sv", "G99", "--for", "1h", expect=1)
    assert "unknown gate G99" in p.stderr, p.stderr
    p = ctl("gate", "maintain", "sv", "G99", "--end", expect=1)
    assert "unknown gate G99" in p.stderr, p.stderr
    # Ending before now.
    p = ctl(*base, "--kind", "fever", "--for", "1h", "--reason", "x",
            "--start", "2020-01-01 08:00", expect=1)
    assert "ended already" in p.stderr, p.stderr
    assert env.pg.count("silences") == before + 1
    # The help names them, and how to silence every kind.
    p = ctl("--help")
    for words in ("silence add S --kind K", "silence list", "silence expire ID",
                  "gate maintain S G --for DURATION", "gate maintain S G --end",
                  "--kind '*' is every kind"):
        assert words in p.stdout, words
    # notify_failed (cordon-notify's own kind) is a kind too.
    ctl(*base, "--kind", "notify_failed", "--for", "1h", "--reason", "receiver down")
    assert env.pg.count("silences") == before + 2


def test_silence_match(env, ctl):
    site = "sm"
    ctl("site", "add", site, "--timezone", TZ)

    def add(*args):
        return silence_id(ctl("silence", "add", site, *args, "--reason", "t",
                              "--by", "op").stdout)

    kinds = add("--kind", "fever", "--kind", "unknown_card", "--for", "1h")
    assert match(env, site, "fever", "person:P-1") == kinds
    assert match(env, site, "unknown_card", "card:C-9") == kinds
    assert match(env, site, "sealed_gate", "gate:G01") is None
    assert match(env, "other", "fever", "person:P-1") is None
    ctl("silence", "expire", str(kinds))
    assert match(env, site, "fever", "person:P-1") is None

    # Globs: * any run, ? one character; _ % and \ are themselves.
    q = add("--subject", "gate:G0?", "--for", "1h")
    assert match(env, site, "gate_silent", "gate:G01") == q
    assert match(env, site, "sealed_gate", "gate:G09") == q
    assert match(env, site, "gate_silent", "gate:G10") is None
    assert match(env, site, "gate_silent", "gate:G011") is None
    assert match(env, site, "gate_silent", "gate:G0") is None
    star = add("--kind", "fever", "--subject", "person:P-*", "--for", "1h")
    assert match(env, site, "fever", "person:P-") == star
    assert match(env, site, "fever", "person:P-123") == star
    assert match(env, site, "fever", "card:P-1") is None
    assert match(env, site, "exit_quota", "person:P-1") is None
    under = add("--subject", "card:A_1", "--for", "1h")
    assert match(env, site, "unknown_card", "card:A_1") == under
    assert match(env, site, "unknown_card", "card:AB1") is None
    pct = add("--subject", "card:50%", "--for", "1h")
    assert match(env, site, "unknown_card", "card:50%") == pct
    assert match(env, site, "unknown_card", "card:500") is None
    assert match(env, site, "unknown_card", "card:50") is None
    bs = add("--subject", "x\\y*", "--for", "1h")
    assert match(env, site, "fever", "x\\yz") == bs
    assert match(env, site, "fever", "xy") is None
    for sid in (q, star, under, pct, bs):
        ctl("silence", "expire", str(sid))

    # A start to come: not in force now, in force from its start.
    start = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    later = add("--kind", "backlog", "--for", "1h",
                "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert match(env, site, "backlog", "x") is None
    assert match(env, site, "backlog", "x", "now() + interval '90 minutes'") == later
    assert match(env, site, "backlog", "x", "now() + interval '150 minutes'") is None
    assert listed(ctl, site)[later]["state"] == "pending"
    # A start without a zone is the site's time.
    local = add("--kind", "backlog", "--for", "1h", "--start", "2099-01-01 08:00")
    assert env.pg.scalar("SELECT starts_at = '2099-01-01 00:00Z' FROM silences WHERE id = %s",
                         (local,)) is True
    # Ended: held nothing after its end (it did before).
    ended = env.pg.scalar("INSERT INTO silences (site, kinds, starts_at, ends_at, reason)"
                          " VALUES (%s, '{call_missed}', now() - interval '2 hours',"
                          " now() - interval '1 hour', 'old') RETURNING id", (site,))
    assert match(env, site, "call_missed", "household:H1") is None
    assert match(env, site, "call_missed", "household:H1", "now() - interval '90 minutes'") \
        == ended

    # Two in force: the one that ends last; once it is expired, the other.
    short = add("--kind", "need_overdue", "--for", "1h")
    long = add("--subject", "need:*", "--for", "3h")
    mid = add("--kind", "need_overdue", "--for", "2h")
    assert match(env, site, "need_overdue", "need:N1") == long
    ctl("silence", "expire", str(long))
    assert match(env, site, "need_overdue", "need:N1") == mid
    ctl("silence", "expire", str(mid))
    assert match(env, site, "need_overdue", "need:N1") == short


def test_gate_maintain(env, ctl):
    site = "sg"
    ctl("gate", "add", site, "G_1")
    ctl("gate", "add", site, "G01")
    out = ctl("gate", "maintain", site, "G_1", "--for", "90m", "--by", "tech").stdout
    sid = silence_id(out)
    assert "under maintenance" in out, out
    assert row(env, sid) == (site, ["gate_silent", "sealed_gate"], "gate:G_1", 5400,
                             "maintenance", "tech", True, False)
    assert match(env, site, "gate_silent", "gate:G_1") == sid
    assert match(env, site, "sealed_gate", "gate:G_1") == sid
    assert match(env, site, "gate_silent", "gate:GX1") is None   # _ is literal
    assert match(env, site, "gate_silent", "gate:G01") is None
    assert match(env, site, "fever", "gate:G_1") is None
    js = listed(ctl, site)[sid]
    assert js["maintenance"] is True and js["reason"] == "maintenance" and js["by"] == "tech"
    other = silence_id(ctl("gate", "maintain", site, "G01", "--for", "1h",
                           "--reason", "new terminal").stdout)
    assert row(env, other)[4] == "new terminal"

    out = ctl("gate", "maintain", site, "G_1", "--end").stdout
    assert "silence %d expired" % sid in out, out
    assert row(env, sid)[7] is True and row(env, other)[7] is False
    assert match(env, site, "gate_silent", "gate:G_1") is None
    p = ctl("gate", "maintain", site, "G_1", "--end", expect=1)
    assert "no maintenance window" in p.stderr, p.stderr


class Follower:
    """`cordonctl alerts --follow` with stdout piped (line mode: the listing
    of `alerts` first); a thread collects its lines."""

    def __init__(self, conffile, *args):
        self.proc = subprocess.Popen([os.environ["CORDONCTL"], "-c", conffile, "alerts",
                                      "--follow"] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        harness._PROCS.add(self.proc)
        self.lines = []
        threading.Thread(target=lambda: [self.lines.append(l.rstrip("\n"))
                                         for l in self.proc.stdout], daemon=True).start()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            harness._PROCS.discard(self.proc)


def test_alerts_show_silenced(env, cordond):
    site = "sx"
    # The register first, so cordond's first load has it.
    reg = harness.cordonctl_config(env.dir, env.pg.conninfo, name="silences.conf")
    harness.cordonctl(reg, "site", "add", site, "--timezone", TZ, expect=0)
    harness.cordonctl(reg, "gate", "add", site, "G01", expect=0)
    harness.cordonctl(reg, "gate", "add", site, "G09", "--sealed", expect=0)
    d = cordond()
    conf = d.conffile
    harness.wait_register_loaded(d)

    def ctl(*args, expect=0):
        # cordond's own config file: [postgres] and [mqtt]
        return harness.cordonctl(conf, *args, expect=expect)
    publish_many(env.broker.port, [
        gate_event(site, "G09", "X-1", card="C-1", person="P-1", temp_c=36.6, ts=now_ts()),
        gate_event(site, "G01", "X-2", card="C-2", person="P-2", temp_c=38.0, ts=now_ts()),
    ])

    def open_ids():
        return dict(env.pg.query("SELECT kind, alert_id FROM alerts WHERE site = %s"
                                 " AND state <> 'resolved'", (site,)))
    wait_until(lambda: set(open_ids()) == {"sealed_gate", "fever"}, timeout=60,
               what=lambda: "sealed_gate and fever open (have %r)" % open_ids())
    ids = open_ids()

    def states():
        out = ctl("alerts", "--site", site).stdout
        return {i: l for l in out.splitlines()[1:] for i in ids.values() if i in l}, out
    lines, out = states()
    assert "silenced" not in out, out

    sid = silence_id(ctl("gate", "maintain", site, "G09", "--for", "2h").stdout)
    ends = env.pg.scalar("SELECT ends_at FROM silences WHERE id = %s", (sid,))
    local = ends.astimezone(ZoneInfo(TZ))
    today = datetime.datetime.now(ZoneInfo(TZ)).date()
    until = local.strftime("%H:%M") if local.date() == today else local.strftime("%Y-%m-%d %H:%M")

    lines, out = states()
    assert "raised (silenced #%d until %s)" % (sid, until) in lines[ids["sealed_gate"]], out
    assert "silenced" not in lines[ids["fever"]], out
    js = {a["alert_id"]: a for a in json.loads(ctl("alerts", "--site", site, "--json").stdout)}
    sil = js[ids["sealed_gate"]]["silenced"]
    assert sil["id"] == sid and sil["reason"] == "maintenance", js
    assert sil["until"] == ends.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert js[ids["sealed_gate"]]["state"] == "raised"
    assert js[ids["fever"]]["silenced"] is None
    assert listed(lambda *a: ctl(*a), site)[sid]["alerts"] == 1

    # alerts --follow starts with the same listing.
    f = Follower(conf, "--site", site)
    try:
        wait_until(lambda: any(ids["sealed_gate"] in l for l in f.lines), timeout=60,
                   what=lambda: "the listing in\n%s" % "\n".join(f.lines))
        held = [l for l in f.lines if ids["sealed_gate"] in l][0]
        assert "(silenced #%d until %s)" % (sid, until) in held, f.lines
        assert f.stop() == 0
    finally:
        if f.proc.poll() is None:
            f.proc.kill()

    # On a terminal: the table puts the silence before the alert's text.
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 300, 0, 0))
    tty = subprocess.Popen([os.environ["CORDONCTL"], "-c", conf, "alerts", "--follow",
                            "--site", site], stdin=slave, stdout=slave,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    harness._PROCS.add(tty)
    os.close(slave)
    screen = bytearray()

    def shown():
        while select.select([master], [], [], 0)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen.extend(chunk)
        text = screen.decode(errors="replace")
        return [l for l in text.split("\n") if ids["sealed_gate"] in l and "silenced #" in l]
    try:
        held = wait_until(shown, timeout=60, what=lambda: "the table in %r" % bytes(screen))[0]
        assert "silenced #%d until %s; " % (sid, until) in held, held
    finally:
        tty.send_signal(signal.SIGTERM)
        try:
            tty.wait(20)
        finally:
            if tty.poll() is None:
                tty.kill()
            harness._PROCS.discard(tty)
            os.close(master)

    # A silence of the fever too: two silenced; the other one's count is its own.
    fsid = silence_id(ctl("silence", "add", site, "--kind", "fever", "--subject", "person:P-?",
                          "--for", "1h", "--reason", "known case, call 13812345678").stdout)
    lines, out = states()
    assert "(silenced #%d until" % fsid in lines[ids["fever"]], out
    js = {a["alert_id"]: a for a in json.loads(ctl("alerts", "--site", site, "--json").stdout)}
    assert js[ids["fever"]]["silenced"]["reason"] == "known case, call 138****5678", js
    assert listed(lambda *a: ctl(*a), site)[fsid]["alerts"] == 1
    assert listed(lambda *a: ctl(*a), site)[fsid]["reason"] == "known case, call 138****5678"
    out = ctl("silence", "list", site).stdout
    assert "known case, call 138****5678" in out and "13812345678" not in out, out

    # Expired: the alert is shown as raised again; it was stored all along.
    ctl("silence", "expire", str(sid))
    lines, out = states()
    assert "silenced" not in lines[ids["sealed_gate"]], out
    assert lines[ids["sealed_gate"]].split()[4] == "raised", out
    js = {a["alert_id"]: a for a in json.loads(ctl("alerts", "--site", site, "--json").stdout)}
    assert js[ids["sealed_gate"]]["silenced"] is None
    assert listed(lambda *a: ctl(*a), site, "--all")[sid]["alerts"] == 0
    ctl("gate", "maintain", site, "G09", "--end", expect=1)
