"""notifier_send against fake receivers that answer as the real services do
(notify_servers.py): one call of tests/notify/send_probe per send, its
result compared with what the server parsed.

CORDON_SEND_PROBE names the probe (meson passes it)."""

import base64
import json
import os
import subprocess

import pytest

import notify_servers as ns
from harness import free_port, wait_until

PROBE = os.environ.get("CORDON_SEND_PROBE")

pytestmark = pytest.mark.skipif(not PROBE, reason="CORDON_SEND_PROBE not set")

# The probe must reach 127.0.0.1 directly, whatever the environment says.
ENV = {k: v for k, v in os.environ.items()
       if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


def alert(i=0, **over):
    a = {"alert_id": "%032x" % (0xA1E27 + i), "kind": "fever", "severity": "critical",
         "state": "raised", "transition": "raised", "site": "s1",
         "subject": "person:P-%05d" % (10233 + i),
         "raised_at": "2020-02-16T10:32:00.123Z", "updated_at": "2020-02-16T10:32:00.123Z",
         "resolved_at": None, "count": 1, "event_id": "s1/G03/G03-%06d" % i, "gate": "G03",
         "household": "3-2-401", "building": "3", "card": "C-0412", "zone": None,
         "call_id": None, "temp_c": 38.6,
         "text": "Fever 38.6 °C at gate G03 (household 3-2-401, card C-0412)"}
    a.update(over)
    return a


def probe(tmp_path, alerts, *args, count=1):
    """Runs the probe; returns its results (one dict per call)."""
    f = tmp_path / "alerts.json"
    f.write_text(json.dumps(alerts if isinstance(alerts, list) else [alerts]))
    out = subprocess.run([PROBE, *args, "--count", str(count), str(f)], env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == count, out.stdout
    return results


def one(tmp_path, alerts, *args):
    return probe(tmp_path, alerts, *args)[0]


def check_http_headers(req, msg_id):
    assert req.notification == str(msg_id)
    assert req.headers["user-agent"].startswith("cordon-notify/")
    assert req.headers["content-type"].startswith("application/json")


# ------------------------------------------------------------------ WeCom

@pytest.mark.parametrize("style", ["text", "markdown"])
def test_wecom_accepts_both_styles(tmp_path, style):
    with ns.WeCom(keys=["k-1"]) as w:
        r = one(tmp_path, [alert(0), alert(1)], "--type", "wecom", "--style", style,
                "--url", w.url("/cgi-bin/webhook/send?key=k-1"), "--id", "41")
        assert r["outcome"] == "ok", r
        assert r["http_status"] == 200
        [req] = w.received()
        check_http_headers(req, 41)
        assert req.answer == {"errcode": 0, "errmsg": "ok"}
        assert req.json == json.loads(r["body"])
        assert req.json["msgtype"] == style
        assert req.json[style]["content"]


def test_wecom_text_is_cut_to_its_limit(tmp_path):
    """A message longer than 2048 bytes is rendered within 2048 for text
    even when max_bytes asks for more, and WeCom takes it."""
    many = [alert(i) for i in range(80)]
    with ns.WeCom(keys=["k-1"]) as w:
        r = one(tmp_path, many, "--type", "wecom", "--style", "text", "--max-bytes", "9000",
                "--url", w.url("/cgi-bin/webhook/send?key=k-1"))
        assert r["outcome"] == "ok", r
        [req] = w.received()
        content = req.json["text"]["content"]
        assert 1024 < len(content.encode()) <= ns.WeCom.TEXT_MAX


def test_wecom_unknown_key_is_retried(tmp_path):
    with ns.WeCom(keys=["k-1"]) as w:
        r = one(tmp_path, alert(), "--type", "wecom",
                "--url", w.url("/cgi-bin/webhook/send?key=k-other"))
        assert r["outcome"] == "retry"
        assert "93000" in r["answer"]
        assert "k-other" not in r["answer"]


def test_wecom_rate_limit(tmp_path):
    """Past `limit` messages in the window WeCom answers 45009: rate limited
    for a minute; once the window has passed it takes messages again."""
    with ns.WeCom(keys=["k-1"], limit=3, window_s=2.0) as w:
        url = w.url("/cgi-bin/webhook/send?key=k-1")
        rs = probe(tmp_path, alert(), "--type", "wecom", "--url", url, count=4)
        assert [r["outcome"] for r in rs] == ["ok", "ok", "ok", "rate_limited"]
        assert rs[3]["retry_after_ms"] == 60000
        assert "45009" in rs[3]["answer"]
        assert all(r["retry_after_ms"] == 0 for r in rs[:3])
        assert [req.answer["errcode"] for req in w.received()] == [0, 0, 0, 45009]
        # The window slides: a later send is taken (waiting for that, never
        # for a fixed time).
        def taken():
            r = one(tmp_path, alert(), "--type", "wecom", "--url", url)
            assert r["outcome"] in ("ok", "rate_limited"), r
            return r if r["outcome"] == "ok" else None

        r = wait_until(taken, timeout=30, interval=0.2, what="the window to slide")
        assert r["outcome"] == "ok"


# --------------------------------------------------------------- DingTalk

@pytest.mark.parametrize("style", ["text", "markdown"])
def test_dingtalk_signed(tmp_path, style):
    secret = "SEC0123456789abcdef+/="
    with ns.DingTalk(tokens={"t-1": secret}) as d:
        r = one(tmp_path, alert(), "--type", "dingtalk", "--style", style, "--secret", secret,
                "--url", d.url("/robot/send?access_token=t-1"), "--id", "42", "--lang", "en")
        assert r["outcome"] == "ok", r
        [req] = d.received()
        check_http_headers(req, 42)
        # The server checked the signature; check it here too, independently.
        assert req.query["sign"] == ns.dingtalk_sign(secret, req.query["timestamp"])
        assert req.json == json.loads(r["body"])
        if style == "markdown":
            assert req.json["markdown"]["title"] and req.json["markdown"]["text"]
        else:
            assert req.json["text"]["content"]
        assert secret not in r["answer"]


def test_dingtalk_wrong_secret(tmp_path):
    with ns.DingTalk(tokens={"t-1": "SECright"}) as d:
        r = one(tmp_path, alert(), "--type", "dingtalk", "--secret", "SECwrong",
                "--url", d.url("/robot/send?access_token=t-1"))
        assert r["outcome"] == "retry"
        assert "310000" in r["answer"]
        [req] = d.received()
        assert req.answer["errcode"] == 310000


def test_dingtalk_unsigned_robot(tmp_path):
    with ns.DingTalk(tokens={"t-2": None}) as d:
        r = one(tmp_path, alert(), "--type", "dingtalk",
                "--url", d.url("/robot/send?access_token=t-2"))
        assert r["outcome"] == "ok", r
        [req] = d.received()
        assert "sign" not in req.query and "timestamp" not in req.query


def test_dingtalk_rate_limit(tmp_path):
    with ns.DingTalk(tokens={"t-1": None}, limit=2) as d:
        rs = probe(tmp_path, alert(), "--type", "dingtalk",
                   "--url", d.url("/robot/send?access_token=t-1"), count=3)
        assert [r["outcome"] for r in rs] == ["ok", "ok", "rate_limited"]
        assert rs[2]["retry_after_ms"] == 60000
        assert "130101" in rs[2]["answer"]


# ---------------------------------------------------------------- webhook

def test_webhook_alertmanager_payload(tmp_path):
    a0 = alert(0)
    a1 = alert(1, gate=None, card=None, household="5-1-101", building="5", temp_c=37.9,
               severity="warning")
    with ns.Webhook() as h:
        r = one(tmp_path, [a0, a1], "--type", "webhook", "--url", h.url("/hook"),
                "--name", "ops-hook", "--route", "fever-route", "--id", "43", "--lang", "en")
        assert r["outcome"] == "ok", r
        [req] = h.received()
        check_http_headers(req, 43)
        p = req.json
        assert p == json.loads(r["body"])
        assert p["version"] == "4"
        assert p["status"] == "firing"
        assert p["receiver"] == "ops-hook"
        assert p["truncatedAlerts"] == 0
        assert p["externalURL"] == ""
        assert p["groupLabels"] == {"alertname": "fever", "site": "s1"}
        assert p["groupKey"] == '{}/{route="fever-route"}:{alertname="fever", site="s1"}'
        assert p["commonLabels"] == {"alertname": "fever", "site": "s1"}
        assert len(p["alerts"]) == 2
        x0, x1 = p["alerts"]
        assert x0["labels"] == {"alertname": "fever", "site": "s1", "severity": "critical",
                                "subject": a0["subject"], "gate": "G03", "household": "3-2-401",
                                "building": "3", "card": "C-0412"}
        assert x1["labels"] == {"alertname": "fever", "site": "s1", "severity": "warning",
                                "subject": a1["subject"], "household": "5-1-101",
                                "building": "5"}
        for x, a in ((x0, a0), (x1, a1)):
            assert x["status"] == "firing"
            assert x["fingerprint"] == a["alert_id"]
            assert x["startsAt"] == "2020-02-16T10:32:00.123Z"
            assert x["endsAt"] == "0001-01-01T00:00:00Z"
            assert x["generatorURL"] == ""
            assert set(x["annotations"]) == {"summary", "description"}
            assert x["annotations"]["summary"] and x["annotations"]["description"]


def test_webhook_resolved(tmp_path):
    a = alert(0, state="resolved", transition="resolved", resolved_at="2020-02-16T10:50:01.500Z",
              reason="rechecked")
    with ns.Webhook() as h:
        r = one(tmp_path, a, "--type", "webhook", "--url", h.url("/hook"),
                "--transition", "resolved")
        assert r["outcome"] == "ok", r
        p = h.received()[0].json
        assert p["status"] == "resolved"
        assert p["alerts"][0]["status"] == "resolved"
        assert p["alerts"][0]["endsAt"] == "2020-02-16T10:50:01.500Z"
        assert p["commonAnnotations"] == p["alerts"][0]["annotations"]


# --------------------------------------------------- HTTP failure answers

def test_http_500_is_retried(tmp_path):
    with ns.Webhook() as h:
        h.set_status(500, body={"error": "internal"})
        r = one(tmp_path, alert(), "--type", "webhook", "--url", h.url("/hook"))
        assert r["outcome"] == "retry"
        assert r["http_status"] == 500
        assert r["answer"].startswith("HTTP 500: ")
        assert "internal" in r["answer"]
        assert len(h.received()) == 1


def test_http_429_waits_for_retry_after(tmp_path):
    with ns.Webhook() as h:
        h.set_status(429, retry_after=7, body={"error": "slow down"})
        r = one(tmp_path, alert(), "--type", "webhook", "--url", h.url("/hook"))
        assert r["outcome"] == "rate_limited"
        assert r["retry_after_ms"] == 7000
        assert r["http_status"] == 429


@pytest.mark.parametrize("mode", ["close", "500"])
def test_server_down_is_retried(tmp_path, mode):
    with ns.WeCom(keys=["k-1"]) as w:
        url = w.url("/cgi-bin/webhook/send?key=k-1")
        w.set_down(True, mode=mode)
        r = one(tmp_path, alert(), "--type", "wecom", "--url", url)
        assert r["outcome"] == "retry"
        assert r["http_status"] == (0 if mode == "close" else 500)
        w.set_down(False)
        r = one(tmp_path, alert(), "--type", "wecom", "--url", url)
        assert r["outcome"] == "ok"


def test_connection_refused_is_retried_without_waiting_for_the_timeout(tmp_path):
    port = free_port()  # nothing listens there
    r = one(tmp_path, alert(), "--type", "wecom", "--timeout", "120000",
            "--url", "http://127.0.0.1:%d/cgi-bin/webhook/send?key=k-1" % port)
    assert r["outcome"] == "retry"
    assert r["http_status"] == 0
    assert "connect" in r["answer"].lower()
    # A refused connection ends the attempt: far from the 120 s timeout.
    assert r["elapsed_ms"] < 60000


def test_a_server_that_never_answers_times_out(tmp_path):
    with ns.Webhook() as h:
        h.set_down(True, mode="hang")
        r = one(tmp_path, alert(), "--type", "webhook", "--url", h.url("/hook"),
                "--timeout", "300")
        h.set_down(False)
        assert r["outcome"] == "retry"
        assert r["http_status"] == 0
        assert "timed out" in r["answer"].lower(), r["answer"]
        assert r["elapsed_ms"] >= 300


def test_the_url_key_never_reaches_the_answer(tmp_path):
    """A server that echoes the url (as WeCom's hints do) still leaves no key
    in the answer the daemon records."""
    key = "8f2b6c1e-secret-robot-key"
    with ns.Webhook() as h:
        h.set_status(400, body={"errmsg": "bad request /hook?key=%s" % key})
        r = one(tmp_path, alert(), "--type", "webhook", "--url", h.url("/hook?key=" + key))
        assert r["outcome"] == "retry"
        assert key not in r["answer"]
        assert "***" in r["answer"]
        assert h.received()[0].query["key"] == key


# ------------------------------------------------------------------- SMTP

def test_smtp_mail_with_chinese_subject(tmp_path):
    with ns.Smtp() as s:
        r = one(tmp_path, [alert(0), alert(1)], "--type", "smtp", "--url", s.url(),
                "--to", "ops@example.org,值班 <duty@example.org>", "--from",
                "防疫通知 <notify@example.org>", "--lang", "zh-CN", "--id", "44")
        assert r["outcome"] == "ok", r
        assert r["http_status"] == 250
        assert r["answer"].startswith("250")
        [m] = s.received()
        assert m.mail_from == "notify@example.org"
        assert m.rcpt_tos == ["ops@example.org", "duty@example.org"]
        assert m.notification == "44"
        # The record is "Subject: <title>\n\n<text>", what the people read.
        subject, _, text = r["body"].partition("\n\n")
        title = subject[len("Subject: "):]
        assert m.subject == title
        assert any(ord(c) > 0x2e80 for c in m.subject), m.subject  # Chinese
        assert m.headers["Subject"].startswith("=?UTF-8?B?")
        assert m.body.replace("\r\n", "\n") == text
        assert m.message["From"].addresses[0].display_name == "防疫通知"
        assert m.message["From"].addresses[0].addr_spec == "notify@example.org"
        assert [a.display_name for a in m.message["To"].addresses] == ["", "值班"]
        assert m.headers["From"].startswith("=?UTF-8?B?")
        assert m.message["Content-Type"].params["charset"].upper() == "UTF-8"
        assert m.headers["Content-Transfer-Encoding"] == "base64"
        assert m.headers["MIME-Version"] == "1.0"
        assert m.headers["Message-ID"].endswith("@example.org>")
        assert m.message["Date"].datetime is not None
        payload = m.raw.split(b"\r\n\r\n", 1)[1]
        assert all(len(line) <= 76 for line in payload.split(b"\r\n"))
        # Lines end in CRLF inside the base64 (the canonical form of text).
        assert base64.b64decode(payload).decode() == text.replace("\n", "\r\n")


def test_smtp_refused_recipient_is_retried(tmp_path):
    with ns.Smtp(reject_rcpt=["nobody@example.org"]) as s:
        r = one(tmp_path, alert(), "--type", "smtp", "--url", s.url(),
                "--to", "ops@example.org,nobody@example.org", "--from", "notify@example.org")
        assert r["outcome"] == "retry"
        assert r["http_status"] == 550
        assert "550 5.1.1" in r["answer"]
        assert s.received() == []


def test_smtp_down_is_retried(tmp_path):
    s = ns.Smtp()
    r = one(tmp_path, alert(), "--type", "smtp", "--url", s.url(), "--to", "ops@example.org",
            "--from", "notify@example.org")
    assert r["outcome"] == "retry"
    assert r["answer"]


# -------------------------------------------------------------------- SMS

def test_sms_json_template_escapes(tmp_path):
    """Quotes, backslashes and newlines in {to}, and the text's own
    characters (Chinese, °) in {text}, arrive exactly through a JSON
    template."""
    odd_to = 'x"y\\z\nw'
    with ns.Sms() as g:
        r = one(tmp_path, [alert(0), alert(1)], "--type", "sms", "--url", g.url("/send"),
                "--to", "18012341999," + odd_to,
                "--template", '{"to":"{to}","sign":"cordon","text":"{text}"}',
                "--content-type", "application/json; charset=utf-8", "--id", "45")
        assert r["outcome"] == "ok", r
        reqs = g.received()
        assert [q.json["to"] for q in reqs] == ["18012341999", odd_to]
        for q in reqs:
            assert q.notification == "45"
            assert q.json["text"] == r["body"]
            assert q.json["sign"] == "cordon"
        assert any(ord(c) > 127 for c in r["body"]), r["body"]


def test_sms_form_template(tmp_path):
    with ns.Sms() as g:
        r = one(tmp_path, alert(), "--type", "sms", "--url", g.url("/send"),
                "--to", "18012341999", "--template", "to={to}&msg={text}&x=1",
                "--content-type", "application/x-www-form-urlencoded", "--lang", "zh-CN")
        assert r["outcome"] == "ok", r
        [q] = g.received()
        assert q.form == {"to": "18012341999", "msg": r["body"], "x": "1"}


def test_sms_one_refused_number_fails_the_message(tmp_path):
    with ns.Sms(fail_to=["18012342999"]) as g:
        r = one(tmp_path, alert(), "--type", "sms", "--url", g.url("/send"),
                "--to", "18012341999,18012342999,18012343999",
                "--template", '{"to":"{to}","text":"{text}"}', "--content-type",
                "application/json")
        assert r["outcome"] == "retry"
        assert r["http_status"] == 500
        assert "180****2999" in r["answer"]
        assert "18012342999" not in r["answer"]
        # The first was reached (and will be again on the retry); the third not yet.
        assert [q.json["to"] for q in g.received()] == ["18012341999", "18012342999"]
