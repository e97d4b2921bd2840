"""cordon-web's HTTP API (issue 18, docs/web.md) against a real broker,
PostgreSQL, cordond and cordon-web: every /api/ route needs a session,
changes need the CSRF token, JSON and the console's own Origin, the
lock-out, roles and site scope, ack through the broker recorded with the
operator's name, the live stream (SSE), parameters that are SQL, static
files that try to leave the assets, and a broker outage under SSE clients."""

import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.parse

import paho.mqtt.client as mqtt
import psycopg2
import pytest

import harness
from harness import Web, gate_event, now_ts, publish_many, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PASSWORD = "correct horse battery"
LOCKOUT_AFTER = 3


# ---------------------------------------------------------------- HTTP helpers

class Answer:
    def __init__(self, resp, body):
        self.status = resp.status
        self.headers = resp.headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class Client:
    """A browser's side: the session cookie and the CSRF token once logged in."""

    def __init__(self, web):
        self.web = web
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, csrf=True, cookie=True,
                content_type="application/json", raw_body=None):
        h = {"Host": "127.0.0.1:%d" % self.web.port}
        if cookie and self.cookie:
            h["Cookie"] = "cordon_session=" + self.cookie
        if method == "POST":
            if content_type:
                h["Content-Type"] = content_type
            if csrf and self.csrf:
                h["X-CSRF-Token"] = self.csrf
        h.update(headers or {})
        data = raw_body if raw_body is not None else (
            json.dumps(body).encode() if body is not None else
            (b"{}" if method == "POST" else None))
        c = http.client.HTTPConnection("127.0.0.1", self.web.port, timeout=30)
        try:
            c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                c.putheader(k, v)
            if data is not None:
                c.putheader("Content-Length", str(len(data)))
            c.endheaders(data)
            resp = c.getresponse()
            return Answer(resp, resp.read().decode("utf-8", "replace"))
        finally:
            c.close()

    def login(self, name, password=PASSWORD, expect=200):
        a = self.request("POST", "/api/login", {"name": name, "password": password})
        assert expect is None or a.status == expect, a
        if a.status == 200:
            m = re.search(r"cordon_session=([0-9a-f]{64})", a.headers["Set-Cookie"])
            assert m, a.headers["Set-Cookie"]
            self.cookie = m.group(1)
            self.csrf = a.json()["csrf"]
        return a

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)


class Events(threading.Thread):
    """GET /api/events with the client's cookie, read in a thread: events
    as (name, data) in self.events; self.closed once the stream ended."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.events = []
        self.comments = 0
        self.closed = threading.Event()
        self.status = None
        self.headers = None
        self.lock = threading.Lock()
        self.conn = http.client.HTTPConnection("127.0.0.1", client.web.port, timeout=60)
        self.conn.connect()
        self.sock = self.conn.sock
        self.conn.request("GET", "/api/events",
                          headers={"Cookie": "cordon_session=" + client.cookie})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers
        assert self.status == 200, (self.status, self.resp.read())
        self.start()

    def run(self):
        name, data = None, []
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\r\n")
                if line == "":
                    if data or name:
                        with self.lock:
                            self.events.append((name or "message", "\n".join(data)))
                    name, data = None, []
                elif line.startswith(":"):
                    self.comments += 1
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            self.closed.set()

    def find(self, pred):
        with self.lock:
            for name, data in self.events:
                if name == "alert":
                    a = json.loads(data)
                    if pred(a):
                        return a
        return None

    def wait_alert(self, pred, what="an alert event"):
        return wait_until(lambda: self.find(pred), timeout=30, what=what)

    def snapshot(self):
        with self.lock:
            for name, data in self.events:
                if name == "snapshot":
                    return json.loads(data)
        return None

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def web(env):
    conf = harness.cordonctl_config(env.dir, env.pg.conninfo)
    pwfile = os.path.join(env.dir, "pw")
    with open(pwfile, "w") as f:
        f.write(PASSWORD + "\n")

    def ctl(*args, expect=0):
        return harness.cordonctl(conf, *args, expect=expect)
    ctl("migrate")
    for site in ("s1", "s2"):
        ctl("site", "add", site, "--timezone", "Asia/Shanghai")
        ctl("gate", "add", site, "G01")
    ctl("operator", "add", "duty", "--password-file", pwfile)
    ctl("operator", "add", "watcher", "--role", "viewer", "--password-file", pwfile)
    ctl("operator", "add", "wang", "--site", "s2", "--password-file", pwfile)
    for n in ("locky", "locky2"):
        ctl("operator", "add", n, "--password-file", pwfile)
    d = env.cordond()
    wait_until(lambda: "register loaded" in d.log(), what="cordond loading the register")
    since = env.broker.log_size()
    # Its own page, not the console's (web/): these tests need to know the files.
    assets = os.path.join(env.dir, "api-assets")
    os.makedirs(assets)
    with open(os.path.join(assets, "index.html"), "w") as f:
        f.write("<!doctype html><title>cordon</title><script src=app.js></script>\n")
    with open(os.path.join(assets, "app.js"), "w") as f:
        f.write("// the console\n")
    w = Web(env.dir, env.broker.port, env.pg.conninfo,
            {"web": {"lockout_after": str(LOCKOUT_AFTER), "lockout_time": "10m",
                     "assets_dir": assets}})
    env.daemons.append(w)
    w.start()
    w.wait_ready(env.broker, since)
    w.ctl = ctl
    w.cordond = d
    yield w


def fever(env, site, eid, temp=38.6, person=None):
    publish_many(env.broker.port, [gate_event(site, "G01", eid, card="C-" + eid,
                                              person=person or "P-" + eid, temp_c=temp,
                                              ts=now_ts())])


def open_alert(env, site, person):
    def row():
        r = env.pg.query("SELECT alert_id FROM alerts WHERE site = %s AND subject = %s"
                         " AND state <> 'resolved'", (site, "person:" + person))
        return r[0][0] if r else None
    return wait_until(row, timeout=30, what="the fever alert of %s at %s" % (person, site))


# ---------------------------------------------------------------- the routes

def routes_in_code():
    with open(os.path.join(ROOT, "src", "web_api.c")) as f:
        text = f.read()
    table = text[text.index("const struct web_route web_routes[]"):]
    return sorted(set(re.findall(r'\{ "(GET|POST)", "(/api/[^"]*)"', table)))


def routes_in_docs():
    with open(os.path.join(ROOT, "docs", "web.md")) as f:
        text = f.read()
    found = set()
    for method, path in re.findall(r"`(GET|POST) (/api/[^` ]*)`", text):
        path = "/".join("*" if re.fullmatch(r"[A-Z]+", seg) else seg for seg in path.split("/"))
        found.add((method, path))
    return sorted(found)


def concrete(path):
    return path.replace("*", "x1")


def test_routes_are_documented(web):
    code = routes_in_code()
    assert len(code) >= 19, code
    assert code == routes_in_docs()


def test_every_route_needs_a_session(web):
    anon = Client(web)
    for method, path in routes_in_code():
        if path == "/api/login":
            continue
        a = anon.request(method, concrete(path))
        assert a.status == 401 and a.json()["error"] == "login_required", (method, path, a)
        assert a.headers["Cache-Control"] == "no-store"
        # A made-up cookie is no session either.
        anon.cookie = "0" * 64
        a = anon.request(method, concrete(path))
        assert a.status == 401, (method, path, a)
        anon.cookie = None
    assert anon.get("/api/nothing").status == 404
    assert anon.get("/healthz").status == 200


# ---------------------------------------------------------------- login

def test_login_cookie_and_headers(web, env):
    c = Client(web)
    a = c.login("duty")
    cookie = a.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie, cookie
    assert "Secure" not in cookie  # [web] secure_cookies is off here
    body = a.json()
    assert body["name"] == "duty" and body["role"] == "operator" and body["sites"] == []
    assert re.fullmatch(r"[0-9a-f]{64}", body["csrf"])
    me = c.get("/api/me")
    assert me.status == 200 and me.json() == body
    for ans in (me, c.get("/")):
        assert "default-src 'self'" in ans.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in ans.headers["Content-Security-Policy"]
        assert ans.headers["X-Content-Type-Options"] == "nosniff"
        assert ans.headers["Referrer-Policy"] == "no-referrer"
    assert me.headers["Cache-Control"] == "no-store"
    assert me.headers["Content-Type"].startswith("application/json")
    # Only the token's hash is stored.
    hashes = [bytes(r[0]).hex() for r in env.pg.query(
        "SELECT token_hash FROM web_sessions WHERE operator = 'duty'")]
    assert hashes and c.cookie not in hashes
    # Logout ends the session.
    assert c.post("/api/logout").status == 204
    assert c.get("/api/me").status == 401


def test_session_ends(web, env):
    """Idle too long, past its lifetime, or its operator replaced: 401."""
    c = Client(web)
    c.login("duty")
    assert c.get("/api/me").status == 200
    env.pg.query("UPDATE web_sessions SET seen_at = now() - interval '61 minutes'"
                 " WHERE operator = 'duty'")
    assert c.get("/api/me").status == 401  # [web] idle_timeout 1h
    c.login("duty")
    env.pg.query("UPDATE web_sessions SET expires_at = now() - interval '1 second'"
                 " WHERE operator = 'duty'")
    assert c.get("/api/me").status == 401  # session_ttl
    c.login("duty")
    web.ctl("operator", "add", "locky2", "--role", "viewer", "--password-file",
            os.path.join(env.dir, "pw"))
    c2 = Client(web)
    c2.login("locky2")
    assert c2.get("/api/me").json()["role"] == "viewer"
    web.ctl("operator", "add", "locky2", "--password-file", os.path.join(env.dir, "pw"))
    assert c2.get("/api/me").status == 401  # replaced: logged out everywhere
    assert c.get("/api/me").status == 200   # others stay


def test_bad_login_and_lockout(web, env):
    c = Client(web)
    a = c.login("nobody-here", "whatever1", expect=401)
    assert a.json()["error"] == "bad_login"
    wrong = c.login("duty", "not the password", expect=401)
    assert wrong.json() == a.json()  # the same answer for both
    c.login("duty")  # a success resets the count
    for i in range(LOCKOUT_AFTER):
        c.login("locky", "wrong password %d" % i, expect=401)
    a = c.login("locky", PASSWORD, expect=429)
    assert a.json()["error"] == "locked"
    assert 0 < int(a.headers["Retry-After"]) <= 600
    # A name that is nobody's locks the same way (nothing tells them apart).
    for i in range(LOCKOUT_AFTER):
        c.login("ghost", "wrong password", expect=401)
    c.login("ghost", "wrong password", expect=429)
    out = web.ctl("operator", "unlock", "locky").stdout
    assert "unlocked" in out
    c.login("locky")
    assert env.pg.count("web_lockouts", "name = 'locky'") == 0


def test_lockout_holds_against_logins_at_once(web, env):
    """Ten wrong logins of one name at once all pass the first lock-out
    check before any fails: exactly LOCKOUT_AFTER are counted and answered
    401, the rest 429, and the name stays locked (the failures still under
    way neither count on nor lift the lock), the right password too."""
    web.ctl("operator", "add", "racer", "--password-file", os.path.join(env.dir, "pw"))
    answers = []

    def one(i):
        answers.append(Client(web).login("racer", "wrong password %d" % i,
                                         expect=None).status)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(answers) == [401] * LOCKOUT_AFTER + [429] * (10 - LOCKOUT_AFTER), answers
    a = Client(web).login("racer", PASSWORD, expect=429)
    assert a.json()["error"] == "locked"
    rows = env.pg.query("SELECT locked_until > now() FROM web_lockouts WHERE name = 'racer'")
    assert rows == [(True,)], rows
    web.ctl("operator", "unlock", "racer")
    Client(web).login("racer")


def test_login_flood_is_bounded(web):
    """Ten logins at once: at most two Argon2id checks (64 MiB each) run
    together, so the peak memory stays far under ten times 64 MiB; each
    still gets its answer."""
    answers = []

    def one(i):
        answers.append(Client(web).login("flood%d" % i, "wrong password", expect=401).status)
    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    took = time.monotonic() - t0
    assert answers == [401] * 10
    with open("/proc/%d/status" % web.proc.pid) as f:
        hwm = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) // 1024
    print("10 logins at once: %.1f s; cordon-web's peak memory %d MiB" % (took, hwm))
    assert hwm < 400, hwm  # 10 checks at once would be over 640 MiB
    c = Client(web)
    t0 = time.monotonic()
    c.login("duty")
    print("one login: %.0f ms" % ((time.monotonic() - t0) * 1000))


# ---------------------------------------------------------------- CSRF

def test_changes_need_csrf_json_and_origin(web, env):
    c = Client(web)
    c.login("duty")
    fever(env, "s1", "CS-1", person="P-CS1")
    aid = open_alert(env, "s1", "P-CS1")
    path = "/api/alerts/%s/ack" % aid
    a = c.post(path, {"note": "x"}, csrf=False)
    assert a.status == 403 and a.json()["error"] == "csrf", a
    a = c.post(path, {"note": "x"}, headers={"X-CSRF-Token": "0" * 64})
    assert a.status == 403 and a.json()["error"] == "csrf", a
    a = c.post(path, {"note": "x"}, headers={"Origin": "http://evil.example"})
    assert a.status == 403 and a.json()["error"] == "csrf", a
    a = c.post(path, raw_body=b"note=x", content_type="application/x-www-form-urlencoded")
    assert a.status == 415 and a.json()["error"] == "json_required", a
    a = c.post(path, raw_body=b"note=x", content_type="text/plain")
    assert a.status == 415, a
    # Login too refuses another origin and a form.
    anon = Client(web)
    a = anon.request("POST", "/api/login", {"name": "duty", "password": PASSWORD},
                     headers={"Origin": "http://evil.example"})
    assert a.status == 403
    a = anon.request("POST", "/api/login", raw_body=b"name=duty",
                     content_type="application/x-www-form-urlencoded")
    assert a.status == 415
    # Nothing was published: no ack row.
    assert env.pg.count("acks", "alert_id = %s", (aid,)) == 0
    # A body over 16 KiB.
    a = c.post(path, raw_body=b'{"note":"' + b"x" * 20000 + b'"}')
    assert a.status == 413, a
    # The same request, right: accepted (and the own Origin is fine).
    a = c.post(path, {"note": "seen"}, headers={"Origin": "http://127.0.0.1:%d" % web.port})
    assert a.status == 202, a


# ---------------------------------------------------------------- ack, SSE

def test_ack_through_the_broker_and_live(web, env):
    duty, viewer = Client(web), Client(web)
    duty.login("duty")
    viewer.login("watcher")
    ev = Events(duty)
    try:
        assert ev.status == 200
        assert ev.headers["Content-Type"].startswith("text/event-stream")
        wait_until(ev.snapshot, what="the snapshot")
        with harness.Collector(env.broker.port, "cordon/s1/alert/+") as col:
            t0 = time.monotonic()
            fever(env, "s1", "LV-1", person="P-LV1")
            raised = ev.wait_alert(lambda a: a["subject"] == "person:P-LV1"
                                   and a["transition"] == "raised", "the raise, live")
            latency = time.monotonic() - t0
            print("publish -> SSE event: %.0f ms" % (latency * 1000))
            assert raised["kind"] == "fever" and raised["site"] == "s1"
            assert raised["silenced"] is None and raised["timezone"] == "Asia/Shanghai"
            assert raised["texts"]["en"]["label"] and raised["texts"]["zh-CN"]["what"]
            aid = raised["alert_id"]

            a = viewer.post("/api/alerts/%s/ack" % aid, {"note": "no"})
            assert a.status == 403 and a.json()["error"] == "forbidden", a
            a = duty.post("/api/alerts/%s/ack" % aid, {"note": "called 13812345678"})
            assert a.status == 202 and a.json() == {"alert_id": aid, "action": "ack"}, a

            acked = ev.wait_alert(lambda a: a["alert_id"] == aid and a["transition"] == "acked",
                                  "the ack, live")
            assert acked["by"] == "duty"
            col.wait_for(lambda t, p: json.loads(p).get("transition") == "acked"
                         and json.loads(p)["alert_id"] == aid and json.loads(p)["by"] == "duty")
        wait_until(lambda: env.pg.query("SELECT state FROM alerts WHERE alert_id = %s",
                                        (aid,))[0][0] == "acked", what="acked in PostgreSQL")
        rows = env.pg.query("SELECT by_whom, action, note FROM acks WHERE alert_id = %s", (aid,))
        assert rows == [("duty", "ack", "called 13812345678")], rows
        detail = duty.get("/api/alerts/" + aid).json()
        assert detail["alert"]["state"] == "acked" and detail["alert"]["by"] == "duty"
        assert [t["transition"] for t in detail["transitions"]] == ["raised", "acked"]
        assert detail["acks"][0]["by"] == "duty"
        assert "13812345678" not in json.dumps(detail)  # the note's phone is masked

        # Open alerts: the broker's retained state (with the ack in it) and
        # PostgreSQL's, merged.
        listed = duty.get("/api/alerts").json()
        assert listed["source"] == "broker+database"
        mine = [a for a in listed["alerts"] if a["alert_id"] == aid]
        assert mine and mine[0]["state"] == "acked"

        # A silence shows.
        web.ctl("silence", "add", "s1", "--kind", "fever", "--for", "1h", "--reason", "drill",
                "--by", "duty")
        a = [x for x in duty.get("/api/alerts").json()["alerts"] if x["alert_id"] == aid][0]
        assert a["silenced"] and a["silenced"]["id"] > 0 and a["silenced"]["until"]

        a = duty.post("/api/alerts/%s/resolve" % aid, {"note": "rechecked"})
        assert a.status == 202, a
        ev.wait_alert(lambda a: a["alert_id"] == aid and a["transition"] == "resolved",
                      "the resolve, live")
        wait_until(lambda: not any(x["alert_id"] == aid
                                   for x in duty.get("/api/alerts").json()["alerts"]),
                   what="the resolved alert gone from the open ones")
        wait_until(lambda: env.pg.query("SELECT state FROM alerts WHERE alert_id = %s",
                                        (aid,))[0][0] == "resolved",
                   what="resolved in PostgreSQL")
        a = duty.post("/api/alerts/%s/ack" % aid, {})
        assert a.status == 404
    finally:
        ev.close()


def test_ack_of_a_raise_seen_live_before_its_row(web, env):
    """cordond publishes a raise as it judges it and stores it with its next
    batch: a raise the live page shows may not be in PostgreSQL yet. Its ack
    is taken all the same (the broker's retained state names its site), not
    a 404. A SHARE lock on `alerts` holds cordond's write while the ack is
    posted; the reads of cordon-web go on."""
    duty = Client(web)
    duty.login("duty")
    ev = Events(duty)
    dba = psycopg2.connect(env.pg.conninfo)
    try:
        wait_until(ev.snapshot, what="the snapshot")
        dba.cursor().execute("LOCK TABLE alerts IN SHARE MODE")
        fever(env, "s1", "EARLY-1", person="P-EARLY1")
        raised = ev.wait_alert(lambda a: a["subject"] == "person:P-EARLY1"
                               and a["transition"] == "raised", "the raise, live")
        aid = raised["alert_id"]
        assert env.pg.query("SELECT 1 FROM alerts WHERE alert_id = %s", (aid,)) == []
        a = duty.post("/api/alerts/%s/ack" % aid, {"note": "on my way"})
        assert a.status == 202 and a.json() == {"alert_id": aid, "action": "ack"}, a
        ev.wait_alert(lambda a: a["alert_id"] == aid and a["transition"] == "acked",
                      "the ack, live")
    finally:
        dba.rollback()
        dba.close()
        ev.close()
    wait_until(lambda: env.pg.query("SELECT state, by_whom FROM alerts WHERE alert_id = %s",
                                    (aid,)) == [("acked", "duty")], what="acked in PostgreSQL")


# ---------------------------------------------------------------- site scope

def test_ack_twice_then_after_resolve(web, env):
    """A double click (two acks) is harmless: both taken, one transition.
    An ack or resolve of an alert resolved already says so (404); the note
    keeps its emoji and quotes, its digits masked on the way out."""
    c = Client(web)
    c.login("duty")
    fever(env, "s1", "DC-1", person="P-DC1")
    aid = open_alert(env, "s1", "P-DC1")
    note = "door 3\nleft open \U0001F600 \"13800138000\" </script>"
    for _ in range(2):
        a = c.post("/api/alerts/%s/ack" % aid, {"note": note})
        assert a.status == 202, a
    wait_until(lambda: env.pg.count("acks", "alert_id = %s", (aid,)) == 2, what="two acks")
    acked = env.pg.query("SELECT count(*) FROM alert_transitions WHERE alert_id = %s"
                         " AND transition = 'acked'", (aid,))
    assert acked == [(1,)], acked
    acks = c.get("/api/alerts/" + aid).json()["acks"]
    assert all("\U0001F600" in x["note"] and "138****8000" in x["note"] for x in acks), acks
    assert c.post("/api/alerts/%s/resolve" % aid, {}).status == 202
    wait_until(lambda: env.pg.query("SELECT state FROM alerts WHERE alert_id = %s",
                                    (aid,))[0][0] == "resolved", what="the alert resolved")
    for step in ("ack", "resolve"):
        a = c.post("/api/alerts/%s/%s" % (aid, step), {})
        assert a.status == 404 and "resolved already" in a.json()["message"], a
    # Another site's operator learns nothing more than before.
    wang = Client(web)
    wang.login("wang")
    a = wang.post("/api/alerts/%s/ack" % aid, {})
    assert a.status == 404 and "resolved" not in a.json()["message"], a


def test_retained_state_must_match_its_topic(web, env):
    """Whoever may write the broker's retained alerts: a state whose own
    alert_id or site is not its topic's, or not a string, is not shown
    (an s1 topic cannot put an alert before s2's operators), and nothing
    of it crashes cordon-web."""
    def state(site, aid, **kw):
        a = {"alert_id": aid, "site": site, "state": "open", "severity": "critical",
             "kind": "fever", "subject": "person:RT", "raised_at": now_ts()}
        a.update(kw)
        return json.dumps(a).encode()
    bad = [("cordon/s1/alerts/rt-site", state("s2", "rt-site")),
           ("cordon/s1/alerts/rt-id", state("s1", "rt-other")),
           ("cordon/s1/alerts/rt-null", state("s1", None)),
           ("cordon/s1/alerts/rt-num", state(5, "rt-num")),
           ("cordon/s1/alerts/rt-list", b"[1, 2]"),
           ("cordon/s1/alerts/rt-deep", b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}")]
    good = [("cordon/s1/alerts/rt-ok", state("s1", "rt-ok"))]
    publish_many(env.broker.port, bad + good, retain=True)
    try:
        duty, wang = Client(web), Client(web)
        duty.login("duty")
        wang.login("wang")

        def ids(c):
            d = c.get("/api/alerts").json()
            return d["source"], {a["alert_id"] for a in d["alerts"]}
        src, got = wait_until(lambda: ids(duty) if "rt-ok" in ids(duty)[1] else None,
                              what="the retained rt-ok")
        assert src == "broker+database"
        assert not got & {"rt-site", "rt-id", "rt-other", "rt-null", "rt-num", None}, got
        assert "rt-site" not in ids(wang)[1]
        assert web.alive()
    finally:
        publish_many(env.broker.port, [(t, b"") for t, _ in bad + good], retain=True)


def test_open_alerts_merge_broker_and_database(web, env):
    """A clustered broker (ejabberd) keeps a retained message only on the node
    that received it, so the node cordon-web reads may hold some open alerts
    and not others: the list and the live snapshot merge PostgreSQL's open
    alerts with the broker's state, whose copy of an alert wins."""
    def state(aid, st):
        return json.dumps({"alert_id": aid, "site": "s1", "state": st, "severity": "critical",
                           "kind": "fever", "subject": "person:MG", "raised_at": now_ts()}
                          ).encode()
    env.pg.query("INSERT INTO alerts (alert_id, site, kind, severity, state, subject,"
                   " event_key, raised_at, updated_at, count)"
                   " VALUES ('mg-db-only', 's1', 'fever', 'critical', 'raised', 'person:MG1',"
                   " 's1/G1/mg1', now(), now(), 1),"
                   " ('mg-both', 's1', 'fever', 'critical', 'raised', 'person:MG2',"
                   " 's1/G1/mg2', now(), now(), 1)")
    retained = [("cordon/s1/alerts/mg-broker-only", state("mg-broker-only", "raised")),
                ("cordon/s1/alerts/mg-both", state("mg-both", "acked"))]
    publish_many(env.broker.port, retained, retain=True)
    try:
        c = Client(web)
        c.login("duty")

        def listed():
            d = c.get("/api/alerts").json()
            return d["source"], {a["alert_id"]: a["state"] for a in d["alerts"]}
        src, got = wait_until(lambda: listed() if "mg-broker-only" in listed()[1] else None,
                              what="the retained mg-broker-only")
        assert src == "broker+database"
        assert got["mg-db-only"] == "raised", "an alert only PostgreSQL has is listed"
        assert got["mg-both"] == "acked", "the broker's copy wins"
        ev = Events(c)
        snap = wait_until(ev.snapshot, what="the snapshot")
        ids = {a["alert_id"] for a in snap["alerts"]}
        assert {"mg-db-only", "mg-broker-only", "mg-both"} <= ids, ids
        ev.close()
    finally:
        publish_many(env.broker.port, [(t, b"") for t, _ in retained], retain=True)
        env.pg.query("DELETE FROM alerts WHERE alert_id LIKE 'mg-%'")


def test_transition_must_match_its_topic(web, env):
    """A transition on s1's topic that says it is s2's does not reach s2's
    operators (nor anybody's): the stream takes the topic's site."""
    def tr(site, aid):
        return json.dumps({"alert_id": aid, "site": site, "state": "open", "kind": "fever",
                           "severity": "critical", "subject": "person:TM",
                           "transition": "raised", "raised_at": now_ts()}).encode()
    wang, duty = Client(web), Client(web)
    wang.login("wang")
    duty.login("duty")
    ew, ed = Events(wang), Events(duty)
    try:
        wait_until(lambda: ew.snapshot() and ed.snapshot(), what="the snapshots")
        publish_many(env.broker.port, [("cordon/s1/alert/fever", tr("s2", "tm-forged")),
                                       ("cordon/s1/alert/fever", b'{"site":5}'),
                                       ("cordon/s1/alert/fever", b"[1]"),
                                       ("cordon/s2/alert/fever", tr("s2", "tm-real"))])
        ew.wait_alert(lambda a: a["alert_id"] == "tm-real", "the real s2 transition")
        ed.wait_alert(lambda a: a["alert_id"] == "tm-real", "the real s2 transition")
        assert ew.find(lambda a: a["alert_id"] == "tm-forged") is None
        assert ed.find(lambda a: a["alert_id"] == "tm-forged") is None
    finally:
        ew.close()
        ed.close()


def test_live_stream_is_use_of_its_session(web, env):
    """A duty desk that watches the live alerts for hours without a click
    stays logged in (the open stream renews its session), and a stream
    whose session ended (its operator removed) is closed: no alerts go on
    flowing to a removed operator."""
    pw = os.path.join(env.dir, "pw")
    web.ctl("operator", "add", "streamer", "--password-file", pw)
    c = Client(web)
    c.login("streamer")
    ev = Events(c)
    try:
        wait_until(ev.snapshot, what="the snapshot")
        # 55 minutes without a click: idle for most of [web] idle_timeout
        # (1 h), not past it, so cordon-web's sweep of idle sessions must
        # leave it (past it, the sweep may delete it before the stream's next
        # renewal, every 15 s, comes: that is the sweep's job). Renewed, it
        # is seen again now.
        env.pg.query("UPDATE web_sessions SET seen_at = now() - interval '55 minutes'"
                     " WHERE operator = 'streamer'")
        wait_until(lambda: env.pg.query(
            "SELECT seen_at > now() - interval '1 minute' FROM web_sessions"
            " WHERE operator = 'streamer'") == [(True,)], timeout=45,
            what="the session renewed by its open stream")
        assert c.get("/api/me").status == 200
        web.ctl("operator", "remove", "streamer")
        assert ev.closed.wait(45), "the removed operator's stream still open"
    finally:
        ev.close()
    assert c.get("/api/me").status == 401


def test_site_scope(web, env):
    fever(env, "s1", "SC-1", person="P-SC1")
    fever(env, "s2", "SC-2", person="P-SC2")
    a1 = open_alert(env, "s1", "P-SC1")
    a2 = open_alert(env, "s2", "P-SC2")
    wang = Client(web)
    body = wang.login("wang").json()
    assert body["sites"] == ["s2"]
    for q in ("/api/alerts", "/api/alerts?state=all"):
        ids = {a["alert_id"] for a in wang.get(q).json()["alerts"]}
        assert a2 in ids and a1 not in ids, q
        assert all(a["site"] == "s2" for a in wang.get(q).json()["alerts"])
    assert wang.get("/api/alerts/" + a1).status == 403
    assert wang.get("/api/alerts/" + a2).status == 200
    assert wang.get("/api/alerts?state=all&site=s1").status == 403
    assert wang.post("/api/alerts/%s/ack" % a1, {}).status == 403
    assert [s["site"] for s in wang.get("/api/sites").json()["sites"]] == ["s2"]
    assert wang.get("/api/households/s1/1-1-101").status == 403
    assert wang.get("/api/gates?site=s1").status == 403
    assert wang.get("/api/report?site=s1").status == 403
    ev = Events(wang)
    try:
        snap = wait_until(ev.snapshot, what="wang's snapshot")
        assert {a["site"] for a in snap["alerts"]} <= {"s2"}
        fever(env, "s1", "SC-3", person="P-SC3")
        fever(env, "s2", "SC-4", person="P-SC4")
        ev.wait_alert(lambda a: a["subject"] == "person:P-SC4", "s2's alert")
        assert ev.find(lambda a: a["site"] != "s2") is None
    finally:
        ev.close()
    everyone = Client(web)
    everyone.login("duty")
    ids = {a["alert_id"] for a in everyone.get("/api/alerts").json()["alerts"]}
    assert {a1, a2} <= ids


# ---------------------------------------------------------------- parameters

INJECTIONS = ["s1' OR '1'='1", "s1; DROP TABLE alerts; --", "x\") OR 1=1 --", "%", "s1%00",
              "' UNION SELECT pwhash FROM operators --"]


def test_parameters_are_not_sql(web, env):
    c = Client(web)
    c.login("duty")
    fever(env, "s1", "IN-1", person="P-IN1")
    open_alert(env, "s1", "P-IN1")
    before = env.pg.count("alerts")
    assert before > 0
    for bad in INJECTIONS:
        q = urllib.parse.quote(bad)
        for name in ("site", "kind"):
            a = c.get("/api/alerts?state=all&%s=%s" % (name, q))
            assert a.status == 400 and a.json()["error"] == "bad_request", (name, bad, a)
        for name in ("from", "to"):
            a = c.get("/api/alerts?state=all&%s=%s" % (name, q))
            assert a.status == 400, (name, bad, a)
        a = c.get("/api/alerts?state=all&subject=%s" % q)
        assert a.status == 200 and a.json()["total"] == 0, (bad, a)
        for path in ("/api/gates?site=%s", "/api/zones?date=%s", "/api/volunteers?site=%s",
                     "/api/report?site=s1&date=%s"):
            assert c.get(path % q).status == 400, (path, bad)
        assert c.get("/api/alerts/%s" % q).status in (400, 404)
        assert c.get("/api/alerts?state=all&limit=%s" % q).status == 400
    assert c.get("/api/alerts?state=all&limit=501").status == 400
    assert c.get("/api/alerts?state=all&from=2026-02-30").status == 400
    assert c.get("/api/alerts?state=bogus").status == 400
    a = c.get("/api/alerts?state=all&subject=P-IN1&limit=5").json()
    assert a["total"] >= 1 and all("P-IN1" in x["subject"] for x in a["alerts"])
    assert env.pg.count("alerts") == before
    assert env.pg.count("operators") >= 5


def test_parameter_not_utf8_is_400(web, env):
    """A subject that is not UTF-8 is the caller's mistake (400), not a
    PostgreSQL outage (503), and the connection it used still works."""
    c = Client(web)
    c.login("duty")
    for q in ("%FF%FE", "a%C3", "%ED%A0%80"):
        a = c.get("/api/alerts?state=all&subject=" + q)
        assert a.status == 400 and a.json()["error"] == "bad_request", (q, a)
    a = c.get("/api/alerts?state=all&subject=%E4%BD%93")
    assert a.status == 200, a
    assert Client(web).get("/healthz").json()["postgres"] is True


def test_libmicrohttpd_messages_are_one_line(web):
    """A request over the 64 KiB a connection may use is refused by
    libmicrohttpd (431), which says so in the log: one line, not a line
    and an empty one (its messages end in a newline)."""
    before = len(web.log())
    s = socket.create_connection(("127.0.0.1", web.port), timeout=30)
    try:
        s.sendall(b"GET /api/me HTTP/1.1\r\nHost: x\r\nCookie: a=" + b"x" * 70000 + b"\r\n\r\n")
        try:
            s.recv(4096)
        except OSError:
            pass
    finally:
        s.close()
    wait_until(lambda: "Request too big" in web.log()[before:], what="libmicrohttpd's message")
    new = web.log()[before:]
    assert "\n\n" not in new, new
    assert all(re.match(r"\d{4}-\d\d-\d\dT", line) for line in new.splitlines() if line), new


# ---------------------------------------------------------------- static files

@pytest.mark.parametrize("path", ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                                  "/..%2f..%2fetc%2fpasswd", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                                  "/.%2e/.%2e/etc/passwd", "/app.js/../../../etc/passwd",
                                  "/..\\..\\etc\\passwd", "//etc/passwd", "/.hidden"])
def test_path_traversal_refused(web, path):
    a = Client(web).get(path)
    assert a.status in (400, 404), (path, a)
    assert "root:" not in a.body


def test_static_files(web):
    c = Client(web)
    a = c.get("/")
    assert a.status == 200 and a.headers["Content-Type"].startswith("text/html")
    a = c.get("/app.js")
    assert a.status == 200 and a.headers["Content-Type"].startswith("text/javascript")
    assert c.get("/missing.js").status == 404


# ---------------------------------------------------------------- outage

def test_broker_outage_under_sse(web, env):
    c = Client(web)
    c.login("duty")
    ev = Events(c)
    wait_until(ev.snapshot, what="the snapshot")
    env.broker.stop()
    try:
        ev.closed.wait(30)
        assert ev.closed.is_set(), "the stream should end when the broker is lost"
        assert web.alive()
        wait_until(lambda: c.get("/api/alerts").json()["source"] == "database",
                   what="open alerts from PostgreSQL while the broker is away")
        a = c.get("/healthz")
        assert a.status == 503 and a.json()["broker"] is False
        fever_id = [x["alert_id"] for x in c.get("/api/alerts").json()["alerts"]][:1]
        if fever_id:
            a = c.post("/api/alerts/%s/ack" % fever_id[0], {})
            assert a.status == 503 and a.json()["error"] == "unavailable", a
    finally:
        since = env.broker.log_size()
        env.broker.start()
    wait_until(lambda: env.broker.subscribed(web.client_id, since),
               what="cordon-web subscribed again")
    wait_until(lambda: env.broker.subscribed(web.cordond.inbound_id, since),
               what="cordond back")
    ev2 = Events(c)
    try:
        wait_until(ev2.snapshot, what="a new snapshot")
        fever(env, "s1", "OUT-1", person="P-OUT1")
        ev2.wait_alert(lambda a: a["subject"] == "person:P-OUT1", "a transition after the outage")
    finally:
        ev2.close()
    assert web.alive()
    assert c.get("/healthz").status == 200


# ---------------------------------------------------------------- needs

def test_need_assign_and_deliver(web, env):
    web.ctl("volunteer", "add", "s1", "vol-07", "--team", "east")
    publish_many(env.broker.port, [("cordon/s1/need", json.dumps({
        "need_id": "N-WEB-1", "id": "1", "action": "open", "ts": now_ts(),
        "household": "3-2-401", "category": "groceries"}).encode())])
    wait_until(lambda: env.pg.count("needs", "site = 's1' AND need_id = 'N-WEB-1'") == 1,
               what="the need opened")
    duty, viewer, wang = Client(web), Client(web), Client(web)
    duty.login("duty")
    viewer.login("watcher")
    wang.login("wang")
    vols = duty.get("/api/volunteers?site=s1").json()["volunteers"]
    assert {"site": "s1", "volunteer": "vol-07", "team": "east"} in vols
    path = "/api/needs/s1/N-WEB-1/"
    assert viewer.post(path + "assign", {"volunteer": "vol-07"}).status == 403
    assert wang.post(path + "assign", {"volunteer": "vol-07"}).status == 403  # not its site
    assert duty.post(path + "assign", {"volunteer": "nobody"}).status == 400
    assert duty.post(path + "assign", {}).status == 400
    assert duty.post("/api/needs/s1/N-NONE/assign", {"volunteer": "vol-07"}).status == 404
    a = duty.post(path + "assign", {"volunteer": "vol-07"})
    assert a.status == 202 and a.json() == {"need_id": "N-WEB-1", "action": "assign"}, a
    wait_until(lambda: env.pg.query("SELECT status, assigned_to, note FROM needs"
                                    " WHERE site = 's1' AND need_id = 'N-WEB-1'")[0]
               == ("assigned", "vol-07", "by duty"), what="the need assigned")
    a = duty.post(path + "deliver", {})
    assert a.status == 202, a
    wait_until(lambda: env.pg.query("SELECT status, delivered_by FROM needs"
                                    " WHERE site = 's1' AND need_id = 'N-WEB-1'")[0]
               == ("delivered", "vol-07"), what="the need delivered by its volunteer")


# ---------------------------------------------------------------- PostgreSQL away

def many_at_once(c, n=8):
    got = []
    threads = [threading.Thread(target=lambda: got.append(c.get("/api/me").status))
               for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return got


def test_postgres_outage(web, env):
    c = Client(web)
    c.login("duty")
    assert many_at_once(c) == [200] * 8  # every pooled connection made
    env.pg.stop()
    try:
        a = c.get("/api/me")
        assert a.status == 503 and a.json()["error"] == "unavailable", a
        assert a.headers["Retry-After"]
        assert c.request("POST", "/api/login", {"name": "duty", "password": PASSWORD}).status == 503
        h = c.get("/healthz")
        assert h.status == 503 and h.json()["postgres"] is False
        assert web.alive()
    finally:
        env.pg.start()
    wait_until(lambda: c.get("/api/me").status == 200, what="the session usable again")
    wait_until(lambda: c.get("/healthz").status == 200, what="/healthz ok again")
    # Every pooled connection made before the restart is found dead before
    # use: requests at once (more than [web] db_pool) all succeed.
    got = many_at_once(c)
    assert got == [200] * 8, got
    assert "PostgreSQL unreachable" in web.log()


# ---------------------------------------------------------------- the example ACL

def test_example_acl_user(web, env):
    """cordon-web as user cordon-web of config/mosquitto.acl: it reads the
    retained alerts and publishes a need's step; cordond's user sees it."""
    import subprocess
    pws = {"cordon-web": "pw-web-0123456789", "cordond": "pw-cordond-0123456789"}
    d = os.path.join(env.dir, "broker-acl")
    os.makedirs(d)
    pwfile = os.path.join(d, "passwd")
    for i, (user, pw) in enumerate(pws.items()):
        subprocess.run(["mosquitto_passwd"] + (["-c"] if i == 0 else []) + ["-b", pwfile, user, pw],
                       check=True, capture_output=True)
    b = harness.Broker(d, password_file=pwfile, acl_file=os.path.join(ROOT, "config",
                                                                        "mosquitto.acl"))
    b.start()
    secret = os.path.join(env.dir, "cordon-web-acl.password")
    with open(secret, "w") as f:
        f.write(pws["cordon-web"] + "\n")
    w = None
    try:
        publish_many(env.broker.port, [("cordon/s1/need", json.dumps({
            "need_id": "N-ACL-1", "id": "1", "action": "open", "ts": now_ts(),
            "household": "3-2-402"}).encode())])
        wait_until(lambda: env.pg.count("needs", "need_id = 'N-ACL-1'") == 1, what="the need")
        since = b.log_size()
        w = Web(env.dir, b.port, env.pg.conninfo,
                {"mqtt": {"username": "cordon-web", "password_file": secret}})
        w.start()
        w.wait_ready(b, since)
        watcher = mqtt.Client(client_id="acl-watch", clean_session=True)
        watcher.username_pw_set("cordond", pws["cordond"])
        got, subscribed = [], threading.Event()
        watcher.on_message = lambda cl, ud, m: got.append((m.topic, m.payload))
        watcher.on_subscribe = lambda *a: subscribed.set()
        watcher.connect("127.0.0.1", b.port)
        watcher.loop_start()
        try:
            watcher.subscribe("cordon/+/need", qos=1)
            assert subscribed.wait(10)
            # cordond's retained state, read by cordon-web.
            state = {"alert_id": "acl0", "kind": "fever", "severity": "critical",
                     "state": "raised", "site": "s1", "subject": "person:ACL",
                     "raised_at": "2026-12-01T00:00:00.000Z"}
            info = watcher.publish("cordon/s1/alerts/acl0", json.dumps(state), qos=1,
                                   retain=True)
            info.wait_for_publish(10)
            c = Client(w)
            c.login("duty")
            wait_until(lambda: any(a["alert_id"] == "acl0"
                                   for a in c.get("/api/alerts").json()["alerts"]),
                       what="the retained alert read through the ACL")
            a = c.post("/api/needs/s1/N-ACL-1/deliver", {})
            assert a.status == 202, a
            wait_until(lambda: any(t == "cordon/s1/need" and b"N-ACL-1" in p for t, p in got),
                       what="cordon-web's need step through the ACL")
            watcher.publish("cordon/s1/alerts/acl0", b"", qos=1, retain=True).wait_for_publish(10)
        finally:
            watcher.loop_stop()
            watcher.disconnect()
    finally:
        if w:
            w.stop()
        b.stop()


# ---------------------------------------------------------------- boards and report

def test_boards_household_and_report(web, env):
    """The read side through the console is what cordonctl prints: the
    household page as `household --json`, the CSV as `report daily --csv`
    byte for byte; the boards are limited to the operator's sites."""
    harness.import_households(env, web.ctl, "s1", [("1-1-101", ["C-H1"])])
    harness.import_households(env, web.ctl, "s2", [("2-1-101", ["C-H2"])])
    duty, wang = Client(web), Client(web)
    duty.login("duty")
    wang.login("wang")
    gates = duty.get("/api/gates").json()["gates"]
    assert {("s1", "G01"), ("s2", "G01")} <= {(g["site"], g["gate"]) for g in gates}
    assert {g["site"] for g in wang.get("/api/gates").json()["gates"]} == {"s2"}
    for path in ("/api/zones", "/api/isolation", "/api/needs?status=all"):
        a = wang.get(path)
        assert a.status == 200, (path, a)
        rows = next(iter(a.json().values()))
        assert all(r["site"] == "s2" for r in rows), (path, rows)
    assert duty.get("/api/needs?status=bogus").status == 400

    page = duty.get("/api/households/s1/1-1-101")
    assert page.status == 200, page
    ctl_page = json.loads(web.ctl("household", "s1", "1-1-101", "--json").stdout)
    assert page.json() == ctl_page
    assert "18012341999" not in page.body  # the phone is masked
    assert duty.get("/api/households/s1/9-9-999").status == 404
    assert wang.get("/api/households/s1/1-1-101").status == 403

    rep = duty.get("/api/report?site=s1")
    assert rep.status == 200, rep
    r = rep.json()
    assert r["site"] == "s1" and r["timezone"] == "Asia/Shanghai" and r["sections"]
    assert len(r["charts"]["passes_per_hour"]) == 24
    csv = duty.get("/api/report.csv?site=s1&date=" + r["date"])
    assert csv.status == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in csv.headers["Content-Disposition"]
    out = web.ctl("report", "daily", "--site", "s1", "--date", r["date"], "--csv").stdout
    assert csv.body == out
    assert duty.get("/api/report").status == 400  # site= is required


# ---------------------------------------------------------------- a slow page

def test_slow_page_is_disconnected(web, env):
    """A page that reads nothing while thousands of transitions go out is
    disconnected once its queue (256 events) is full: its stream ends, the
    others go on, memory is not spent on it."""
    c = Client(web)
    c.login("duty")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    slow.connect(("127.0.0.1", web.port))
    slow.sendall(("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Cookie: cordon_session=%s\r\n\r\n" % c.cookie).encode())
    fast = Events(c)
    wait_until(fast.snapshot, what="the fast page's snapshot")
    pad = "x" * 2000
    n = 4000
    msgs = [("cordon/s1/alert/fever", json.dumps({
        "alert_id": "slow%04d" % i, "kind": "fever", "severity": "critical",
        "state": "raised", "transition": "raised", "site": "s1",
        "subject": "person:SLOW", "raised_at": "2026-12-01T00:00:00.000Z",
        "updated_at": "2026-12-01T00:00:00.000Z", "resolved_at": None, "count": 1,
        "temp_c": 38.6, "text": pad}).encode()) for i in range(n)]
    try:
        # In steps the fan-out keeps up with (the fast page saw each step's last).
        t0 = time.monotonic()
        for i in range(0, n, 200):
            publish_many(env.broker.port, msgs[i:i + 200])
            last = "slow%04d" % (i + 199)
            fast.wait_alert(lambda a: a["alert_id"] == last, "step %d on the fast page" % i)
            if "does not keep up" in web.log():
                break
        print("fan-out: %d events in %.1f s" % (i + 200, time.monotonic() - t0))
        wait_until(lambda: "does not keep up" in web.log(), timeout=60,
                   what="cordon-web closing the slow page")
        # Now read it: what was in the pipes, then the end of the stream.
        slow.settimeout(60)
        got = b""
        while True:
            chunk = slow.recv(65536)
            if not chunk:
                break
            got += chunk
        events = got.count(b"event: alert")
        assert events < n, events
        print("slow page: %d of %d events before it was closed" % (events, n))
        # The fast page goes on after the slow one was dropped.
        publish_many(env.broker.port, msgs[-1:])
        fast.wait_alert(lambda a: a["alert_id"] == "slow%04d" % (n - 1), "the fast page")
        assert not fast.closed.is_set()
        assert web.alive()
    finally:
        slow.close()
        fast.close()


# ---------------------------------------------------------------- stop

def test_sigterm_with_live_pages(web, env):
    """Last: SIGTERM with live streams open ends them and exits 0 at once."""
    c = Client(web)
    c.login("duty")
    streams = [Events(c) for _ in range(3)]
    for ev in streams:
        wait_until(ev.snapshot, what="the snapshot")
    t0 = time.monotonic()
    assert web.stop() == 0
    assert time.monotonic() - t0 < 10
    for ev in streams:
        assert ev.closed.wait(10)
        ev.close()
    assert "stopping" in web.log()
