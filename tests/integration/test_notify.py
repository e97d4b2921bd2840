"""cordon-notify end to end (issue 17): real Mosquitto, PostgreSQL, cordond
and cordon-notify, and local servers that answer as the WeCom and DingTalk
robot APIs, a webhook, an SMS gateway and an SMTP server do
(notify_servers.py).

Fevers are published as gate events; cordond raises the alerts and
cordon-notify tells the receivers. Each test has its own subjects (persons
P-<TEST>-n), its own cordon-notify client id, and starts from empty notify
tables, so tests do not see each other's messages.

Races are controlled by waiting for states in PostgreSQL and on the fake
servers, never by sleeping; a negative ("no more reminders after the ack")
is observed against a control alert on the same route whose reminders go on.
"""

import csv
import datetime
import json
import os
import re
import signal
import urllib.request

import pytest

import harness
from harness import (Broker, Collector, Notifier, free_port, gate_event, publish_many,
                     wait_until)
from notify_servers import DingTalk, Smtp, Sms, WeCom, Webhook

SITE = "s1"
LONG = 2 * harness.TIMEOUT


def now_ts(offset_s=0.0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)
    return t.isoformat(timespec="milliseconds")


_seq = [0]


def reading(person, temp, gate="G01"):
    _seq[0] += 1
    return gate_event(SITE, gate, "N-%06d" % _seq[0], card="C-%s" % person, person=person,
                      temp_c=temp, ts=now_ts())


@pytest.fixture(scope="module")
def servers():
    s = {
        "wecom": WeCom(keys=["k-workers", "k-burst", "k-tight"]).start(),
        "ding": DingTalk(tokens={"t-heads": "SEC-heads-secret"}).start(),
        "hook": Webhook().start(),
        "sms": Sms().start(),
        "smtp": Smtp().start(),
    }
    yield s
    for srv in s.values():
        srv.stop()


@pytest.fixture(scope="module")
def stack(env, servers):
    conf = harness.cordonctl_config(env.dir, env.pg.conninfo)
    harness.cordonctl(conf, "migrate", expect=0)
    for gate in ("G01", "G02"):
        harness.cordonctl(conf, "gate", "add", SITE, gate, expect=0)
    for gate in ("G08", "G09"):
        harness.cordonctl(conf, "gate", "add", SITE, gate, "--sealed", expect=0)
    # repeat_interval 1s: an alert's update is published (and stored) a
    # second after the previous publication, not a minute
    d = env.cordond({"rules": {"max_open_alerts": "5000", "recheck_window": "1h",
                               "repeat_interval": "1s"}})
    wait_until(lambda: "register loaded" in d.log(), what="cordond loading the register")
    yield d
    env.stop_daemons([d])


_running = []


@pytest.fixture(autouse=True)
def stop_notifiers(env):
    """Each test's cordon-notify stops at its end: the next one starts from
    empty tables, with nobody else routing them."""
    yield
    env.stop_daemons([n for n in _running if n.alive()])
    _running.clear()


def url_file(env, name, url):
    path = os.path.join(env.dir, "%s.url" % name)
    with open(path, "w") as f:
        f.write(url + "\n")
    return path


def receivers(env, servers):
    """[receiver.*] sections for every fake server."""
    secret = os.path.join(env.dir, "heads.secret")
    with open(secret, "w") as f:
        f.write("SEC-heads-secret\n")
    wecom = servers["wecom"]
    return {
        "receiver.workers": {"type": "wecom", "url_file": url_file(
            env, "workers", wecom.url("/cgi-bin/webhook/send?key=k-workers"))},
        "receiver.burst": {"type": "wecom", "format": "text", "url_file": url_file(
            env, "burst", wecom.url("/cgi-bin/webhook/send?key=k-burst"))},
        "receiver.tight": {"type": "wecom", "rate_limit": "100", "url_file": url_file(
            env, "tight", wecom.url("/cgi-bin/webhook/send?key=k-tight"))},
        "receiver.heads": {"type": "dingtalk", "language": "en", "format": "text",
                           "secret_file": secret, "url_file": url_file(
                               env, "heads", servers["ding"].url("/robot/send?access_token=t-heads"))},
        "receiver.hook": {"type": "webhook", "url_file": url_file(env, "hook",
                                                                  servers["hook"].url("/alerts"))},
        "receiver.mail": {"type": "smtp", "from": "cordon@compound.example",
                          "to": "duty@office.example", "url_file": url_file(
                              env, "mail", servers["smtp"].url())},
        "receiver.phone": {"type": "sms", "to": "13800000000",
                           "body_template": '{"to":"{to}","text":"{text}"}',
                           "url_file": url_file(env, "phone", servers["sms"].url("/send?key=k"))},
    }


def start_notifier(env, servers, name, routes, notify=None, extra=None, broker=None,
                   conninfo=None):
    """A cordon-notify with client id notify-NAME, every receiver and `routes`
    ({route name: section}), after emptying the notify tables; returns once
    the broker (`broker`, else cordond's) has seen it subscribe. `conninfo`:
    PostgreSQL as another role."""
    broker = broker or env.broker
    env.pg.query("TRUNCATE notify_inbox, notify_alerts, notify_messages, notify_items, silences,"
                 " notify_reconcile")
    overrides = receivers(env, servers)
    overrides.update(extra or {})
    overrides["notify"] = {"client_id": "notify-" + name, "retry_max": "1s", **(notify or {})}
    for rname, section in routes.items():
        overrides["route." + rname] = section
    n = Notifier(env.dir, broker.port, conninfo or env.pg.conninfo, overrides)
    env.daemons.append(n)
    _running.append(n)
    since = broker.log_size()
    n.start()
    wait_until(lambda: broker.subscribed(n.inbound_id, since),
               what="%s connected and subscribed" % n.inbound_id)
    wait_until(lambda: "ready" in n.log(), what="cordon-notify ready")
    return n


def first(env, sql, args=None):
    """The first column of the first row, or None when there is none."""
    rows = env.pg.query(sql, args)
    return rows[0][0] if rows else None


def alert_id(env, person, kind="fever"):
    return wait_until(lambda: first(
        env, "SELECT alert_id FROM alerts WHERE kind = %s AND subject = %s ORDER BY raised_at DESC"
        " LIMIT 1", (kind, "person:" + person)), what="the %s alert of %s" % (kind, person))


def sent_items(env, where="true", args=None):
    """(alert_id, transition, receiver, message_id) of the notifications sent."""
    return env.pg.query("SELECT alert_id, transition, receiver, message_id FROM notifications"
                        " WHERE status = 'sent' AND " + where, args)


def texts(req):
    """Every string of a request's JSON body, joined."""
    out = []

    def walk(v):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(req.json)
    return "\n".join(out)


def has_cjk(s):
    return re.search(r"[\u4e00-\u9fff]", s) is not None


def test_each_receiver_told_then_resolved(env, servers, stack):
    """One fever goes to all five kinds of receiver, in each one's language,
    then the re-check's resolve goes to the same five. The register's names
    and phone numbers appear in none of them."""
    ctl_conf = stack.conffile
    homes = os.path.join(env.dir, "households.csv")
    with open(homes, "w", newline="") as f:
        csv.writer(f).writerows([["household", "building", "unit", "room", "size", "phone", "cards"],
                                 ["3-2-401", "3", "2", "401", "2", "13900001111", "C-P-EACH-1"]])
    people = os.path.join(env.dir, "residents.csv")
    with open(people, "w", newline="") as f:
        csv.writer(f).writerows([["household", "person", "born", "phone", "id_number", "name"],
                                 ["3-2-401", "P-EACH-1", "1950-01-01", "13912345678", "", "张秀英"]])
    harness.cordonctl(ctl_conf, "import", "households", homes, "--site", SITE, expect=0)
    harness.cordonctl(ctl_conf, "import", "residents", people, "--site", SITE, expect=0)
    for srv in servers.values():
        srv.clear()
    start_notifier(env, servers, "each", {"all": {
        "subjects": "person:P-EACH-*", "group_wait": "0s",
        "receivers": "workers, heads, hook, mail, phone"}})
    publish_many(env.broker.port, [reading("P-EACH-1", 38.9)])
    aid = alert_id(env, "P-EACH-1")
    wait_until(lambda: len(sent_items(env, "alert_id = %s", (aid,))) == 5,
               timeout=LONG, what="the raise sent to five receivers")

    wecom = [r for r in servers["wecom"].received() if r.query.get("key") == "k-workers"]
    assert len(wecom) == 1 and wecom[0].answer["errcode"] == 0
    assert wecom[0].json["msgtype"] == "markdown"
    content = wecom[0].json["markdown"]["content"]
    assert "38.9" in content and "G01" in content and has_cjk(content), content

    ding = servers["ding"].received()
    assert len(ding) == 1 and ding[0].answer["errcode"] == 0, ding  # signed right
    assert ding[0].json["msgtype"] == "text"
    text = ding[0].json["text"]["content"]
    assert "38.9" in text and not has_cjk(text) and re.search("fever", text, re.I), text

    hook = servers["hook"].received()
    assert len(hook) == 1
    body = hook[0].json
    assert body["version"] == "4" and body["status"] == "firing", body
    assert body["alerts"][0]["labels"]["alertname"] == "fever"
    assert body["alerts"][0]["fingerprint"] == aid

    mail = servers["smtp"].received()
    assert len(mail) == 1 and mail[0].rcpt_tos == ["duty@office.example"]
    assert mail[0].subject and "38.9" in mail[0].body and has_cjk(mail[0].subject)

    sms = servers["sms"].received()
    assert len(sms) == 1 and sms[0].json["to"] == "13800000000" and "38.9" in sms[0].json["text"]

    # Each HTTP request carries its message id, and the table says who took what.
    ids = {str(r[3]) for r in sent_items(env, "alert_id = %s", (aid,))}
    assert {wecom[0].notification, ding[0].notification, hook[0].notification,
            sms[0].notification, mail[0].notification} == ids

    # The re-check resolves it: a resolved notice to the same five.
    publish_many(env.broker.port, [reading("P-EACH-1", 36.5)])
    wait_until(lambda: len(sent_items(env, "alert_id = %s AND transition = 'resolved'", (aid,)))
               == 5, timeout=LONG, what="the resolved notice sent to five receivers")
    assert servers["hook"].received()[-1].json["status"] == "resolved"
    everything = "\n".join([texts(r) for s in ("wecom", "ding", "hook", "sms")
                            for r in servers[s].received()]
                           + [m.body + m.subject for m in servers["smtp"].received()])
    assert "张秀英" not in everything and "13912345678" not in everything
    assert "1391234" not in everything and "13900001111" not in everything


def test_burst_of_100_fevers_is_grouped_within_the_rate_limit(env, servers, stack):
    """100 fevers within a second reach a WeCom robot (20 messages a minute)
    as a few messages: every one of the 100 alerts in one, none refused."""
    servers["wecom"].clear()
    start_notifier(env, servers, "burst", {"burst": {
        "subjects": "person:P-BURST-*", "group_wait": "3s", "receivers": "burst"}})
    publish_many(env.broker.port, [reading("P-BURST-%03d" % i, 38.0 + (i % 10) / 10)
                                   for i in range(100)])
    wait_until(lambda: env.pg.scalar("SELECT count(DISTINCT alert_id) FROM notifications"
                                     " WHERE receiver = 'burst' AND status = 'sent'") == 100,
               timeout=LONG, what="all 100 fevers sent")
    reqs = [r for r in servers["wecom"].received() if r.query.get("key") == "k-burst"]
    # The first alert leaves at once, then one message per group_wait (3 s)
    # for as long as the alerts kept arriving: the bound follows how long
    # cordond took to raise them (longer on a loaded machine), not a guess.
    span = env.pg.scalar("SELECT extract(epoch FROM max(received_at) - min(received_at))"
                         " FROM notify_inbox WHERE alert->>'subject' LIKE 'person:P-BURST-%%'"
                         " AND transition = 'raised'")
    assert 2 <= len(reqs) <= 2 + int(float(span) // 3), (span, [len(texts(r)) for r in reqs])
    assert len(reqs) <= 20  # within the robot's 20 messages a minute
    assert all(r.answer["errcode"] == 0 for r in reqs), [r.answer for r in reqs]
    per_msg = dict(env.pg.query("SELECT message_id::text, count(*) FROM notifications"
                                " WHERE receiver = 'burst' GROUP BY message_id"))
    assert sum(per_msg.values()) == 100
    big = max(per_msg, key=per_msg.get)
    assert per_msg[big] >= 50
    req = next(r for r in reqs if r.notification == big)
    content = req.json["text"]["content"]
    assert len(content.encode()) <= 2048
    assert str(per_msg[big]) in content, content[:300]


def test_reminders_and_escalation_stop_at_ack(env, servers, stack):
    """Not acknowledged: reminded every 2 s, escalated to the heads after
    4 s. The ack stops both for that alert, while the other, unacknowledged,
    goes on being reminded."""
    servers["ding"].clear()
    start_notifier(env, servers, "remind", {"remind": {
        "subjects": "person:P-REM-*", "group_wait": "0s", "receivers": "workers",
        "remind_every": "2s", "escalate_after": "4s", "escalate_to": "heads"}})
    publish_many(env.broker.port, [reading("P-REM-1", 38.4), reading("P-REM-2", 38.4)])
    a1, a2 = alert_id(env, "P-REM-1"), alert_id(env, "P-REM-2")

    def state(aid):
        rows = env.pg.query("SELECT state, level, reminders FROM notify_alerts"
                            " WHERE alert_id = %s", (aid,))
        return rows[0] if rows else (None, None, None)
    wait_until(lambda: state(a1)[1] == 1 and state(a2)[1] == 1, timeout=LONG,
               what="both escalated")
    wait_until(lambda: len(sent_items(env, "receiver = 'heads' AND transition = 'escalate'"
                                      " AND alert_id IN (%s, %s)", (a1, a2))) == 2,
               timeout=LONG, what="the escalation sent to the heads")
    wait_until(lambda: len(sent_items(env, "receiver = 'workers' AND transition = 'remind'"
                                      " AND alert_id = %s", (a1,))) >= 1,
               timeout=LONG, what="a reminder sent to the workers")
    # After the escalation the heads get the reminders too.
    wait_until(lambda: len(sent_items(env, "receiver = 'heads' AND transition = 'remind'"
                                      " AND alert_id = %s", (a2,))) >= 1,
               timeout=LONG, what="a reminder to the heads")

    harness.cordonctl(stack.conffile, "ack", a1, "--by", "op-1", expect=0)
    wait_until(lambda: state(a1)[0] == "acked", what="cordon-notify seeing the ack")
    before = env.pg.scalar("SELECT count(*) FROM notify_items WHERE alert_id = %s", (a1,))
    r2 = state(a2)[2]
    wait_until(lambda: state(a2)[2] >= r2 + 2, timeout=LONG,
               what="two more reminders of the unacknowledged alert")
    assert env.pg.scalar("SELECT count(*) FROM notify_items WHERE alert_id = %s", (a1,)) == before
    assert env.pg.scalar("SELECT next_remind_at IS NULL AND escalate_at IS NULL FROM"
                         " notify_alerts WHERE alert_id = %s", (a1,))


def test_silence_and_gate_maintenance(env, servers, stack):
    """A silenced fever and a gate under maintenance are raised and stored,
    but told only when their silence ends (a control beside each is told at
    once); cordonctl alerts shows them as silenced."""
    servers["hook"].clear()
    n = start_notifier(env, servers, "silence", {"quiet": {
        "kinds": "fever sealed_gate", "subjects": "person:P-SIL-* gate:G08 gate:G09",
        "group_wait": "0s", "receivers": "hook"}})
    ctl = stack.conffile
    out = harness.cordonctl(ctl, "silence", "add", SITE, "--kind", "fever", "--subject",
                            "person:P-SIL-1", "--for", "1h", "--reason", "test", expect=0).stdout
    sid = re.search(r"\d+", out).group(0)
    harness.cordonctl(ctl, "gate", "maintain", SITE, "G09", "--for", "1h", expect=0)
    publish_many(env.broker.port, [reading("P-SIL-1", 38.6), reading("P-SIL-2", 38.6),
                                   gate_event(SITE, "G09", "M-1", ts=now_ts()),
                                   gate_event(SITE, "G08", "M-2", ts=now_ts())])
    s1, s2 = alert_id(env, "P-SIL-1"), alert_id(env, "P-SIL-2")
    g9 = wait_until(lambda: first(env, "SELECT alert_id FROM alerts WHERE kind = 'sealed_gate'"
                                          " AND subject = 'gate:G09' AND state <> 'resolved'"))
    g8 = wait_until(lambda: first(env, "SELECT alert_id FROM alerts WHERE kind = 'sealed_gate'"
                                          " AND subject = 'gate:G08' AND state <> 'resolved'"))
    wait_until(lambda: {r[0] for r in sent_items(env)} >= {s2, g8}, timeout=LONG,
               what="the controls told")
    # Held: routed, not told, nothing queued.
    wait_until(lambda: env.pg.scalar("SELECT count(*) FROM notify_alerts WHERE alert_id IN"
                                     " (%s, %s) AND NOT told AND silence_id IS NOT NULL",
                                     (s1, g9)) == 2, what="both held by their silences")
    assert env.pg.scalar("SELECT count(*) FROM notify_items WHERE alert_id IN (%s, %s)",
                         (s1, g9)) == 0
    listing = harness.cordonctl(ctl, "alerts", "--json", expect=0).stdout
    rows = {a["alert_id"]: a for a in json.loads(listing)}
    assert rows[s1].get("silenced") and rows[g9].get("silenced"), listing
    assert not rows[s2].get("silenced")

    harness.cordonctl(ctl, "silence", "expire", sid, expect=0)
    wait_until(lambda: s1 in {r[0] for r in sent_items(env)}, timeout=LONG,
               what="the fever told once its silence was expired")
    assert g9 not in {r[0] for r in sent_items(env)}
    assert n.alive()


def test_sigkill_during_a_burst_sends_each_once(env, servers, stack):
    """300 fevers, each its own message (group_wait 0) to a webhook.
    cordon-notify is SIGKILLed while they go out, and started again: every
    message is received, and more than once only if it was 'sending' when
    the process died (the documented window)."""
    hook = servers["hook"]
    hook.clear()
    routes = {"kill": {"subjects": "person:P-KILL-*", "group_wait": "0s", "receivers": "hook"}}
    n = start_notifier(env, servers, "kill", routes)
    publish_many(env.broker.port, [reading("P-KILL-%03d" % i, 38.1) for i in range(300)])
    hook.wait_for(40, timeout=LONG)
    n.kill()
    sending = {str(r[0]) for r in env.pg.query(
        "SELECT id FROM notify_messages WHERE status = 'sending'")}
    assert len(sending) <= 1  # one sender thread for the receiver
    since = env.broker.log_size()
    n.start()
    env.wait_connected(n, since)
    wait_until(lambda: env.pg.scalar("SELECT count(DISTINCT alert_id) FROM notifications"
                                     " WHERE receiver = 'hook' AND status = 'sent'") == 300,
               timeout=LONG, what="all 300 sent after the restart")
    counts = {}
    for r in hook.received():
        counts[r.notification] = counts.get(r.notification, 0) + 1
    ids = {str(r[0]) for r in env.pg.query("SELECT id FROM notify_messages WHERE receiver = 'hook'")}
    assert set(counts) == ids
    twice = {i for i, c in counts.items() if c > 1}
    assert twice <= sending, (twice, sending)
    assert all(c <= 2 for c in counts.values())
    # Each alert in exactly one raise message: the MQTT redeliveries after
    # the kill were recognised.
    assert env.pg.scalar("SELECT count(*) FROM notify_items i JOIN notify_messages m"
                         " ON m.id = i.message_id WHERE m.receiver = 'hook'") == 300


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.read().decode()


def test_receiver_outage_raises_notify_failed(env, servers, stack):
    """A webhook down: its message is retried with backoff, the metric drops,
    and after fail_after cordon-notify raises notify_failed, which its own
    route sends to WeCom. Back up: the message goes out and notify_failed
    is resolved."""
    down = Webhook().start()
    try:
        down.set_down(True, mode="500")
        port = free_port()
        extra = {"receiver.down": {"type": "webhook", "url_file": url_file(env, "down", down.url())}}
        with Collector(env.broker.port, "cordon/_daemon/alert/notify_failed") as col:
            start_notifier(env, servers, "outage", {
                "out": {"subjects": "person:P-OUT-*", "group_wait": "0s", "receivers": "down"},
                "sys": {"kinds": "notify_failed", "group_wait": "0s", "receivers": "workers"}},
                notify={"fail_after": "2s", "metrics_listen": "127.0.0.1:%d" % port}, extra=extra)
            publish_many(env.broker.port, [reading("P-OUT-1", 38.3)])
            aid = alert_id(env, "P-OUT-1")
            col.wait_for(lambda t, p: json.loads(p)["transition"] == "raised", timeout=LONG)
            failed = env.pg.query("SELECT alert_id, state, subject FROM alerts"
                                  " WHERE kind = 'notify_failed' ORDER BY raised_at DESC")[0]
            assert failed[1] == "raised" and failed[2] == "receiver:down"
            m = metrics(port)
            assert 'cordon_notify_receiver_up{receiver="down"} 0' in m
            assert re.search(r'cordon_notify_attempts_total\{receiver="down",result="retry"\} [1-9]', m)
            wait_until(lambda: failed[0] in {r[0] for r in sent_items(env, "receiver = 'workers'")},
                       timeout=LONG, what="notify_failed sent to the workers' group")
            assert len(down.received()) >= 2  # retried
            down.set_down(False)
            wait_until(lambda: aid in {r[0] for r in sent_items(env, "receiver = 'down'")},
                       timeout=LONG, what="the fever sent once the webhook is back")
            col.wait_for(lambda t, p: json.loads(p)["transition"] == "resolved", timeout=LONG)
            assert env.pg.scalar("SELECT state FROM alerts WHERE alert_id = %s",
                                 (failed[0],)) == "resolved"
            attempts = env.pg.scalar("SELECT attempts FROM notifications WHERE alert_id = %s"
                                     " AND receiver = 'down'", (aid,))
            assert attempts >= 2
    finally:
        down.stop()


def test_rate_limited_answers_are_waited_out(env, servers, stack):
    """A robot that answers 45009 (api freq out of limit) beyond 2 messages:
    the refused messages wait and all of them arrive, none dropped."""
    wecom = servers["wecom"]
    wecom.clear()
    wecom.window.limit, wecom.window.window_s = 2, 3.0
    try:
        start_notifier(env, servers, "tight", {"tight": {
            "subjects": "person:P-TIGHT-*", "group_wait": "0s", "receivers": "tight"}})
        for i in range(5):
            publish_many(env.broker.port, [reading("P-TIGHT-%d" % i, 38.2)])
            wait_until(lambda: env.pg.scalar("SELECT count(*) FROM notify_inbox WHERE alert->>'subject'"
                                             " = %s", ("person:P-TIGHT-%d" % i,)) == 1)
        wait_until(lambda: env.pg.scalar("SELECT count(DISTINCT alert_id) FROM notifications"
                                         " WHERE receiver = 'tight' AND status = 'sent'") == 5,
                   timeout=LONG, what="all five sent")
        reqs = [r for r in wecom.received() if r.query.get("key") == "k-tight"]
        assert any(r.answer["errcode"] == 45009 for r in reqs)
        assert sum(1 for r in reqs if r.answer["errcode"] == 0) == env.pg.scalar(
            "SELECT count(*) FROM notify_messages WHERE receiver = 'tight'")
    finally:
        wecom.window.limit, wecom.window.window_s = 20, 60.0


def test_service_protocol_reload_and_stop(env, servers, stack):
    """Under systemd: READY=1 once connected, WATCHDOG=1, and on SIGHUP
    RELOADING=1 ... READY=1 with the new routes applied; a file with errors
    keeps the routes in use; SIGTERM: STOPPING=1 and exit 0. /healthz says
    healthy."""
    from test_service import NotifySocket, rewrite_config
    hook = servers["hook"]
    hook.clear()
    ns = NotifySocket()
    port = free_port()
    try:
        env.pg.query("TRUNCATE notify_inbox, notify_alerts, notify_messages, notify_items,"
                     " notify_reconcile")
        overrides = receivers(env, servers)
        overrides["notify"] = {"client_id": "notify-service", "metrics_listen": "127.0.0.1:%d" % port}
        overrides["route.one"] = {"subjects": "person:P-SVC-1", "group_wait": "0s",
                                  "receivers": "hook"}
        n = Notifier(env.dir, env.broker.port, env.pg.conninfo, overrides)
        env.daemons.append(n)
        _running.append(n)
        since = env.broker.log_size()
        n.start({"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000"})
        env.wait_connected(n, since)
        wait_until(lambda: ns.first("READY=1") is not None, what="READY=1")
        wait_until(lambda: ns.first("WATCHDOG=1") is not None, what="WATCHDOG=1")
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as r:
            assert r.status == 200

        # Route one takes P-SVC-1 only (P-SVC-2 is nobody's); route two, added by
        # SIGHUP, takes P-SVC-3.
        publish_many(env.broker.port, [reading("P-SVC-2", 38.0), reading("P-SVC-1", 38.0)])
        a1, a2 = alert_id(env, "P-SVC-1"), alert_id(env, "P-SVC-2")
        wait_until(lambda: a1 in {r[0] for r in sent_items(env)}, what="P-SVC-1 told")
        assert a2 not in {r[0] for r in sent_items(env)}
        rewrite_config(n, "route.two", "subjects", "person:P-SVC-3")
        rewrite_config(n, "route.two", "receivers", "hook")
        rewrite_config(n, "route.two", "group_wait", "0s")
        n.send_signal(signal.SIGHUP)
        wait_until(lambda: ns.first("RELOADING=1") is not None, what="RELOADING=1")
        wait_until(lambda: ns.poll().count("READY=1") >= 2, what="READY=1 after the reload")
        assert "2 route(s)" in n.log()
        publish_many(env.broker.port, [reading("P-SVC-3", 38.0)])
        a3 = alert_id(env, "P-SVC-3")
        wait_until(lambda: a3 in {r[0] for r in sent_items(env)}, what="P-SVC-3 told by route two")

        # A file with an error: refused, the routes in use stay.
        rewrite_config(n, "route.two", "kinds", "no_such_kind")
        n.send_signal(signal.SIGHUP)
        wait_until(lambda: "the configuration in use stays" in n.log(), what="reload refused")
        assert "unknown alert kind" in n.log()
        publish_many(env.broker.port, [reading("P-SVC-3", 36.5)])
        wait_until(lambda: (a3, "resolved") in {(r[0], r[1]) for r in sent_items(env)},
                   what="P-SVC-3's resolve told by route two, still in use")
        assert n.stop() == 0
        assert "STOPPING=1" in ns.poll()
    finally:
        ns.close()


def test_removed_receivers_messages_given_up(env, servers, stack):
    """A receiver removed by SIGHUP has no sender any more: its waiting
    messages are marked 'failed' once older than give_up_after, like any
    receiver's, instead of staying 'pending' for ever."""
    from test_service import rewrite_config
    dead = "http://127.0.0.1:%d/alerts" % free_port()  # nobody listens
    n = start_notifier(env, servers, "gone", {"gone": {
        "subjects": "person:P-GONE-*", "group_wait": "0s", "receivers": "gone"}},
        extra={"receiver.gone": {"type": "webhook", "url_file": url_file(env, "gone", dead)}})
    publish_many(env.broker.port, [reading("P-GONE-1", 38.2)])
    aid = alert_id(env, "P-GONE-1")
    wait_until(lambda: first(env, "SELECT attempts FROM notifications WHERE alert_id = %s"
                             " AND receiver = 'gone'", (aid,)) or 0, what="a failed attempt")

    n.config.pop("receiver.gone")
    rewrite_config(n, "route.gone", "receivers", "hook")
    left = "SIGHUP: %d receiver(s)" % sum(1 for k in n.config if k.startswith("receiver."))
    n.send_signal(signal.SIGHUP)
    wait_until(lambda: left in n.log(), what="the reload without receiver gone")
    # Its message is a day old now (give_up_after is 24 h by default).
    env.pg.query("UPDATE notify_messages SET created_at = now() - interval '25 hours'"
                 " WHERE receiver = 'gone'")
    wait_until(lambda: first(env, "SELECT status FROM notifications WHERE alert_id = %s"
                             " AND receiver = 'gone'", (aid,)) == "failed",
               what="the removed receiver's message given up")
    # logged after the row is written: waited for, not raced
    wait_until(lambda: "removed receiver" in n.log(), what="the give-up logged")


def test_answer_kept_over_a_reload_while_postgres_is_away(env, servers, stack):
    """The webhook accepts a raise while PostgreSQL is away, and a SIGHUP
    comes before the answer could be recorded: the new sender records it
    when PostgreSQL is back, and the raise is not sent a second time."""
    from test_service import rewrite_config
    hook = servers["hook"]
    hook.clear()
    slow = dict(receivers(env, servers)["receiver.hook"], timeout="60s")
    n = start_notifier(env, servers, "heldover", {"held": {
        "subjects": "person:P-HELD-*", "group_wait": "0s", "receivers": "hook"}},
        extra={"receiver.hook": slow})
    hook.hold()
    try:
        publish_many(env.broker.port, [reading("P-HELD-1", 38.3)])
        aid = alert_id(env, "P-HELD-1")
        wait_until(lambda: hook.held == 1, what="the webhook holding the raise")
        env.pg.stop()
    finally:
        hook.release()
    try:
        wait_until(lambda: "cannot record message" in n.log(), what="the answer not recorded")
        rewrite_config(n, "route.held", "remind_every", "1h")
        n.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP: " in n.log(), what="the reload")
    finally:
        env.pg.start()
    wait_until(lambda: first(env, "SELECT status FROM notifications WHERE alert_id = %s"
                             " AND receiver = 'hook'", (aid,)) == "sent",
               timeout=LONG, what="the raise recorded as sent")
    told = [r for r in hook.received() if r.json["alerts"][0]["fingerprint"] == aid]
    assert len(told) == 1, "the raise was sent %d times" % len(told)
    # logged by the sender after its commit: waited for, not raced
    wait_until(lambda: "recorded after the reload" in n.log(), what="the answer's record logged")


def test_renamed_route_still_tells_the_resolve(env, servers, stack):
    """A route renamed by SIGHUP: the alerts it told are still resolved to
    the receivers they reached, and their rows under the old name stop
    waiting for reminders."""
    from test_service import rewrite_config
    hook = servers["hook"]
    hook.clear()
    route = {"subjects": "person:P-REN-*", "group_wait": "0s", "receivers": "hook",
             "remind_every": "1h"}
    n = start_notifier(env, servers, "rename", {"old": dict(route)})
    publish_many(env.broker.port, [reading("P-REN-1", 38.3)])
    aid = alert_id(env, "P-REN-1")
    wait_until(lambda: (aid, "raised") in {(r[0], r[1]) for r in sent_items(env)},
               what="the raise told by route old")

    n.config.pop("route.old")
    for k, v in route.items():
        rewrite_config(n, "route.new", k, v)
    n.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: " in n.log(), what="the reload")
    publish_many(env.broker.port, [reading("P-REN-1", 36.5)])
    wait_until(lambda: (aid, "resolved", "hook") in {r[:3] for r in sent_items(env)},
               timeout=LONG, what="the resolve told to the hook")
    assert first(env, "SELECT state FROM notify_alerts WHERE alert_id = %s AND route = 'old'",
                 (aid,)) == "resolved"
    assert len([r for r in hook.received() if r.json["alerts"][0]["fingerprint"] == aid]) == 2


def test_ack_withdraws_a_reminder_still_grouping(env, servers, stack):
    """A reminder waiting out group_wait when the ack comes is not sent: the
    ack takes the alert out of it (and the message, left empty, goes)."""
    start_notifier(env, servers, "withdraw", {"withdraw": {
        "subjects": "person:P-WD-*", "group_wait": "1h", "receivers": "hook",
        "remind_every": "1s"}})
    publish_many(env.broker.port, [reading("P-WD-1", 38.2)])
    aid = alert_id(env, "P-WD-1")

    # The first reminder's message is due at once (it is sent); the next
    # waits out group_wait (1 h) after it. "Due in more than a minute" tells
    # that one apart whatever the load: a message due at once, made in the
    # milliseconds between this statement's now() and its snapshot, has a
    # send_after just past now().
    def waiting():
        return env.pg.query(
            "SELECT m.id FROM notify_items i JOIN notify_messages m ON m.id = i.message_id"
            " WHERE i.alert_id = %s AND m.transition = 'remind' AND m.status = 'pending'"
            " AND m.send_after > now() + interval '1 minute'", (aid,))
    held = wait_until(waiting, timeout=LONG, what="a reminder waiting out group_wait")
    harness.cordonctl(stack.conffile, "ack", aid, "--by", "op-2", expect=0)
    wait_until(lambda: first(env, "SELECT state FROM notify_alerts WHERE alert_id = %s",
                             (aid,)) == "acked", what="cordon-notify seeing the ack")
    assert waiting() == []
    assert env.pg.scalar("SELECT count(*) FROM notify_messages WHERE id = %s",
                         (held[0][0],)) == 0


def test_a_bad_payload_on_an_alert_topic_is_a_reject(env, servers, stack):
    """What is not an alert message on cordon/+/alert/# is kept in rejects
    (reason not_alert), once however often it is delivered, and the alerts
    behind it are told as usual."""
    start_notifier(env, servers, "bad", {"bad": {
        "subjects": "person:P-BAD-*", "group_wait": "0s", "receivers": "hook"}})
    junk = [("cordon/s1/alert/fever", b"not json {"), ("cordon/s1/alert/fever", b'{"kind":"fever"}')]
    publish_many(env.broker.port, junk + junk + [reading("P-BAD-1", 38.0)])
    aid = alert_id(env, "P-BAD-1")
    wait_until(lambda: aid in {r[0] for r in sent_items(env)}, what="the fever behind them told")
    rows = env.pg.query("SELECT detail, payload FROM rejects WHERE reason = 'not_alert'"
                        " AND topic = 'cordon/s1/alert/fever' ORDER BY detail")
    assert [(d, bytes(p)) for d, p in rows] == [
        ('not JSON', b"not json {"),
        ('not an alert message (docs/alerts.md, "The message")', b'{"kind":"fever"}')]


def test_alert_held_unacknowledged_while_postgres_is_away(env, servers, stack):
    """PostgreSQL down when an alert arrives: cordon-notify holds it without
    a PUBACK (nothing acknowledged that is not stored). Killed then, it gets
    the alert again from its session at restart, and tells it."""
    hook = servers["hook"]
    hook.clear()
    routes = {"away": {"subjects": "person:P-AWAY-*", "group_wait": "0s", "receivers": "hook"}}
    n = start_notifier(env, servers, "away", routes)
    alert = {"alert_id": "a" * 32, "kind": "fever", "severity": "warning", "state": "raised",
             "transition": "raised", "site": SITE, "subject": "person:P-AWAY-1",
             "raised_at": now_ts(), "updated_at": now_ts(), "resolved_at": None, "count": 1,
             "gate": "G01", "temp_c": 38.1, "text": "Fever 38.1 °C at gate G01"}
    env.pg.stop()
    try:
        publish_many(env.broker.port, [("cordon/%s/alert/fever" % SITE,
                                        json.dumps(alert).encode())])
        wait_until(lambda: "cannot store a message" in n.log(), what="the inbox holding it")
        n.kill()
    finally:
        env.pg.start()
    since = env.broker.log_size()
    n.start()
    env.wait_connected(n, since)
    wait_until(lambda: "a" * 32 in {r[0] for r in sent_items(env)}, timeout=LONG,
               what="the held alert told after the restart")
    assert [r.json["alerts"][0]["fingerprint"] for r in hook.received()] == ["a" * 32]


def test_transitions_the_broker_lost_are_taken_from_postgres(env, servers, stack):
    """cordon-notify on a broker that gets none of cordond's alerts, as a
    clustered broker's node that lost them (docs/scaling.md, "ejabberd"):
    every transition cordond stored reaches the receivers from PostgreSQL,
    [notify] reconcile_after later, each once: the raise, the severity
    raised by a hotter reading, the ack (the alert's state here) and the
    resolve. An alert raised before cordon-notify first ran is not told."""
    publish_many(env.broker.port, [reading("P-LOST-0", 38.8)])
    old = alert_id(env, "P-LOST-0")
    bdir = os.path.join(env.dir, "lost-broker")
    os.makedirs(bdir, exist_ok=True)
    other = Broker(bdir)
    other.start()
    late = None
    try:
        for srv in servers.values():
            srv.clear()
        port = free_port()
        # cordond's own messages, to bring them late (below)
        late = Collector(env.broker.port, "cordon/+/alert/#")
        n = start_notifier(env, servers, "lost", {"all": {
            "subjects": "person:P-LOST-*", "group_wait": "0s", "receivers": "workers, hook"}},
            notify={"reconcile_after": "1s", "metrics_listen": "127.0.0.1:%d" % port},
            broker=other)

        def sent(transition):
            return sent_items(env, "alert_id = %s AND transition = %s", (aid, transition))

        publish_many(env.broker.port, [reading("P-LOST-1", 37.9)])
        aid = alert_id(env, "P-LOST-1")
        wait_until(lambda: len(sent("raised")) == 2, timeout=LONG,
                   what="the raise taken from PostgreSQL, sent to both receivers")
        doc = json.loads(first(env, "SELECT alert::text FROM notify_inbox WHERE alert_id = %s"
                                    " AND transition = 'raised'", (aid,)))
        assert doc["reconciled"] is True and doc["severity"] == "warning", doc
        wecom = [r for r in servers["wecom"].received() if r.query.get("key") == "k-workers"]
        assert len(wecom) == 1, wecom
        content = wecom[0].json["markdown"]["content"]
        assert "37.9" in content and "G01" in content and has_cjk(content), content
        assert servers["hook"].received()[0].json["alerts"][0]["fingerprint"] == aid

        # A hotter reading: critical, told as an update.
        publish_many(env.broker.port, [reading("P-LOST-1", 39.2)])
        wait_until(lambda: len(sent("updated")) == 2, timeout=LONG,
                   what="the severity raised, taken from PostgreSQL and sent")
        wecom = [r for r in servers["wecom"].received() if r.query.get("key") == "k-workers"]
        assert len(wecom) == 2 and "39.2" in wecom[-1].json["markdown"]["content"], wecom

        # The ack stops the alert's clocks here; the resolve is told.
        harness.cordonctl(stack.conffile, "ack", aid, "--by", "op-1", expect=0)
        wait_until(lambda: first(env, "SELECT state FROM notify_alerts WHERE alert_id = %s",
                                 (aid,)) == "acked", what="the ack taken from PostgreSQL")
        # An update from before the ack, come late (count 9: no duplicate),
        # does not undo it: no raise, no reminder.
        stale = next(m for m in (json.loads(p) for t, p in late.snapshot())
                     if m["alert_id"] == aid and m["transition"] == "updated")
        assert stale["state"] == "raised", stale
        stale["count"] = 9
        routed = first(env, "SELECT count(*) FROM notify_inbox WHERE routed_at IS NOT NULL")
        publish_many(other.port, [("cordon/%s/alert/fever" % SITE, json.dumps(stale).encode())])
        wait_until(lambda: first(env, "SELECT count(*) FROM notify_inbox WHERE routed_at IS NOT"
                                      " NULL") > routed, what="the late update routed")
        assert first(env, "SELECT state FROM notify_alerts WHERE alert_id = %s", (aid,)) == "acked"
        harness.cordonctl(stack.conffile, "resolve", aid, "--by", "op-1", expect=0)
        wait_until(lambda: len(sent("resolved")) == 2, timeout=LONG,
                   what="the resolve taken from PostgreSQL, sent to both receivers")
        assert servers["hook"].received()[-1].json["status"] == "resolved"

        # Each once; and the alert raised before cordon-notify ran, eligible
        # at every pass that took the ones above, was never taken.
        assert sorted(r[1] for r in sent_items(env, "alert_id = %s", (aid,))) == \
            ["raised", "raised", "resolved", "resolved", "updated", "updated"]
        assert first(env, "SELECT count(*) FROM notify_inbox WHERE alert_id = %s", (old,)) == 0
        assert not sent_items(env, "alert_id = %s", (old,))
        assert env.pg.query("SELECT transition FROM notify_inbox WHERE alert_id = %s"
                            " AND (alert->'reconciled')::bool ORDER BY seq", (aid,)) == \
            [("raised",), ("updated",), ("acked",), ("resolved",)]
        # The counters say as much as the inbox. Other alerts are taken too
        # (unknown_card of the same readings, a gate_silent raised meanwhile):
        # both are read again until they agree.
        def counted():
            t = harness.scrape(port)
            return {tr: harness.metric(t, 'cordon_notify_reconciled_total{transition="%s"}' % tr)
                    for tr in ("raised", "updated", "acked", "resolved")}

        def taken():
            got = dict(env.pg.query("SELECT transition, count(*) FROM notify_inbox"
                                    " WHERE (alert->'reconciled')::bool GROUP BY transition"))
            return {tr: float(got.get(tr, 0)) for tr in ("raised", "updated", "acked", "resolved")}
        wait_until(lambda: counted() == taken(),
                   what=lambda: "cordon_notify_reconciled_total %r as the inbox %r"
                   % (counted(), taken()))
        assert "never came on MQTT within 1 s (lost by the broker?)" in n.log()

        # The broker finds them after all: cordond's own four messages of
        # the fever come late, each a duplicate of what was taken.
        mine = [(t, p) for t, p in late.snapshot() if json.loads(p)["alert_id"] == aid]
        assert [json.loads(p)["transition"] for t, p in mine] == \
            ["raised", "updated", "acked", "resolved"], mine
        before = harness.metric(harness.scrape(port), 'cordon_notify_inbox_total{result="duplicate"}')
        publish_many(other.port, mine)
        wait_until(lambda: harness.metric(harness.scrape(port),
                                          'cordon_notify_inbox_total{result="duplicate"}')
                   == before + 4, what="the four late messages dropped as duplicates")
        assert sorted(r[1] for r in sent_items(env, "alert_id = %s", (aid,))) == \
            ["raised", "raised", "resolved", "resolved", "updated", "updated"]
        assert n.alive()
    finally:
        if late:
            late.close()
        other.stop()


def test_a_route_follows_its_alert_past_its_filters(env, servers, stack):
    """A route of warnings takes a fever at 37.9 °C and reminds of it; a
    hotter reading makes the alert critical, which the route no longer
    matches. The route still follows the alert it took: the ack stops its
    reminders, and the resolve is told to its receiver."""
    start_notifier(env, servers, "follow", {"warn": {
        "subjects": "person:P-FOL-*", "severities": "warning", "group_wait": "0s",
        "receivers": "hook", "remind_every": "1s"}})
    publish_many(env.broker.port, [reading("P-FOL-1", 37.9)])
    aid = alert_id(env, "P-FOL-1")

    def sent(transition):
        return sent_items(env, "alert_id = %s AND transition = %s", (aid, transition))
    wait_until(lambda: sent("raised") and sent("remind"), timeout=LONG,
               what="the warning told and reminded")
    publish_many(env.broker.port, [reading("P-FOL-1", 39.3)])
    wait_until(lambda: first(env, "SELECT severity FROM alerts WHERE alert_id = %s", (aid,))
               == "critical", what="the alert critical")
    harness.cordonctl(stack.conffile, "ack", aid, "--by", "op-1", expect=0)
    wait_until(lambda: first(env, "SELECT state FROM notify_alerts WHERE alert_id = %s"
                                  " AND route = 'warn'", (aid,)) == "acked",
               what="the ack applied to the route that took the alert")
    assert first(env, "SELECT next_remind_at FROM notify_alerts WHERE alert_id = %s", (aid,)) \
        is None
    harness.cordonctl(stack.conffile, "resolve", aid, "--by", "op-1", expect=0)
    wait_until(lambda: sent("resolved"), timeout=LONG, what="the resolve told to the route's"
               " receiver")
    assert first(env, "SELECT state FROM notify_alerts WHERE alert_id = %s", (aid,)) == \
        "resolved"


def test_a_role_that_may_not_reconcile_still_routes(env, servers, stack):
    """A role without INSERT on notify_reconcile (migration 0014's grants not
    given): cordon-notify says reconciliation is off, and routes and sends
    as before."""
    env.pg.query("DROP ROLE IF EXISTS notify_plain")
    env.pg.query("CREATE ROLE notify_plain LOGIN")
    env.pg.query("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public"
                 " TO notify_plain")
    env.pg.query("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO notify_plain")
    env.pg.query("REVOKE INSERT ON notify_reconcile FROM notify_plain")
    n = start_notifier(env, servers, "plain", {"all": {
        "subjects": "person:P-PLAIN-*", "group_wait": "0s", "receivers": "hook"}},
        notify={"reconcile_after": "1s"},
        conninfo=env.pg.conninfo.replace("user=cordon", "user=notify_plain"))
    assert "transitions the broker lost are not taken from PostgreSQL" in n.log(), n.log()
    assert "permission denied for table notify_reconcile" in n.log(), n.log()
    assert env.pg.scalar("SELECT count(*) FROM notify_reconcile") == 0
    publish_many(env.broker.port, [reading("P-PLAIN-1", 38.6)])
    aid = alert_id(env, "P-PLAIN-1")
    wait_until(lambda: sent_items(env, "alert_id = %s", (aid,)), timeout=LONG,
               what="the raise sent")
    assert n.alive()
