"""Fake receivers of cordon-notify that answer as the real services do, for
the tests of notifier_send and of the daemon. Each runs in threads of this
process on a free port of 127.0.0.1:

  WeCom(keys, limit=20, window_s=60)       企业微信群机器人 /cgi-bin/webhook/send?key=K
  DingTalk(tokens, limit=20, window_s=60)  钉钉自定义机器人 /robot/send?access_token=T
                                           (tokens: {token: secret or None}; signed
                                           requests checked exactly as DingTalk does)
  Webhook()                                any POST, JSON body (Alertmanager's shape)
  Sms()                                    an SMS gateway: any POST, JSON / form / raw
  Smtp(reject_rcpt=())                     aiosmtpd; records the mails, decoded;
                                           550 to RCPT TO of an address in reject_rcpt

Every server:
  start() -> self      listen on a free port (also the constructor's use as `with`)
  stop()
  url(path="")         "http://127.0.0.1:PORT" + path ("smtp://127.0.0.1:PORT" for Smtp)
  received()           a copy of the list of Request records, oldest first
  wait_for(n, timeout) until at least n were received; returns received()
  clear()
  set_down(True|False, mode="close")  "close": close each connection without an
                       answer; "500": answer HTTP 500; "hang": read the request and
                       answer nothing until set_down(False) or stop() (HTTP servers)
  set_status(code, retry_after=None, body=None)  answer every request with this
                       HTTP status (None: back to the service's own behaviour)

A Request has: path, query ({name: value}), headers ({lower-case name: value}),
notification (its X-Cordon-Notification header, or None), body (bytes), json
(parsed, or None), form ({name: value} of a form body, or None), answer (the
JSON answered, or None), status (the HTTP status answered), at (time.time()).
A Mail (Smtp) has: mail_from, rcpt_tos, subject (decoded), body (decoded
text), headers ({name: value} as sent, still encoded), notification, raw.

Only what was accepted by the service counts towards the rate limits, as a
robot does not count the messages it refused.
"""

import base64
import email
import email.policy
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import free_port


def dingtalk_sign(secret, timestamp_ms):
    """DingTalk's signature (before URL encoding): base64 of HMAC-SHA256 keyed
    with the secret over "<timestamp>\\n<secret>"."""
    mac = hmac.new(secret.encode(), ("%s\n%s" % (timestamp_ms, secret)).encode(),
                   hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class Request:
    def __init__(self, path, query, headers, body):
        self.path = path
        self.query = query
        self.headers = headers
        self.notification = headers.get("x-cordon-notification")
        self.body = body
        self.json = None
        self.form = None
        ctype = headers.get("content-type", "")
        if "json" in ctype:
            try:
                self.json = json.loads(body.decode("utf-8"))
            except ValueError:
                pass
        elif ctype.startswith("application/x-www-form-urlencoded"):
            self.form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                                    keep_blank_values=True))
        self.answer = None
        self.status = None
        self.at = time.time()

    def __repr__(self):
        return "Request(%s %r %r)" % (self.path, self.notification, self.json or self.body[:80])


class _Recorder:
    """What every fake has: the records, under a lock, and waiting for them."""

    def __init__(self):
        self._lock = threading.Condition()
        self._received = []

    def _record(self, item):
        with self._lock:
            self._received.append(item)
            self._lock.notify_all()

    def received(self):
        with self._lock:
            return list(self._received)

    def clear(self):
        with self._lock:
            self._received.clear()

    def wait_for(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: %d requests after %.0f s, wanted %d"
                                         % (type(self).__name__, len(self._received), timeout, n))
                self._lock.wait(left)
            return list(self._received)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _HttpFake(_Recorder):
    """An HTTP server whose POSTs go to self.handle(req) -> (status, answer)."""

    def __init__(self):
        super().__init__()
        self.port = None
        self._httpd = None
        self._thread = None
        self._down = None
        self._status = None
        self._release = threading.Event()
        self._gate = None
        self.held = 0

    def hold(self):
        """From now on each request is read and counted in self.held, and
        answered only after release()."""
        self.held = 0
        self._gate = threading.Event()

    def release(self):
        if self._gate:
            self._gate.set()
        self._gate = None

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this a kept-alive
            # connection waits for the client's delayed ACK (40 ms) each time.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                fake._serve(self)

            do_PUT = do_POST

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name=type(self).__name__)
        self._thread.start()
        return self

    def stop(self):
        self._release.set()
        self.release()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def set_down(self, down=True, mode="close"):
        assert mode in ("close", "500", "hang")
        if down:
            self._release.clear()
        else:
            self._release.set()
        self._down = mode if down else None

    def set_status(self, code, retry_after=None, body=None):
        self._status = None if code is None else (code, retry_after, body)

    def _serve(self, h):
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        gate = self._gate
        if gate:
            with self._lock:
                self.held += 1
            gate.wait()
        down = self._down
        if down == "hang":
            self._release.wait()
            down = "close"
        if down == "close":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        parts = urllib.parse.urlsplit(h.path)
        req = Request(parts.path, dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
                      {k.lower(): v for k, v in h.headers.items()}, body)
        extra = {}
        if down == "500":
            status, answer = 500, {"error": "down"}
        elif self._status:
            status, retry_after, answer = self._status
            if retry_after is not None:
                extra["Retry-After"] = str(retry_after)
        else:
            status, answer = self.handle(req)
        req.status, req.answer = status, answer
        self._record(req)
        out = json.dumps(answer, ensure_ascii=False).encode() if answer is not None else b""
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(out)))
        for k, v in extra.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(out)

    def handle(self, req):
        return 200, None


class _Window:
    """Accepted messages per key in a sliding window."""

    def __init__(self, limit, window_s):
        self.limit = limit
        self.window_s = window_s
        self._times = {}
        self._lock = threading.Lock()

    def admit(self, key):
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._times.get(key, []) if now - t < self.window_s]
            if len(times) >= self.limit:
                self._times[key] = times
                return False
            times.append(now)
            self._times[key] = times
            return True


def _utf8_len(s):
    return len(s.encode("utf-8"))


class WeCom(_HttpFake):
    """企业微信群机器人: POST /cgi-bin/webhook/send?key=KEY. Text content up to
    2048 bytes, markdown 4096; 20 messages a minute per robot (45009); an
    unknown key 93000."""

    TEXT_MAX = 2048
    MARKDOWN_MAX = 4096

    def __init__(self, keys=("wecom-key-1",), limit=20, window_s=60.0):
        super().__init__()
        self.keys = set(keys)
        self.window = _Window(limit, window_s)

    def handle(self, req):
        key = req.query.get("key")
        if req.path != "/cgi-bin/webhook/send" or key not in self.keys:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [x]"}
        j = req.json
        if not isinstance(j, dict):
            return 200, {"errcode": 40035, "errmsg": "invalid parameter"}
        kind = j.get("msgtype")
        if kind not in ("text", "markdown"):
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        content = (j.get(kind) or {}).get("content")
        if not isinstance(content, str) or not content:
            return 200, {"errcode": 44004, "errmsg": "empty content"}
        limit = self.TEXT_MAX if kind == "text" else self.MARKDOWN_MAX
        if _utf8_len(content) > limit:
            return 200, {"errcode": 40058, "errmsg": "content exceed max length %d" % limit}
        if not self.window.admit(key):
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    def accepted(self):
        return [r for r in self.received() if r.answer and r.answer.get("errcode") == 0]


class DingTalk(_HttpFake):
    """钉钉自定义机器人: POST /robot/send?access_token=T[&timestamp=MS&sign=S].
    A robot with a secret wants the timestamp within an hour of now and the
    sign exactly DingTalk's (310000 otherwise); 20 messages a minute (130101)."""

    def __init__(self, tokens=None, limit=20, window_s=60.0):
        super().__init__()
        self.tokens = dict(tokens or {"ding-token-1": None})
        self.window = _Window(limit, window_s)

    def handle(self, req):
        token = req.query.get("access_token")
        if req.path != "/robot/send" or token not in self.tokens:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        secret = self.tokens[token]
        if secret is not None:
            ts, sign = req.query.get("timestamp"), req.query.get("sign")
            if not ts or not sign or not ts.isdigit():
                return 200, {"errcode": 310000, "errmsg": "sign not match, more: [no sign]"}
            if abs(int(ts) - time.time() * 1000) > 3600 * 1000:
                return 200, {"errcode": 310000, "errmsg": "sign not match, more: [timestamp]"}
            if not hmac.compare_digest(sign, dingtalk_sign(secret, ts)):
                return 200, {"errcode": 310000, "errmsg": "sign not match, more: [sign]"}
        j = req.json
        if not isinstance(j, dict):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
        kind = j.get("msgtype")
        part = j.get(kind) if kind in ("text", "markdown") else None
        if not isinstance(part, dict):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 msgtype"}
        want = ("content",) if kind == "text" else ("title", "text")
        if not all(isinstance(part.get(k), str) and part.get(k) for k in want):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 %s" % "/".join(want)}
        if not self.window.admit(token):
            return 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        return 200, {"errcode": 0, "errmsg": "ok"}


class Webhook(_HttpFake):
    """Records every POST and answers 200 (Alertmanager's receivers do)."""

    def handle(self, req):
        return 200, {"status": "ok"}


class Sms(_HttpFake):
    """An SMS gateway: records every POST and answers 200, or 500 for a
    number in fail_to (the "to" of a JSON or form body, or in a raw body)."""

    def __init__(self, fail_to=()):
        super().__init__()
        self.fail_to = set(fail_to)

    def to_of(self, req):
        if isinstance(req.json, dict):
            return req.json.get("to")
        if req.form is not None:
            return req.form.get("to")
        text = req.body.decode("utf-8", "replace")
        return next((t for t in self.fail_to if t in text), None)

    def handle(self, req):
        if self.to_of(req) in self.fail_to:
            return 500, {"code": "FAIL", "message": "gateway refused"}
        return 200, {"code": "OK"}


class Mail:
    def __init__(self, mail_from, rcpt_tos, raw):
        self.mail_from = mail_from
        self.rcpt_tos = list(rcpt_tos)
        self.raw = raw
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.headers = {k: v for k, v in email.message_from_bytes(raw).items()}
        self.subject = str(msg["Subject"]) if msg["Subject"] is not None else None
        self.notification = self.headers.get("X-Cordon-Notification")
        self.body = msg.get_content() if not msg.is_multipart() else None
        self.message = msg
        self.at = time.time()

    def __repr__(self):
        return "Mail(%r -> %r: %r)" % (self.mail_from, self.rcpt_tos, self.subject)


class Smtp(_Recorder):
    """An SMTP server (aiosmtpd) that accepts every mail and records it
    decoded. set_down(True) stops listening (connections refused)."""

    def __init__(self, reject_rcpt=()):
        super().__init__()
        self.port = free_port()
        self.reject_rcpt = set(reject_rcpt)
        self._controller = None

    def start(self):
        from aiosmtpd.controller import Controller

        fake = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address in fake.reject_rcpt:
                    return "550 5.1.1 <%s>: Recipient address rejected" % address
                envelope.rcpt_tos.append(address)
                return "250 2.1.5 Ok"

            async def handle_DATA(self, server, session, envelope):
                fake._record(Mail(envelope.mail_from, envelope.rcpt_tos, envelope.original_content
                                  or envelope.content))
                return "250 2.0.0 Ok: queued as %d" % len(fake.received())

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self):
        if self._controller:
            self._controller.stop()
            self._controller = None

    def url(self, path=""):
        return "smtp://127.0.0.1:%d%s" % (self.port, path)

    def set_down(self, down=True, mode="close"):
        if down:
            self.stop()
        elif not self._controller:
            self.start()
