"""What the broker sends again, and what only looks the same (issue 14,
points 1 and 2): a retained message the broker sends again at a SUBSCRIBE
is judged once, across broker and cordond restarts and SIGKILL; a
redelivery (DUP) of what the spool has maps to no new row, while one of a
message cordond never read is stored; an identical message that is neither
(a second `offline` will, a second person at 36.6) is a new event.

cordond subscribes with Retain Handling 1: a resumed session gets no
retained messages at a SUBSCRIBE; a new one (here `session_expiry = 0s`, or
a client id the broker has no session for) gets them all. Field cases 10
and 11 (tests/fixtures/field-cases/, copies of shared/field-cases) are
published byte for byte. Redeliveries are made for real: a TCP proxy
between cordond and Mosquitto drops what one side sends, then cuts the
connection, and Mosquitto sends what it has no PUBACK for again, with DUP
and the same packet identifier, when cordond comes back.
Waits are on conditions (rows, metrics, the broker's log); nothing is timed."""

import os
import socket
import threading

import pytest

import harness
from harness import (field, free_port, metric, publish_many, scrape, wait_register_loaded,
                     wait_until)


def with_metrics(overrides=None):
    port = free_port()
    o = {"metrics": {"listen": "127.0.0.1:%d" % port}}
    for section, kv in (overrides or {}).items():
        o.setdefault(section, {}).update(kv)
    return port, o


def replays(port, why):
    return metric(scrape(port), 'cordon_mqtt_replays_dropped_total{why="%s"}' % why) or 0


def states(env, site, gate):
    return [r[0] for r in env.pg.query(
        "SELECT state FROM gate_status WHERE site = %s AND gate = %s ORDER BY received_at",
        (site, gate))]


def sealed_alerts(env, site):
    return env.pg.query("SELECT alert_id, state FROM alerts WHERE site = %s AND kind ="
                        " 'sealed_gate' ORDER BY raised_at", (site,))


def restart_broker(env, d, port, replayed):
    """Stop Mosquitto (it saves its retained messages and our session), start
    it again, and wait until cordond has subscribed again and, if `replayed`,
    the broker has sent it a retained message again."""
    before = replays(port, "retained")
    since = env.broker.log_size()
    env.broker.stop()
    env.broker.start()
    env.wait_connected(d, since)
    if replayed:
        wait_until(lambda: replays(port, "retained") > before,
                   what="the broker's retained messages replayed to cordond")


# ------------------------------------------------------- retained replays

@pytest.mark.parametrize("session", ["kept", "new"])
def test_retained_forced_judged_once(env, cordond, ctl, session):
    """Field case 11: `forced` published retained on a sealed gate raises one
    sealed_gate alert. Resolved by an operator, it stays resolved across a
    broker restart, a cordond restart and a SIGKILL of cordond. With the
    session kept the broker sends nothing again; with a new session at each
    connect it sends the retained `forced` each time, and that is dropped:
    neither a new event nor a new alert."""
    site = "rp" + session[0]
    new = session == "new"
    ctl("gate", "add", site, "G11", "--sealed")
    # clustered (the product's default): shard 0's session and the site's
    # own both get the retained message; one of them drops it at its gate
    port, o = with_metrics({"mqtt": {"client_id": "cordond-" + site,
                                     **({"session_expiry": "0s"} if new else {})},
                            "cluster": harness.CLUSTERED})
    d = cordond(o)
    wait_register_loaded(d)
    topic = "cordon/%s/gate/G11/status" % site
    publish_many(env.broker.port, [(topic, field("11-retained-forced.txt"))], retain=True)
    wait_until(lambda: len(sealed_alerts(env, site)) == 1, what="the sealed_gate alert")
    alert_id = sealed_alerts(env, site)[0][0]
    harness.cordonctl(d.conffile, "resolve", alert_id, "--by", "op-1", "--note", "checked",
                      expect=0)
    assert sealed_alerts(env, site) == [(alert_id, "resolved")]

    restart_broker(env, d, port, replayed=new)
    # Anything cordond took for new would be stored and judged before a
    # message published after the replay: wait for that one.
    publish_many(env.broker.port, [("cordon/%s/gate/G12/status" % site, b"online")])
    wait_until(lambda: states(env, site, "G12") == ["online"], what="the later message")
    assert sealed_alerts(env, site) == [(alert_id, "resolved")]
    assert states(env, site, "G11") == ["forced"]

    for how in ("SIGTERM", "SIGKILL"):
        if how == "SIGTERM":
            d.stop()
        else:
            d.kill()
        since = env.broker.log_size()
        d.start()
        env.wait_connected(d, since)
        if new:
            wait_until(lambda: replays(port, "retained") >= 1,
                       what="the retained `forced` replayed after a %s" % how)
        publish_many(env.broker.port, [("cordon/%s/gate/G12/status" % site, b"offline")])
        wait_until(lambda: states(env, site, "G12")[-1:] == ["offline"],
                   what="the later message")
        assert sealed_alerts(env, site) == [(alert_id, "resolved")], how
        assert states(env, site, "G11") == ["forced"], how
        publish_many(env.broker.port, [("cordon/%s/gate/G12/status" % site, b"online")])
        wait_until(lambda: states(env, site, "G12")[-1:] == ["online"], what="reset G12")
    if not new:
        assert replays(port, "retained") == 0
    d.stop()
    publish_many(env.broker.port, [(topic, b"")], retain=True)


def test_retained_again_is_new(env, cordond, ctl):
    """A retained `forced`, then a retained `closed`; while cordond is away
    (its session gone) the gate is forced again, retained: at the SUBSCRIBE
    the broker sends that `forced`, which is not the topic's retained
    payload cordond knows (`closed`): stored and judged, a second alert. An
    empty retained message (a retained message deleted) is neither a row
    nor a reject."""
    site = "ra"
    ctl("gate", "add", site, "G11", "--sealed")
    port, o = with_metrics({"mqtt": {"client_id": "cordond-ra", "session_expiry": "0s"}})
    d = cordond(o)
    wait_register_loaded(d)
    topic = "cordon/%s/gate/G11/status" % site
    publish_many(env.broker.port, [(topic, b"forced")], retain=True)
    wait_until(lambda: len(sealed_alerts(env, site)) == 1, what="the first alert")
    publish_many(env.broker.port, [(topic, b"closed")], retain=True)
    wait_until(lambda: sealed_alerts(env, site)[0][1] == "resolved", what="re-sealed")
    d.stop()
    publish_many(env.broker.port, [(topic, b"forced")], retain=True)
    since = env.broker.log_size()
    d.start()
    env.wait_connected(d, since)
    wait_until(lambda: len(sealed_alerts(env, site)) == 2, what="the second alert")
    assert states(env, site, "G11") == ["forced", "closed", "forced"]
    publish_many(env.broker.port, [(topic, b"")], retain=True)
    wait_until(lambda: metric(scrape(port), "cordon_mqtt_retained_cleared_total") == 1,
               what="the retained message deleted")
    publish_many(env.broker.port, [("cordon/%s/gate/G12/status" % site, b"online")])
    wait_until(lambda: states(env, site, "G12") == ["online"], what="the later message")
    assert env.pg.count("rejects", "topic = %s", (topic,)) == 0
    assert states(env, site, "G11") == ["forced", "closed", "forced"]
    d.stop()


def test_retained_first_seen_judged_once(env, cordond, ctl):
    """A retained message cordond has never seen (published before its session
    existed) comes with RETAIN set at the SUBSCRIBE: stored once, judged once;
    after a restart its replay is neither. A retained keyed fever event is
    judged once too."""
    site = "rq"
    ctl("gate", "add", site, "G13", "--sealed")
    topic = "cordon/%s/gate/G13/status" % site
    fever = harness.gate_event(site, "G01", "RQ-1", temp_c=38.4)
    publish_many(env.broker.port, [(topic, b"forced"), fever], retain=True)
    # A client id the broker has no session for, and no session kept: the
    # retained messages come at every SUBSCRIBE.
    port, o = with_metrics({"mqtt": {"client_id": "cordond-rq", "session_expiry": "0s"}})
    d = cordond(o)
    wait_until(lambda: len(sealed_alerts(env, site)) == 1, what="the sealed_gate alert")
    wait_until(lambda: env.pg.count("alerts", "site = %s AND kind = 'fever'", (site,)) == 1,
               what="the fever alert")
    assert states(env, site, "G13") == ["forced"]
    assert env.pg.count("gate_events", "site = %s", (site,)) == 1
    for how in ("SIGTERM", "SIGKILL"):
        d.stop() if how == "SIGTERM" else d.kill()
        since = env.broker.log_size()
        d.start()
        env.wait_connected(d, since)
        wait_until(lambda: replays(port, "retained") >= 2,
                   what="both retained messages replayed after a %s" % how)
        publish_many(env.broker.port, [("cordon/%s/gate/G14/status" % site, how.encode())])
        wait_until(lambda: env.pg.count("rejects", "topic = %s",
                                        ("cordon/%s/gate/G14/status" % site,)) >= 1,
                   what="a later message")
        assert len(sealed_alerts(env, site)) == 1, how
        assert env.pg.count("alerts", "site = %s AND kind = 'fever'", (site,)) == 1, how
        assert states(env, site, "G13") == ["forced"], how
        assert env.pg.count("gate_events", "site = %s", (site,)) == 1, how
        env.pg.query("DELETE FROM rejects WHERE topic = %s",
                     ("cordon/%s/gate/G14/status" % site,))
    d.stop()
    # clear the retained messages for the tests after this one
    publish_many(env.broker.port, [(topic, b""), (fever[0], b"")], retain=True)


# ------------------------------------------------ identical, not replays

def test_identical_wills_are_transitions(env, cordond, ctl):
    """Field case 10: offline, online, offline are three rows, and the gate
    ends offline. Siblings: two people at 36.6 through a bare-reading DIY
    sensor are two rows; the same bad payload twice is two rejects."""
    site = "rw"
    d = cordond()
    topic = "cordon/%s/gate/G10/status" % site
    publish_many(env.broker.port, [(topic, field("10-lwt-offline.txt")),
                                   (topic, field("10-lwt-online.txt")),
                                   (topic, field("10-lwt-offline.txt"))])
    wait_until(lambda: len(states(env, site, "G10")) == 3, what="three status rows")
    assert states(env, site, "G10") == ["offline", "online", "offline"]
    # the same word twice in a row is two messages too (a gate that went
    # away twice without saying it came back)
    publish_many(env.broker.port, [(topic, b"offline")])
    wait_until(lambda: len(states(env, site, "G10")) == 4, what="four status rows")

    ev = "cordon/%s/gate/G20/event" % site
    publish_many(env.broker.port, [(ev, b"36.6"), (ev, b"36.6")])
    wait_until(lambda: env.pg.count("gate_events", "site = %s AND gate = 'G20'", (site,)) == 2,
               what="two readings")
    bad = "cordon/%s/gate/G21/status" % site
    publish_many(env.broker.port, [(bad, b"exploded"), (bad, b"exploded")])
    wait_until(lambda: env.pg.count("rejects", "topic = %s", (bad,)) == 2, what="two rejects")
    assert d.alive()


# ------------------------------------------------------------ redeliveries

class Proxy:
    """A TCP proxy from 127.0.0.1:self.port to 127.0.0.1:upstream. While
    `drop_up` is set, what the client sends is read and dropped: cordond's
    PUBACKs never reach the broker; while `drop_down` is set, what the
    broker sends (counted in dropped_down). cut() closes every connection."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.drop_up = threading.Event()
        self.drop_down = threading.Event()
        self.dropped_down = 0
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, src, dst, up):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if up and self.drop_up.is_set():
                    continue
                if not up and self.drop_down.is_set():
                    with self.lock:
                        self.dropped_down += len(data)
                    continue
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.lsock.close()
        self.cut()


@pytest.mark.parametrize("how", ["reconnect", "SIGKILL"])
def test_redeliveries_make_no_rows(env, cordond, ctl, how):
    """Keyless messages (status words, ten distinct bare readings, a bad
    payload) reach cordond and are stored, but their PUBACKs are lost; the
    broker sends them again with DUP set when cordond reconnects (or
    restarts after a SIGKILL). Each stays one row, and each identical
    message that came before them as a message of its own stays a row of
    its own."""
    site = "rd" + ("k" if how == "SIGKILL" else "c")
    proxy = Proxy(env.broker.port)
    try:
        port, o = with_metrics({"mqtt": {"uri": "tcp://127.0.0.1:%d" % proxy.port,
                                         "client_id": "cordond-" + site}})
        d = cordond(o)
        status = "cordon/%s/gate/G30/status" % site
        ev = "cordon/%s/gate/G31/event" % site
        bad = "cordon/%s/gate/G32/status" % site
        words = [b"offline", b"online", b"offline", b"online", b"offline"]
        readings = [b"36.%d" % i for i in range(10)] + [b"36.6"]
        # acknowledged: an `offline` and a 36.6 that redelivered copies equal
        publish_many(env.broker.port, [(status, b"offline"), (ev, b"36.6")])
        wait_until(lambda: len(states(env, site, "G30")) == 1 and
                   env.pg.count("gate_events", "site = %s", (site,)) == 1,
                   what="the acknowledged messages stored")
        wait_until(lambda: (metric(scrape(port), "cordon_messages_received_total") or 0) >= 2,
                   what="the metrics")
        proxy.drop_up.set()
        publish_many(env.broker.port, [(status, w) for w in words] +
                     [(ev, r) for r in readings] + [(bad, b"exploded")])
        wait_until(lambda: len(states(env, site, "G30")) == 6 and
                   env.pg.count("gate_events", "site = %s", (site,)) == 12 and
                   env.pg.count("rejects", "topic = %s", (bad,)) == 1,
                   what="the unacknowledged messages stored")
        if how == "SIGKILL":
            d.kill()
        since = env.broker.log_size()
        proxy.drop_up.clear()
        proxy.cut()
        if how == "SIGKILL":
            d.start()
        env.wait_connected(d, since)
        n = len(words) + len(readings) + 1
        wait_until(lambda: replays(port, "redelivered") >= n,
                   what="the broker's %d redeliveries (DUP)" % n)
        # a message after them is stored once they are all handled
        publish_many(env.broker.port, [(status, b"online")])
        wait_until(lambda: states(env, site, "G30")[-1:] == ["online"] and
                   len(states(env, site, "G30")) >= 7, what="the later message")
        assert states(env, site, "G30") == [b.decode() for b in [b"offline"] + words] + ["online"]
        assert env.pg.count("gate_events", "site = %s", (site,)) == 12
        assert env.pg.count("rejects", "topic = %s", (bad,)) == 1
        assert d.alive()
        d.stop()
    finally:
        proxy.close()


@pytest.mark.parametrize("how", ["reconnect", "SIGKILL"])
def test_redelivery_of_what_never_arrived_is_stored(env, cordond, ctl, how):
    """The broker sends `offline` (equal to one stored before), a 36.6 (the
    same) and a new reading, but they never reach cordond (lost in transit,
    or unread when it is killed): sent again with DUP set, they are new
    messages and are stored; the gate ends offline."""
    site = "rn" + ("k" if how == "SIGKILL" else "c")
    proxy = Proxy(env.broker.port)
    try:
        port, o = with_metrics({"mqtt": {"uri": "tcp://127.0.0.1:%d" % proxy.port,
                                         "client_id": "cordond-" + site}})
        d = cordond(o)
        status = "cordon/%s/gate/G40/status" % site
        ev = "cordon/%s/gate/G41/event" % site
        publish_many(env.broker.port, [(status, b"offline"), (status, b"online"),
                                       (ev, b"36.6")])
        wait_until(lambda: states(env, site, "G40") == ["offline", "online"] and
                   env.pg.count("gate_events", "site = %s", (site,)) == 1,
                   what="the first messages stored")
        proxy.drop_down.set()
        publish_many(env.broker.port, [(status, b"offline"), (ev, b"36.6"), (ev, b"37.9")])
        wait_until(lambda: proxy.dropped_down > 0, what="the broker sending them")
        if how == "SIGKILL":
            d.kill()
        since = env.broker.log_size()
        proxy.drop_down.clear()
        proxy.cut()
        if how == "SIGKILL":
            d.start()
        env.wait_connected(d, since)
        wait_until(lambda: states(env, site, "G40") == ["offline", "online", "offline"] and
                   env.pg.count("gate_events", "site = %s", (site,)) == 3,
                   what="the messages that never arrived stored")
        publish_many(env.broker.port, [(status, b"online")])
        wait_until(lambda: len(states(env, site, "G40")) == 4, what="the later message")
        assert replays(port, "redelivered") == 0
        assert env.pg.count("gate_events", "site = %s", (site,)) == 3
        d.stop()
    finally:
        proxy.close()


# ------------------------------------------------------- the memory's file

def test_replay_memory_kept_in_its_file(private_env):
    """The replay memory outlives the spool records it came from: once the
    segment holding a retained `forced` is released (only after a save of
    the memory covers it), a SIGKILL and a restart still drop its replay.
    A damaged file is refused with a warning and the memory is rebuilt from
    what the spool still holds: here that no longer has `forced`, so its
    replay is judged once more (the residual risk docs/topics.md states).
    (`session_expiry = 0s`: a new session at every connect, so the broker
    sends the retained messages at every SUBSCRIBE.)"""
    e = private_env
    e.broker.start()
    e.pg.start()
    conf = harness.cordonctl_config(e.dir, e.pg.conninfo)
    harness.cordonctl(conf, "migrate", expect=0)
    site = "rf"
    harness.cordonctl(conf, "gate", "add", site, "G11", "--sealed", expect=0)
    # a new session at each connect: the broker sends the retained
    # messages at every SUBSCRIBE
    # Not clustered: one client, one memory file, the one damaged below
    # (clustered, each shard session keeps its own in shard-NNN/).
    port, o = with_metrics({"spool": {"max_bytes": "32MiB", "segment_bytes": "64KiB"},
                            "mqtt": {"session_expiry": "0s"}, "cluster": {"shards": "0"}})
    d = e.cordond(o)
    wait_register_loaded(d)
    topic = "cordon/%s/gate/G11/status" % site
    spool = os.path.join(e.dir, "spool")
    first = sorted(f for f in os.listdir(spool) if f.endswith(".seg"))[0]
    publish_many(e.broker.port, [(topic, b"forced")], retain=True)
    wait_until(lambda: len(sealed_alerts(e, site)) == 1, what="the sealed_gate alert")
    alert_id = sealed_alerts(e, site)[0][0]
    harness.cordonctl(d.conffile, "resolve", alert_id, "--by", "op-1", expect=0)
    # 400 readings of about 600 bytes: six segments of 64 KiB
    filler = [harness.gate_event(site, "G01", "F-%04d" % i, note="x" * 450) for i in range(400)]
    publish_many(e.broker.port, filler)
    wait_until(lambda: e.pg.count("gate_events", "site = %s", (site,)) == 400, what="the filler")
    wait_until(lambda: first not in os.listdir(spool),
               what="the segment that held `forced` released (a save covers it)")
    assert os.path.exists(os.path.join(spool, "replay"))

    d.kill()
    since = e.broker.log_size()
    d.start()
    e.wait_connected(d, since)
    wait_until(lambda: replays(port, "retained") >= 1, what="the replay of `forced`")
    publish_many(e.broker.port, [("cordon/%s/gate/G12/status" % site, b"online")])
    wait_until(lambda: states(e, site, "G12") == ["online"], what="the later message")
    assert sealed_alerts(e, site) == [(alert_id, "resolved")]
    assert states(e, site, "G11") == ["forced"]
    assert "replay memory: " in d.log()

    d.stop()
    path = os.path.join(spool, "replay")
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xff]))
    since = e.broker.log_size()
    d.start()
    e.wait_connected(d, since)
    wait_until(lambda: "cannot use the saved file (it is damaged" in d.log(),
               what="the warning about the damaged file")
    wait_until(lambda: len(sealed_alerts(e, site)) == 2,
               what="`forced` judged once more (the spool no longer holds it)")
    assert d.alive()
