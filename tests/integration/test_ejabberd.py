"""ejabberd as the clustered broker (docs/scaling.md, "The broker"): a
two-node cluster of Debian's ejabberd 23.01 (harness.Ejabberd, mod_mqtt
configured as the docs say), one PostgreSQL, real cordond.

- cordond on one node takes a stream published on the other, every event
  once in PostgreSQL, and its fever alert reaches a subscriber on the other;
- cordond with `uri = node1,node2` survives the loss of node 1: it
  reconnects to node 2 and goes on alerting; what the publishers send again
  (their unacknowledged messages, or the whole stream) ends up stored once;
- ejabberd's behaviour the design leans on, pinned: a session taken over
  from another node (DISCONNECT 0x8E to the old connection, the session and
  its queue carried over), a session lost with its node, retained messages
  per node, shared subscriptions refused, one message in flight per
  session, the CONNACK's limits.

The cluster starts once for the module (about 10 s). Each test has its own
site and cordond (own client id and spool).
"""

import os
import shutil
import socket
import struct
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import harness
from harness import (ACTIVE, Collector, Cordond, Ejabberd, Notifier, Postgres, Stream, Web,
                     gate_event, make_tmpdir, publish_many, sequence_events, tail, wait_until)
from notify_servers import Webhook

LONG = 120


class Cluster:
    def __init__(self, dir):
        self.dir = dir
        os.mkdir(os.path.join(dir, "pg"))
        self.ej = Ejabberd(os.path.join(dir, "ejabberd"), nodes=2)
        self.pg = Postgres(os.path.join(dir, "pg"))
        self.daemons = []

    def cordond(self, name, uri, overrides=None):
        """A cordond named `name` (client id, spool dir) logging in to
        ejabberd, [mqtt] uri = `uri`; started, and returned once it says it
        is ready (connected and subscribed)."""
        work = os.path.join(self.dir, name)
        os.mkdir(work)
        o = {"mqtt": {"uri": uri, "client_id": name, "username": self.ej.user,
                      "password_file": self.ej.password_file}}
        for section, kv in (overrides or {}).items():
            o.setdefault(section, {}).update(kv)
        d = Cordond(work, self.ej.nodes[0].port, self.pg.conninfo, o)
        self.daemons.append(d)
        d.start()
        wait_until(lambda: ready(d), LONG, what="%s ready" % name)
        return d

    def close(self):
        try:
            for d in self.daemons:
                try:
                    d.stop()
                finally:
                    if d in ACTIVE:
                        ACTIVE.remove(d)
        finally:
            try:
                self.ej.close()
            finally:
                self.pg.stop()
                if self.pg in ACTIVE:
                    ACTIVE.remove(self.pg)


def ready(d):
    assert d.alive(), "cordond exited with %r:\n%s" % (d.returncode(), tail(d.logfile))
    return "ready: broker connected and subscribed" in d.log()


def connected_at(d, node):
    """cordond d's log says it connected to `node` (an EjabberdNode)."""
    return d.log().count("MQTT connected to the broker at %s as %s" % (node.uri, d.client_id))


@pytest.fixture(scope="module")
def cl(request):
    c = Cluster(make_tmpdir("cordon-it-"))
    failed = request.session.testsfailed
    ok = False
    try:
        c.pg.start()
        c.ej.start()
        yield c
        ok = True
    finally:
        c.close()
        if ok and request.session.testsfailed == failed and not os.environ.get("CORDON_KEEP"):
            shutil.rmtree(c.dir, ignore_errors=True)
        else:
            print("\nkept %s for inspection" % c.dir)


def stored(pg, site):
    return pg.count("gate_events", "site = %s", (site,))


def assert_each_once(pg, site, n, extra=()):
    """site's gate_events hold exactly the keys of sequence_events(site, n)
    and `extra`, each once."""
    keys = [r[0] for r in pg.query("SELECT event_key FROM gate_events WHERE site = %s", (site,))]
    want = {"%s/G%02d/S-%07d" % (site, i % 4 + 1, i) for i in range(n)} | set(extra)
    assert len(keys) == len(set(keys)), "%d rows, %d keys" % (len(keys), len(set(keys)))
    missing = want - set(keys)
    assert not missing, "%d of %d events missing, e.g. %s" % (len(missing), n, sorted(missing)[:5])
    assert set(keys) == want, "unexpected rows: %s" % sorted(set(keys) - want)[:5]


def fever(site, gate, id, person, temp=38.7):
    return gate_event(site, gate, id, person=person, card="C-" + person, temp_c=temp)


def alert_of(col, site, person):
    """The first fever `raised` for person on site in Collector col, or None."""
    import json
    for topic, payload in col.snapshot():
        if topic == "cordon/%s/alert/fever" % site:
            a = json.loads(payload)
            if a["transition"] == "raised" and a["subject"] == "person:" + person:
                return a
    return None


# ---------------------------------------------------------------- cordond on the cluster

def test_stream_through_the_other_node(cl):
    """A gate's stream published on node 2 reaches cordond on node 1, every
    event once; the fever alert cordond publishes on node 1 reaches a
    console subscribed on node 2."""
    site, n = "ejx", 3000
    n1, n2 = cl.ej.nodes
    d = cl.cordond("cordond-ejx", n1.uri)
    assert connected_at(d, n1)
    with Collector(n2.port, "cordon/%s/alert/#" % site) as col:
        t0 = time.monotonic()
        s = Stream(n2.port, list(sequence_events(site, n)), "gate-ejx").start()
        s.wait(LONG)
        wait_until(lambda: stored(cl.pg, site) >= n, LONG,
                   what=lambda: "%d rows (have %d)" % (n, stored(cl.pg, site)))
        secs = time.monotonic() - t0
        print("\n[ejabberd] %d events published on node 2, stored by cordond on node 1:"
              " %.1f s, %.0f events/s" % (n, secs, n / secs))
        assert_each_once(cl.pg, site, n)
        publish_many(n2.port, [fever(site, "G01", "F-1", "P-1")])
        a = wait_until(lambda: alert_of(col, site, "P-1"), LONG, what="fever alert on node 2")
        assert a["site"] == site and a["temp_c"] == 38.7, a
    wait_until(lambda: stored(cl.pg, site) == n + 1, what="the fever's row")
    assert_each_once(cl.pg, site, n, extra={"%s/G01/F-1" % site})


def test_cordond_fails_over_to_node_2(cl):
    """cordond with uri = node1,node2 connects to node 1; node 1 stops
    (SIGTERM: ejabberd ends its sessions) in the middle of a stream a gate
    publishes on node 2. cordond reconnects to node 2 and subscribes again
    (a new session: ejabberd's sessions live in their node), and alerts on.
    What the broker took for cordond while it had no session on node 2 is
    gone (counted, printed); the gate sending its stream again stores the
    rest, nothing twice."""
    site, n = "ejf", 4000
    n1, n2 = cl.ej.nodes
    d = cl.cordond("cordond-ejf", cl.ej.uris([0, 1]))
    assert connected_at(d, n1) == 1 and not connected_at(d, n2)
    try:
        with Collector(n2.port, "cordon/%s/alert/#" % site) as col:
            s = Stream(n2.port, list(sequence_events(site, n)), "gate-ejf", rate=1000).start()
            wait_until(lambda: stored(cl.pg, site) >= n // 4, LONG,
                       what=lambda: "a quarter stored (have %d)" % stored(cl.pg, site))
            cl.ej.stop_node(0)
            wait_until(lambda: connected_at(d, n2), LONG, what="cordond connected to node 2")
            s.wait(LONG)
            # Alerts go on from node 2.
            publish_many(n2.port, [fever(site, "G02", "F-1", "P-9")])
            wait_until(lambda: alert_of(col, site, "P-9"), LONG, what="fever alert after failover")
            # Everything the gate sent after the resubscription is stored:
            # the fever (published last) is, so the rest is too.
            wait_until(lambda: cl.pg.count("gate_events", "site = %s AND event_key = %s",
                                           (site, "%s/G02/F-1" % site)) == 1, LONG)
            before = stored(cl.pg, site) - 1
            print("\n[ejabberd] node 1 stopped under cordond: %d of %d events stored before the"
                  " gate sent them again (%d lost with the session on node 1 or published"
                  " before cordond subscribed on node 2)" % (before, n, n - before))
            # The gate sends everything again (it keeps what the platform has
            # not confirmed): every event once.
            publish_many(n2.port, sequence_events(site, n))
            wait_until(lambda: stored(cl.pg, site) >= n + 1, LONG,
                       what=lambda: "%d rows (have %d)" % (n + 1, stored(cl.pg, site)))
            assert_each_once(cl.pg, site, n, extra={"%s/G02/F-1" % site})
        assert d.alive()
    finally:
        cl.ej.start_node(0)


def test_gate_fails_over_cordond_stays(cl):
    """cordond on node 2; the gate publishes on node 1 and lists both nodes.
    Node 1 is killed (SIGKILL) mid-stream: the gate reconnects to node 2 and
    sends again what node 1 had not acknowledged; cordond's session, on
    node 2, stays. What node 1 had acknowledged but not yet handed to node 2
    (Erlang's distribution buffers die with the node) is lost: counted and
    printed, then the gate sends everything again and every event is stored
    once."""
    site, n = "ejg", 4000
    n1, n2 = cl.ej.nodes
    d = cl.cordond("cordond-ejg", cl.ej.uris([1, 0]))
    assert connected_at(d, n2) == 1
    try:
        s = Stream(n1.port, list(sequence_events(site, n)), "gate-ejg", rate=1000,
                   more_ports=[n2.port]).start()
        wait_until(lambda: stored(cl.pg, site) >= n // 4, LONG,
                   what=lambda: "a quarter stored (have %d)" % stored(cl.pg, site))
        acked_at_kill = s.acked
        cl.ej.kill_node(0)
        s.wait(LONG)
        assert s.connects >= 2, s.progress()
        # The last event the gate sent is stored: cordond has all it will get.
        last = "%s/G%02d/S-%07d" % (site, (n - 1) % 4 + 1, n - 1)
        wait_until(lambda: cl.pg.count("gate_events", "event_key = %s", (last,)) == 1, LONG,
                   what="the last event stored")
        lost = n - stored(cl.pg, site)
        print("\n[ejabberd] node 1 killed under a gate at 1,000 events/s (%d acknowledged then):"
              " %d of %d events lost before the gate sent them again" % (acked_at_kill, lost, n))
        publish_many(n2.port, sequence_events(site, n))
        wait_until(lambda: stored(cl.pg, site) >= n, LONG,
                   what=lambda: "%d rows (have %d)" % (n, stored(cl.pg, site)))
        assert_each_once(cl.pg, site, n)
        assert connected_at(d, n2) == 1, "cordond reconnected:\n" + tail(d.logfile)
    finally:
        cl.ej.start_node(0)


def test_notify_and_web_fail_over(cl):
    """cordon-notify and cordon-web with uri = node1,node2 reconnect to node 2
    when node 1 stops (their reconnects are their own, mqtt_broker.h: Paho's
    would stay on node 1), and cordon-notify takes an alert published there."""
    n1, n2 = cl.ej.nodes
    auth = {"uri": cl.ej.uris([0, 1]), "username": cl.ej.user,
            "password_file": cl.ej.password_file}
    work = os.path.join(cl.dir, "notify-web")
    os.mkdir(work)
    hook = Webhook().start()
    try:
        url = os.path.join(work, "hook.url")
        with open(url, "w") as f:
            f.write(hook.url("/alerts") + "\n")
        n = Notifier(work, n1.port, cl.pg.conninfo, {
            "mqtt": dict(auth), "notify": {"client_id": "notify-ej"},
            "receiver.hook": {"type": "webhook", "url_file": url},
            "route.all": {"subjects": "person:*", "group_wait": "0s", "receivers": "hook"}})
        w = Web(work, n1.port, cl.pg.conninfo, {"mqtt": dict(auth)})
        cl.daemons += [n, w]
        n.start()
        w.start()
        for d in (n, w):
            wait_until(lambda: "MQTT: connected to %s" % n1.uri in d.log(), LONG,
                       what="%s on node 1" % d.name)
        cl.ej.stop_node(0)
        try:
            for d in (n, w):
                wait_until(lambda: "MQTT: connected to %s" % n2.uri in d.log(), LONG,
                           what=lambda: "%s on node 2:\n%s" % (d.name, tail(d.logfile, 10)))
            wait_until(lambda: b'"status":"ok"' in http_get(w, "/healthz").replace(b" ", b""),
                       LONG, what="cordon-web healthy on node 2")
            site = "ejn"
            d = cl.cordond("cordond-ejn", n2.uri)
            publish_many(n2.port, [fever(site, "G01", "F-1", "P-7")])
            # (every cordond of the module is subscribed to every site: each
            # raises it; the inbox keeps one row per alert id)
            wait_until(lambda: cl.pg.count("notify_inbox", "alert->>'subject' = %s",
                                           ("person:P-7",)) >= 1, LONG,
                       what="the alert in cordon-notify's inbox")
            assert d.alive()
        finally:
            cl.ej.start_node(0)
    finally:
        hook.stop()


def http_get(web, path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    try:
        c.request("GET", path)
        return c.getresponse().read()
    finally:
        c.close()


# ---------------------------------------------------------------- ejabberd's behaviour

def after_this_second(t):
    """Wait until the wall clock is past the second of time.time() value t.
    ejabberd orders two registrations of one session by (second, a counter
    of the node that made it) (misc:unique_timestamp): within one second,
    the counters of two nodes decide, not which came last; a connection
    that takes a session over from another node in the second the session
    was registered may be told it was replaced itself. Takeovers in the
    tests below wait for the next second (a lease-driven takeover comes
    seconds after the session's registration: docs/scaling.md)."""
    wait_until(lambda: time.time() >= int(t) + 1, interval=0.05, what="the next second")


class V5:
    """A paho MQTT 5 client on one node: its CONNACK's flags and properties,
    the DISCONNECT it got, the messages it received; .at: the time of its
    CONNACK (its session registered by then)."""

    def __init__(self, cl, node, client_id, clean_start, expiry=3600, will=None):
        self.msgs = []
        self.connack = None
        self.disconnect = None
        self.got_connack = threading.Event()
        self.gone = threading.Event()
        self.subacks = []
        c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(cl.ej.user, cl.ej.password)
        if will:
            c.will_set(will[0], will[1], qos=1)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = lambda cl_, ud, m: self.msgs.append((m.topic, bytes(m.payload)))
        c.on_subscribe = lambda cl_, ud, mid, codes, props=None: self.subacks.append(
            [rc.value for rc in codes])
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry
        c.connect("127.0.0.1", node.port, keepalive=30, clean_start=clean_start,
                  properties=props)
        c.loop_start()
        self.client = c
        assert self.got_connack.wait(harness.TIMEOUT), "no CONNACK from %s" % node.name

    def _on_connect(self, client, userdata, flags, rc, props=None):
        self.connack = (flags.get("session present"), rc.value, props)
        self.at = time.time()
        self.got_connack.set()

    def _on_disconnect(self, client, userdata, rc, props=None):
        reason = getattr(props, "ReasonString", None) if props else None
        self.disconnect = (rc.value if hasattr(rc, "value") else rc, reason)
        self.gone.set()
        client.disconnect()   # no reconnect of paho's own

    def subscribe(self, topic):
        n = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        wait_until(lambda: len(self.subacks) > n or self.gone.is_set(),
                   what="SUBACK for " + topic)
        return self.subacks[-1] if len(self.subacks) > n else None

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_session_takeover_across_nodes(cl):
    """The fencing that docs/scaling.md leans on: a client connecting on
    node 2 with the client id of a session held by a live connection on
    node 1 takes the session over. The old connection gets DISCONNECT 0x8E
    (session taken over); with clean start off the new one finds the session
    (session present, its subscription, its queue), from either node; with
    clean start on the old session is dropped. The old connection's will is
    published at the takeover."""
    n1, n2 = cl.ej.nodes
    cid, topic = "cordon-shard-007", "ejtest/t/gate/G1/event"
    with Collector(n2.port, "ejtest/_daemon/#") as wills:
        a = V5(cl, n1, cid, clean_start=False, will=("ejtest/_daemon/x/state", b"offline"))
        assert a.connack[0] == 0
        assert a.subscribe("ejtest/t/#") == [1]
        publish_many(n2.port, [(topic, b"m1")])
        wait_until(lambda: (topic, b"m1") in a.msgs, what="m1 on node 1")

        after_this_second(a.at)
        b = V5(cl, n2, cid, clean_start=False)
        wait_until(a.gone.is_set, what="the old connection closed")
        assert a.disconnect == (0x8E, "Resumed by another connection"), a.disconnect
        assert b.connack[0] == 1, "session present: %r" % (b.connack,)
        assert b.disconnect is None, b.disconnect
        # The old connection's will went out at the takeover.
        wait_until(lambda: ("ejtest/_daemon/x/state", b"offline") in wills.snapshot(),
                   what="the will of the taken-over connection")
        # B has A's subscription without subscribing.
        publish_many(n1.port, [(topic, b"m2")])
        wait_until(lambda: (topic, b"m2") in b.msgs, what="m2 on node 2")
        assert (topic, b"m2") not in a.msgs

        # Away (session kept by node 2), messages queue; C resumes on node 1.
        b.close()
        publish_many(n1.port, [(topic, b"m3"), (topic, b"m4")])
        after_this_second(b.at)
        c = V5(cl, n1, cid, clean_start=False)
        assert c.connack[0] == 1
        wait_until(lambda: [p for t, p in c.msgs] == [b"m3", b"m4"],
                   what=lambda: "m3, m4 queued (have %r)" % c.msgs)

        # Clean start on: the session is not carried over, the old
        # connection is still told 0x8E.
        after_this_second(c.at)
        d = V5(cl, n2, cid, clean_start=True)
        wait_until(c.gone.is_set, what="C closed")
        assert c.disconnect == (0x8E, "Replaced by another connection"), c.disconnect
        assert d.connack[0] == 0
        publish_many(n1.port, [(topic, b"m5")])
        for x in (a, b, c, d):
            x.close()
        assert (topic, b"m5") not in d.msgs
    print("\n[ejabberd] takeover across nodes: DISCONNECT 0x8E to the old connection,"
          " session present 1 with clean start off (queue and subscriptions carried over),"
          " its will published")


def test_session_dies_with_its_node(cl):
    """A session lives in the node its connection is (or was last) on: when
    that node dies its session is gone, queue and subscriptions, and a
    client resuming on the other node gets a new, empty session."""
    n1, n2 = cl.ej.nodes
    cid, topic = "cordon-shard-008", "ejtest/d/gate/G1/event"
    a = V5(cl, n2, cid, clean_start=False)
    assert a.subscribe("ejtest/d/#") == [1]
    a.close()
    publish_many(n1.port, [(topic, b"q1"), (topic, b"q2")])   # queued on node 2
    cl.ej.kill_node(1, settle=True)
    try:
        after_this_second(a.at)
        b = V5(cl, n1, cid, clean_start=False)
        assert b.connack[0] == 0, "session present after its node died: %r" % (b.connack,)
        publish_many(n1.port, [(topic, b"q3")])   # nobody subscribed: dropped
        assert b.subscribe("ejtest/d/#") == [1], "disconnected: %r" % (b.disconnect,)
        publish_many(n1.port, [(topic, b"q4")])
        wait_until(lambda: (topic, b"q4") in b.msgs, what="q4")
        assert [p for t, p in b.msgs] == [b"q4"], b.msgs
        b.close()
        # ejabberd logs "Failed to copy session state" only when node 1 has
        # not yet dropped the dead node's session record: which of the two
        # happens first is not ours to order, so the log is not asserted.
    finally:
        cl.ej.start_node(1)


def test_retained_shared_and_limits(cl):
    """Retained messages stay on the node that took them; a shared
    subscription ends the connection (DISCONNECT 0x9E); the CONNACK states
    no Receive Maximum and no Maximum Packet Size."""
    n1, n2 = cl.ej.nodes
    publish_many(n1.port, [("ejtest/r/alerts/a1", b"open")], retain=True)
    x = V5(cl, n1, "ret-1", clean_start=True, expiry=0)
    x.subscribe("ejtest/r/alerts/+")
    wait_until(lambda: x.msgs, what="the retained message on node 1")
    y = V5(cl, n2, "ret-2", clean_start=True, expiry=0)
    y.subscribe("ejtest/r/alerts/+")
    # One more message after the subscription, on node 1: when it has come,
    # a retained one would have come before it.
    publish_many(n1.port, [("ejtest/r/alerts/a2", b"late")])
    wait_until(lambda: ("ejtest/r/alerts/a2", b"late") in y.msgs, what="a2 on node 2")
    assert ("ejtest/r/alerts/a1", b"open") not in y.msgs, y.msgs
    props = x.connack[2]
    for p in (x, y):
        p.close()
    assert not hasattr(props, "ReceiveMaximum") and not hasattr(props, "MaximumPacketSize"), props
    print("\n[ejabberd] CONNACK properties: %s" % props)

    s = V5(cl, n1, "share-1", clean_start=True, expiry=0)
    assert s.subscribe("$share/g/ejtest/r/#") is None
    wait_until(s.gone.is_set, what="the connection closed")
    assert s.disconnect[0] == 0x9E, s.disconnect
    s.close()


def _raw_packet(sock):
    """One MQTT packet from sock: (type, flags, body)."""
    head = sock.recv(1)
    if not head:
        raise EOFError
    mult, length = 1, 0
    while True:
        b = sock.recv(1)[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return head[0] >> 4, head[0] & 0xF, body


def test_one_message_in_flight_per_session(cl):
    """ejabberd sends a subscriber one QoS 1 message at a time: the next
    only after the PUBACK of the one before, whatever the client's Receive
    Maximum (an MQTT 3.1.1 client here, with no such property)."""
    n1, n2 = cl.ej.nodes
    user, pw = cl.ej.user.encode(), cl.ej.password.encode()
    cid = b"raw-1"
    vh = b"\x00\x04MQTT\x04\xc2\x00\x1e"    # 3.1.1, user+password+clean session, keepalive 30
    payload = b"".join(struct.pack("!H", len(x)) + x for x in (cid, user, pw))
    sock = socket.create_connection(("127.0.0.1", n1.port), timeout=10)
    try:
        body = vh + payload
        sock.sendall(bytes([0x10, len(body)]) + body)
        assert _raw_packet(sock)[0] == 2   # CONNACK
        filt = b"ejtest/q/#"
        body = b"\x00\x01" + struct.pack("!H", len(filt)) + filt + b"\x01"
        sock.sendall(bytes([0x82, len(body)]) + body)
        assert _raw_packet(sock)[0] == 9   # SUBACK
        publish_many(n2.port, [("ejtest/q/t", b"%d" % i) for i in range(3)])
        got = []
        t, f, body = _raw_packet(sock)
        assert t == 3, t
        got.append(body)
        sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            _raw_packet(sock)          # no second one before our PUBACK
        sock.settimeout(10)
        for i in range(3):
            tl = struct.unpack("!H", got[-1][:2])[0]
            pid = got[-1][2 + tl:4 + tl]
            sock.sendall(b"\x40\x02" + pid)   # PUBACK
            if i < 2:
                t, f, body = _raw_packet(sock)
                assert t == 3, t
                got.append(body)
        assert [b[-1:] for b in got] == [b"0", b"1", b"2"], got
    finally:
        sock.close()
