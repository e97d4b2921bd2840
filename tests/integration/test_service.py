"""Running as a service: the systemd notify protocol, SIGHUP reload, and
the Prometheus metrics and health endpoints."""

import json
import os
import signal
import socket
import tempfile
import urllib.error
import urllib.request

import harness
from harness import Collector, free_port, gate_event, metric, publish_many, tail, wait_until
from harness import http_get as get


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cordon-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.seen = []

    def poll(self):
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                return self.seen
            self.seen.extend(line for line in data.split("\n") if line)

    def first(self, prefix):
        return next((i for i, m in enumerate(self.poll()) if m.startswith(prefix)), None)

    def close(self):
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def test_notify_protocol(env, cordond):
    ns = NotifySocket()
    try:
        d = cordond(start=False)
        d.start({"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000"})
        env.wait_connected(d)
        wait_until(lambda: ns.first("READY=1") is not None, what="READY=1")
        wait_until(lambda: ns.first("WATCHDOG=1") is not None, what="WATCHDOG=1")
        wait_until(lambda: ns.first("STATUS=") is not None, what="a STATUS= line")
        status = next(m for m in ns.poll() if m.startswith("STATUS="))
        assert "broker up" in status and "backlog" in status, status
        # As root (the tests, a container), cordond warns that the unit's
        # user could not open the spool files it makes; as anyone else, not.
        assert ("warning: running as root" in d.log()) == (os.geteuid() == 0), d.log()

        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: ns.first("RELOADING=1") is not None, what="RELOADING=1")
        wait_until(lambda: ns.poll().count("READY=1") >= 2, what="READY=1 after the reload")
        assert d.stop() == 0
        seen = ns.poll()
        order = [seen.index("READY=1"), seen.index("RELOADING=1"),
                 len(seen) - 1 - seen[::-1].index("READY=1"), seen.index("STOPPING=1")]
        assert order == sorted(order), seen
        assert seen.index("WATCHDOG=1") < seen.index("STOPPING=1")
    finally:
        ns.close()


def rewrite_config(d, section, key, value):
    d.config.setdefault(section, {})[key] = value
    with open(d.conffile, "w") as f:
        for sec, kv in d.config.items():
            f.write("[%s]\n" % sec)
            f.writelines("%s = %s\n" % (k, v) for k, v in kv.items())
            f.write("\n")


def test_sighup_reload(env, cordond):
    d = cordond({"rules": {"fever_c": "37.3", "repeat_interval": "0s"}})
    with Collector(env.broker.port, "cordon/rl/alert/fever") as col:
        publish_many(env.broker.port, [gate_event("rl", "G01", "A", person="P-1", temp_c=37.5)])
        col.wait_for(lambda t, p: json.loads(p)["subject"] == "person:P-1")

        # A valid change applies without a restart: 37.5 is no longer a fever.
        rewrite_config(d, "rules", "fever_c", "37.8")
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in d.log(), what="reload applied")
        publish_many(env.broker.port, [gate_event("rl", "G01", "B", person="P-2", temp_c=37.5),
                                       gate_event("rl", "G01", "C", person="P-3", temp_c=37.9)])
        col.wait_for(lambda t, p: json.loads(p)["subject"] == "person:P-3")
        assert not any(json.loads(p)["subject"] == "person:P-2" for _, p in col.snapshot())

        # An invalid file is refused whole, with its reasons; the old one stays.
        with open(d.conffile, "a") as f:
            f.write("[rules]\nbogus_key = 1\n")
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused: keeping" in d.log(), what="reload refused")
        assert "unknown key 'bogus_key'" in d.log()
        publish_many(env.broker.port, [gate_event("rl", "G01", "D", person="P-4", temp_c=37.6),
                                       gate_event("rl", "G01", "E", person="P-5", temp_c=38.0)])
        col.wait_for(lambda t, p: json.loads(p)["subject"] == "person:P-5")
        assert not any(json.loads(p)["subject"] == "person:P-4" for _, p in col.snapshot())

        # A key that needs a restart keeps its running value, and says so.
        rewrite_config(d, "spool", "segment_bytes", "1MiB")
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "takes effect at the next restart" in d.log(), what="restart notice")

        # Segments keep the size they got at the start (64 MiB here, the
        # default): a max_bytes that would need more than 512 open segment
        # files is held at 512 of them (EMFILE otherwise).
        rewrite_config(d, "spool", "max_bytes", "64GiB")
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "using max_bytes 34359738368" in d.log(),
                   what="max_bytes held to 512 segments of 64 MiB")
    assert d.alive()
    assert d.stop() == 0


def test_metrics_and_health(private_env):
    env = private_env
    env.broker.start()
    env.pg.start()
    port = free_port()
    d = env.cordond({"metrics": {"listen": "127.0.0.1:%d" % port}})
    base = "http://127.0.0.1:%d" % port
    wait_until(lambda: get(base + "/healthz")[0] == 200, what="/healthz 200")

    msgs = [gate_event("mt", "G01", "M-%03d" % i, temp_c=36.5) for i in range(100)]
    msgs.append(gate_event("mt", "G01", "F-1", person="P-9", temp_c=38.8))
    msgs.append(("cordon/mt/gate/G01/event", b"not json"))
    publish_many(env.broker.port, msgs)

    # Each figure is counted by the thread that did the work (the store, the
    # rules, the intake) and /metrics is a rendering of every 2 s: wait for a
    # rendering that has them all.
    want = {
        'cordon_events_stored_total{type="gate_event"}': 101,
        "cordon_messages_received_total": 102,
        'cordon_messages_total{type="gate_event"}': 101,
        'cordon_rejects_total{reason="not_json"}': 1,
        'cordon_alert_transitions_total{kind="fever",transition="raised"}': 1,
        "cordon_postgres_up": 1,
        "cordon_broker_up": 1,
        "cordon_fever_alert_latency_seconds_count": 1,
    }
    last = {}

    def scraped():
        code, text = get(base + "/metrics")
        last.update((k, metric(text, k)) for k in want)
        return code == 200 and all(last[k] == v for k, v in want.items()) and text
    text = wait_until(scraped, what=lambda: "metrics %r (have %r)" % (want, last))
    assert metric(text, "cordon_batch_rows_count") >= 1

    env.broker.stop()
    wait_until(lambda: get(base + "/healthz")[0] == 503, what="/healthz 503 without the broker")
    assert "broker" in get(base + "/healthz")[1]
    env.broker.start()
    wait_until(lambda: get(base + "/healthz")[0] == 200, what="/healthz 200 again")
    assert get(base + "/nowhere")[0] == 404
    assert d.alive()


def test_daemon_state_online_then_offline(env, cordond):
    """cordon/_daemon/<client_id>/state: retained `online` once connected,
    and `offline` published (and acknowledged) before a clean stop
    disconnects, so a later subscriber gets `offline` as the retained state."""
    topic = "cordon/_daemon/cordond-test/state"
    with Collector(env.broker.port, topic) as col:
        d = cordond()
        col.wait_for(lambda t, p: p == b"online")
        assert d.stop() == 0
        col.wait_for(lambda t, p: p == b"offline")
    with Collector(env.broker.port, topic) as late:
        late.wait_for(lambda t, p: p == b"offline")
    assert "did not acknowledge our offline state" not in d.log(), tail(d.logfile)


class Slowloris:
    """Clients that hold connections to a port without finishing a request:
    `idle` connect and never send; `trickle` send a request header a byte
    every 0.3 s, forever, and connect again when cut off (an idle timeout
    never fires for them)."""

    def __init__(self, port, idle, trickle):
        import threading
        self.port = port
        self.stop = threading.Event()
        self.idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
        self.reconnects = 0
        self.threads = [threading.Thread(target=self._trickle, daemon=True) for _ in range(trickle)]
        for t in self.threads:
            t.start()

    def _trickle(self):
        header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100000
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            except OSError:
                self.stop.wait(0.1)
                continue
            try:
                for i in range(len(header)):
                    if self.stop.wait(0.3):
                        break
                    s.send(header[i:i + 1])
            except OSError:
                self.reconnects += 1
            finally:
                s.close()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        for s in self.idle:
            s.close()


def test_healthz_answers_beside_slow_clients(private_env):
    """/healthz answers while 20 idle and 20 trickling ("slowloris")
    connections hold the metrics port. The trickling ones never go idle, so
    without eviction every slot stays taken and /healthz is never answered
    (the 10 s timeout here stands for "never": with eviction it answers in
    milliseconds)."""
    import time
    env = private_env
    env.broker.start()
    env.pg.start()
    port = free_port()
    d = env.cordond({"metrics": {"listen": "127.0.0.1:%d" % port}})
    base = "http://127.0.0.1:%d" % port
    wait_until(lambda: get(base + "/healthz")[0] == 200, what="/healthz 200")

    attack = Slowloris(port, idle=20, trickle=20)
    try:
        # Every trickling client holds its connection before we ask.
        time.sleep(1.0)
        took = []
        for _ in range(20):
            t0 = time.monotonic()
            with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
                assert r.status == 200 and r.read() == b"ok\n"
            took.append(time.monotonic() - t0)
        # the evictions are counted in the HTTP thread, rendered every 2 s
        text = wait_until(lambda: (lambda c, t: c == 200 and (metric(
            t, "cordon_metrics_connections_evicted_total") or 0) > 0 and t)(
            *get(base + "/metrics")), what="the evictions in /metrics")
        assert metric(text, "cordon_broker_up") == 1
        print("/healthz beside 40 slow clients: 20 answers, slowest %.1f ms, median %.1f ms"
              % (max(took) * 1e3, sorted(took)[10] * 1e3))
    finally:
        attack.close()
    assert "shut down the one idle the longest" in d.log()
    assert d.alive()
