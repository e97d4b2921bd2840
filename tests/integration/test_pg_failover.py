"""PostgreSQL failover (docs/scaling.md, "PostgreSQL: a primary and a
standby"): a primary (harness.Postgres) and a streaming standby made from it
by pg_basebackup -R; cordond, cordon-notify, cordon-web and cordonctl all
with `host=PRIMARY,STANDBY … target_session_attrs=read-write`.

A gate streams keyed events; the primary stops (fast shutdown: its WAL
senders hand the standby every record first) and, a while later, the
standby is promoted. cordond alerts all along (the rules run from the
spool), holds what the database cannot take, and then writes it to the new
primary: every event there exactly once. After the failover every
PostgreSQL user of the product works on the new primary: cordond's store,
its register (LISTEN: a change made after the failover is loaded), its
retention thread (a run after a SIGHUP), cordon-notify's inbox and routing,
cordon-web's pool (a login), cordonctl.
"""

import http.client
import json
import os
import signal
import shutil

import pytest

import harness
from notify_servers import Webhook
from harness import (ACTIVE, Broker, Collector, Cordond, Notifier, Postgres, Stream, Web,
                     cordonctl, gate_event, make_tmpdir, now_ts, publish_many, register_loads,
                     sequence_events, tail, wait_until)

LONG = 120
SITE = "pf"
N = 12000
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def parts(request):
    dir = make_tmpdir("cordon-it-")
    for sub in ("broker", "pg1", "pg2"):
        os.mkdir(os.path.join(dir, sub))
    p = type("Parts", (), {})()
    p.dir = dir
    p.broker = Broker(os.path.join(dir, "broker"))
    p.primary = Postgres(os.path.join(dir, "pg1"))
    p.daemons = []
    p.servers = []
    failed = request.session.testsfailed
    ok = False
    try:
        p.broker.start()
        p.primary.start()
        p.standby = p.primary.make_standby(os.path.join(dir, "pg2"))
        p.standby.start()
        assert p.standby.in_recovery()
        p.conninfo = ("host=%s,%s port=%d,%d dbname=cordon user=cordon"
                      " target_session_attrs=read-write"
                      % (p.primary.dir, p.standby.dir, p.primary.port, p.standby.port))
        yield p
        ok = True
    finally:
        for d in p.daemons:
            try:
                d.stop()
            finally:
                if d in ACTIVE:
                    ACTIVE.remove(d)
        for srv in p.servers:
            srv.stop()
        for part in (p.broker, p.primary, getattr(p, "standby", None)):
            if part:
                part.stop()
                if part in ACTIVE:
                    ACTIVE.remove(part)
        if ok and request.session.testsfailed == failed and not os.environ.get("CORDON_KEEP"):
            shutil.rmtree(dir, ignore_errors=True)
        else:
            print("\nkept %s for inspection" % dir)


def login(web, name):
    """POST /api/login; the HTTP status."""
    c = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    try:
        body = json.dumps({"name": name, "password": PASSWORD}).encode()
        c.request("POST", "/api/login", body, {"Content-Type": "application/json",
                                              "Host": "127.0.0.1:%d" % web.port})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def fever(id, person):
    return gate_event(SITE, "G09", id, person=person, card="C-" + person, temp_c=38.8,
                      ts=now_ts())


def raised(col, person):
    for topic, payload in col.snapshot():
        a = json.loads(payload)
        if a.get("transition") == "raised" and a.get("subject") == "person:" + person:
            return a
    return None


def test_failover_to_the_standby(parts):
    p = parts
    conf = harness.cordonctl_config(p.dir, p.conninfo)
    d = Cordond(p.dir, p.broker.port, p.conninfo,
                {"site": {"retention_days": "36500"}, "rules": {"recheck_window": "1h"}})
    p.daemons.append(d)
    d.start()
    wait_until(lambda: "ready: broker connected" in d.log() and "PostgreSQL connected" in d.log(),
               LONG, what="cordond ready on the primary")
    wait_until(lambda: "retention run: removed" in d.log(), LONG, what="a first retention run")

    cordonctl(conf, "gate", "add", SITE, "G09", expect=0)
    pwfile = os.path.join(p.dir, "pw")
    with open(pwfile, "w") as f:
        f.write(PASSWORD + "\n")
    cordonctl(conf, "operator", "add", "duty", "--password-file", pwfile, expect=0)
    hook = Webhook().start()
    url = os.path.join(p.dir, "hook.url")
    with open(url, "w") as f:
        f.write(hook.url("/alerts") + "\n")
    n = Notifier(p.dir, p.broker.port, p.conninfo, {
        "notify": {"client_id": "notify-pf"},
        "receiver.hook": {"type": "webhook", "url_file": url},
        "route.all": {"subjects": "person:*", "group_wait": "0s", "receivers": "hook"}})
    p.daemons.append(n)
    p.servers.append(hook)
    n.start()
    wait_until(lambda: "ready" in n.log(), LONG, what="cordon-notify ready")
    w = Web(p.dir, p.broker.port, p.conninfo)
    p.daemons.append(w)
    w.start()
    w.wait_ready()
    assert login(w, "duty") == 200

    with Collector(p.broker.port, "cordon/%s/alert/#" % SITE) as col:
        s = Stream(p.broker.port, list(sequence_events(SITE, N)), "gate-pf", rate=2000).start()
        wait_until(lambda: p.primary.count("gate_events", "site = %s", (SITE,)) >= N // 4, LONG,
                   what="a quarter stored on the primary")

        # The primary goes away: a fast shutdown, the standby gets every WAL record.
        p.primary.stop("fast")
        wait_until(lambda: "PostgreSQL unreachable" in d.log(), LONG,
                   what="cordond seeing the primary gone")
        # cordond alerts on, from its spool, without a database.
        publish_many(p.broker.port, [fever("F-1", "P-1")])
        wait_until(lambda: raised(col, "P-1"), LONG, what="an alert while no database takes writes")
        assert p.standby.in_recovery()

        p.standby.promote()
        s.wait(LONG)
        publish_many(p.broker.port, [fever("F-2", "P-2")])
        wait_until(lambda: raised(col, "P-2"), LONG, what="an alert after the failover")

        new = p.standby
        want = N + 2
        wait_until(lambda: new.count("gate_events", "site = %s", (SITE,)) >= want, LONG,
                   what=lambda: "%d rows on the new primary (have %d)"
                   % (want, new.count("gate_events", "site = %s", (SITE,))))
        keys = [r[0] for r in new.query("SELECT event_key FROM gate_events WHERE site = %s",
                                        (SITE,))]
        expect = {"%s/G%02d/S-%07d" % (SITE, i % 4 + 1, i) for i in range(N)}
        expect |= {"%s/G09/F-1" % SITE, "%s/G09/F-2" % SITE}
        assert len(keys) == len(set(keys)), "%d rows, %d keys" % (len(keys), len(set(keys)))
        assert set(keys) == expect, (len(expect - set(keys)), len(set(keys) - expect))
        for person in ("P-1", "P-2"):
            wait_until(lambda: new.count("alerts", "kind = 'fever' AND subject = %s AND site = %s",
                                         ("person:" + person, SITE)) == 1, LONG,
                       what="the alert of %s on the new primary" % person)
    assert d.alive(), tail(d.logfile)
    # The old primary ending the session (57P01) is a lost connection, not a
    # refusal that holds the batch.
    assert "PostgreSQL refuses writes" not in d.log(), tail(d.logfile)

    # The register's LISTEN: a gate added on the new primary is loaded.
    wait_until(lambda: "register connection lost" in d.log(), LONG,
               what="the register seeing its connection gone")
    wait_until(lambda: d.log().count("register loaded") >= 2, LONG,
               what="the register loaded again on the new primary")
    loads = register_loads(d)
    cordonctl(conf, "gate", "add", SITE, "G10", expect=0)
    wait_until(lambda: register_loads(d) > loads, LONG, what="the register's NOTIFY after failover")

    # Retention: the run a SIGHUP starts finds its connection gone and
    # runs again on a new one.
    runs = d.log().count("retention run: removed")
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: d.log().count("retention run: removed") > runs, LONG,
               what=lambda: "a retention run on the new primary:\n" + tail(d.logfile, 15))
    assert "retention: the connection to PostgreSQL was lost" in d.log()

    # cordon-notify: both alerts in its inbox on the new primary, routed.
    for person in ("P-1", "P-2"):
        wait_until(lambda: new.count("notify_inbox",
                                     "alert->>'subject' = %s AND routed_at IS NOT NULL",
                                     ("person:" + person,)) >= 1, LONG,
                   what="cordon-notify's inbox holding %s's alert, routed" % person)

    # cordon-web's pool, and cordonctl.
    wait_until(lambda: login(w, "duty") == 200, LONG, what="a login on the new primary")
    out = cordonctl(conf, "alerts", "--kind", "fever", expect=0).stdout
    assert "person:P-2" in out, out
