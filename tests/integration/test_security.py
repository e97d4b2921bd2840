"""SPEC 7, Security and systemd: cordond over TLS (CA and client certificate),
with a user name and a password read from a file, behind the example ACL of
config/mosquitto.acl, and the unit file in systemd/.

Certificates are made here with the `openssl` command (a CA, a server
certificate for 127.0.0.1/localhost, client certificates, and a second CA that
signed nothing of ours); password files with `mosquitto_passwd -b`. Every
broker is a private Mosquitto (harness.Broker with its optional TLS listener,
password_file and acl_file); PostgreSQL is the module's `env` one, each cordond
has its own work dir (spool) and client id.
"""

import os
import re
import secrets
import shutil
import ssl
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest

import harness
from harness import ACTIVE, TIMEOUT, Broker, Cordond, free_port, gate_event, wait_until

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE_ACL = os.path.join(REPO, "config", "mosquitto.acl")
EXAMPLE_CONF = os.path.join(REPO, "config", "mosquitto.conf")
UNIT = os.path.join(REPO, "systemd", "cordond.service")
SYSUSERS = os.path.join(REPO, "systemd", "cordon.sysusers")

# What cordond's log should contain when the broker's certificate does not
# verify (the URI's "ssl://" is taken out first), and when the broker refuses
# the user name or password.
TLS_REASON = re.compile(r"TLS|SSL|certificate|handshake", re.I)
AUTH_REASON = re.compile(r"not authori[sz]ed|bad user ?name or password|password|credentials", re.I)


# ---------------------------------------------------------------- helpers

def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, **kw)
    assert p.returncode == 0, "%s: exit %d\n%s%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr)
    return p


_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""


def make_pki(dir):
    """Make, with openssl, in dir: ca.crt/key, server.crt/key (127.0.0.1 and
    localhost) and client.crt/key signed by that CA, and other-ca.crt/key, a CA
    that signed nothing. EC P-256 keys. Returns a dict of the paths."""
    os.makedirs(dir, exist_ok=True)
    cnf = os.path.join(dir, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write(_OPENSSL_CNF)
    p = {name: os.path.join(dir, name) for name in (
        "ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key",
        "other-ca.crt", "other-ca.key")}
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca, cn in (("ca", "cordon test CA"), ("other-ca", "some other CA")):
        run(["openssl", "req", "-config", cnf, "-x509", *newkey, "-days", "2",
             "-subj", "/CN=" + cn, "-extensions", "ca",
             "-keyout", p[ca + ".key"], "-out", p[ca + ".crt"]])
    for leaf, cn in (("server", "127.0.0.1"), ("client", "cordond")):
        csr = os.path.join(dir, leaf + ".csr")
        run(["openssl", "req", "-config", cnf, "-new", *newkey, "-subj", "/CN=" + cn,
             "-keyout", p[leaf + ".key"], "-out", csr])
        run(["openssl", "x509", "-req", "-in", csr, "-days", "2", "-CA", p["ca.crt"],
             "-CAkey", p["ca.key"], "-CAcreateserial", "-extfile", cnf, "-extensions", leaf,
             "-out", p[leaf + ".crt"]])
    return {k.replace(".", "_").replace("-", "_"): v for k, v in p.items()}


def make_passwd(path, users):
    """Write a Mosquitto password file for {user: password} with mosquitto_passwd -b."""
    first = True
    for user, password in users.items():
        run(["mosquitto_passwd"] + (["-c"] if first else []) + ["-b", path, user, password])
        first = False
    return path


def write_secret(path, text):
    """A secret file as an operator would write it: mode 0600, trailing newline."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


def new_password():
    return "pw-" + secrets.token_hex(12)


class Client:
    """A paho MQTT client (3.1.1, or 5 with v5=True), optionally with user
    name/password and TLS, connected and with its loop running. Records what
    it receives."""

    _seq = 0

    def __init__(self, port, name, username=None, password=None, tls=None, v5=False):
        Client._seq += 1
        self.client_id = "%s-%d-%d" % (name, os.getpid(), Client._seq)
        self.v5 = v5
        self.messages = []
        self._lock = threading.Lock()
        self._connack = []
        self._event = threading.Event()
        if v5:
            c = mqtt.Client(client_id=self.client_id, protocol=mqtt.MQTTv5)
        else:
            c = mqtt.Client(client_id=self.client_id, clean_session=True)
        if username:
            c.username_pw_set(username, password)
        if tls:
            c.tls_set(ca_certs=tls["ca"], certfile=tls.get("cert"), keyfile=tls.get("key"),
                      tls_version=ssl.PROTOCOL_TLS_CLIENT)   # verifies the host name too
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        self.client = c
        c.connect("127.0.0.1", port, keepalive=60)
        c.loop_start()
        if not self._event.wait(TIMEOUT) or self._connack[0] != 0:
            self.close()
            raise AssertionError("%s could not connect to port %d: %s" % (
                self.client_id, port, self._connack[0] if self._connack else "no CONNACK"))

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self._connack.append(rc if self.v5 else mqtt.connack_string(rc) if rc else 0)
        self._event.set()

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def publish(self, topic, payload):
        """QoS 1 publish; returns once the broker sent its PUBACK (which Mosquitto
        also sends for a publish the ACL denied, then drops the message)."""
        info = self.client.publish(topic, payload, qos=1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, mqtt.error_string(info.rc)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), "no PUBACK for %s" % topic

    def subscribe(self, topic_filter):
        """Subscribe at QoS 1 and return the granted QoS (>= 128: refused)."""
        granted = []
        done = threading.Event()

        def on_subscribe(client, userdata, mid, qos, properties=None):
            granted.extend(int(getattr(q, "value", q)) for q in qos)
            done.set()
        self.client.on_subscribe = on_subscribe
        self.client.subscribe(topic_filter, qos=1)
        assert done.wait(TIMEOUT), "no SUBACK for " + topic_filter
        return granted[0]

    def snapshot(self):
        with self._lock:
            return list(self.messages)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def parts(env):
    """Brokers and cordonds a test starts; stopped (and their logs dropped from
    failure reports) when it ends."""
    made = []
    yield made
    errors = []
    for part in reversed(made):
        try:
            part.stop()
        except AssertionError as e:   # cordond ignoring SIGTERM: it was SIGKILLed
            errors.append(e)
        finally:
            if part in ACTIVE:
                ACTIVE.remove(part)
    assert not errors, errors


def subdir(env, name):
    d = os.path.join(env.dir, name)
    os.makedirs(d)
    return d


def start_broker(env, parts, name, **security):
    b = Broker(subdir(env, name), **security)
    parts.append(b)
    return b.start()


def start_cordond(env, parts, broker, name, mqtt_overrides):
    """A cordond with its own work dir and client id `name`, against broker:
    clustered, the product's default (shard sessions, hand-over markers)."""
    overrides = {"mqtt": dict(mqtt_overrides, client_id=name), "cluster": harness.CLUSTERED}
    d = Cordond(subdir(env, name), broker.port, env.pg.conninfo, overrides)
    parts.append(d)
    return d.start()


def wait_subscribed(broker, d, since):
    def ready():
        assert d.alive(), "cordond exited with %r:\n%s" % (d.returncode(), harness.tail(d.logfile))
        return broker.subscribed(d.inbound_id, since)
    wait_until(ready, what="%s connected and subscribed at the broker" % d.client_id)


def stored(env, site, gate, id):
    return env.pg.count("gate_events", "event_key = %s", (harness.event_key(site, gate, id),))


def connection_attempts(broker, port, since):
    """How many TCP connections Mosquitto accepted on port after log offset since."""
    return len(re.findall(r"New connection from \S+ on port %d\." % port, broker.log()[since:]))


def assert_never_connected(broker, d, port, since):
    """cordond keeps trying (at least three attempts reach the broker), never
    gets in, and keeps running."""
    wait_until(lambda: not d.alive() or connection_attempts(broker, port, since) >= 3,
               what="three connection attempts of " + d.client_id)
    assert d.alive(), "cordond exited with %r:\n%s" % (d.returncode(), harness.tail(d.logfile))
    assert not re.search(r"New client connected from \S+ as %s " % re.escape(d.client_id),
                         broker.log()[since:]), "the broker let %s in" % d.client_id


# ---------------------------------------------------------------- 1. TLS

def test_tls(env, parts):
    """cordond connects over TLS (server verified against ca_file, client
    certificate required by the broker) and stores what a TLS client publishes."""
    pki = make_pki(os.path.join(env.dir, "pki"))
    b = start_broker(env, parts, "broker-tls", tls={
        "cafile": pki["ca_crt"], "certfile": pki["server_crt"], "keyfile": pki["server_key"],
        "require_certificate": True})
    since = b.log_size()
    d = start_cordond(env, parts, b, "cordond-tls", {
        "uri": "ssl://127.0.0.1:%d" % b.tls_port, "ca_file": pki["ca_crt"],
        "cert_file": pki["client_crt"], "key_file": pki["client_key"]})
    wait_subscribed(b, d, since)

    gate = Client(b.tls_port, "gate", tls={"ca": pki["ca_crt"], "cert": pki["client_crt"],
                                          "key": pki["client_key"]})
    try:
        gate.publish(*gate_event("tls1", "G01", "T-1"))
    finally:
        gate.close()
    wait_until(lambda: stored(env, "tls1", "G01", "T-1") == 1, what="the event sent over TLS stored")
    assert d.alive()


def test_tls_wrong_ca(env, parts):
    """With a CA that did not sign the broker's certificate cordond refuses the
    broker: it does not connect, stores nothing, keeps running and retrying, and
    its log says the TLS handshake (certificate) is the problem."""
    pki = make_pki(os.path.join(env.dir, "pki-wrong"))
    b = start_broker(env, parts, "broker-tls-wrong", tls={
        "cafile": pki["ca_crt"], "certfile": pki["server_crt"], "keyfile": pki["server_key"]})
    # A gate's event (its client trusts the right CA), then cordond.
    gate = Client(b.tls_port, "gate", tls={"ca": pki["ca_crt"]})
    try:
        gate.publish(*gate_event("tls2", "G01", "W-1"))
    finally:
        gate.close()
    since = b.log_size()
    d = start_cordond(env, parts, b, "cordond-wrongca", {
        "uri": "ssl://127.0.0.1:%d" % b.tls_port, "ca_file": pki["other_ca_crt"]})
    assert_never_connected(b, d, b.tls_port, since)
    assert stored(env, "tls2", "G01", "W-1") == 0
    assert d.alive()
    wait_until(lambda: TLS_REASON.search(d.log().replace("ssl://", "")), timeout=10,
               what="cordond's log naming the TLS/certificate failure; it says:\n" + d.log())


# ---------------------------------------------------------------- 2. passwords

def test_password(env, parts):
    """allow_anonymous false + password file: cordond logs in with username and
    password_file and stores events; the password is never in its argv,
    environment, log or --check-config output."""
    secret = new_password()
    gate_pw = new_password()
    pw = make_passwd(os.path.join(env.dir, "passwd-ok"), {"cordond": secret, "gate-pw1-G01": gate_pw})
    b = start_broker(env, parts, "broker-pw", password_file=pw)
    pwfile = write_secret(os.path.join(env.dir, "cordond-ok.password"), secret)
    since = b.log_size()
    d = start_cordond(env, parts, b, "cordond-pw", {"username": "cordond", "password_file": pwfile})
    wait_subscribed(b, d, since)
    assert re.search(r"as cordond-pw \(.*u'cordond'\)", b.log()[since:]), \
        "the broker did not see user name cordond"

    gate = Client(b.port, "gate", username="gate-pw1-G01", password=gate_pw)
    try:
        gate.publish(*gate_event("pw1", "G01", "P-1"))
    finally:
        gate.close()
    wait_until(lambda: stored(env, "pw1", "G01", "P-1") == 1, what="the event stored")

    with open("/proc/%d/cmdline" % d.proc.pid, "rb") as f:
        argv = f.read()
    assert b"cordond" in argv and secret.encode() not in argv
    with open("/proc/%d/environ" % d.proc.pid, "rb") as f:
        assert secret.encode() not in f.read()
    assert secret not in d.log()
    check = subprocess.run([d.binary, "--check-config", "-c", d.conffile],
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert check.returncode == 0, check.stderr
    assert pwfile in check.stdout and secret not in check.stdout + check.stderr
    assert d.alive()


def test_wrong_password(env, parts):
    """A wrong password: the broker refuses cordond, which stores nothing, keeps
    running and retrying, and says in its log why (without the password)."""
    right, wrong = new_password(), new_password()
    gate_pw = new_password()
    pw = make_passwd(os.path.join(env.dir, "passwd-wrong"), {"cordond": right, "gate-pw2-G01": gate_pw})
    b = start_broker(env, parts, "broker-pw-wrong", password_file=pw)
    gate = Client(b.port, "gate", username="gate-pw2-G01", password=gate_pw)
    try:
        gate.publish(*gate_event("pw2", "G01", "B-1"))
    finally:
        gate.close()
    since = b.log_size()
    d = start_cordond(env, parts, b, "cordond-badpw", {
        "username": "cordond",
        "password_file": write_secret(os.path.join(env.dir, "cordond-bad.password"), wrong)})
    assert_never_connected(b, d, b.port, since)
    assert stored(env, "pw2", "G01", "B-1") == 0
    assert d.alive()
    log = d.log()
    assert wrong not in log and right not in log
    with open("/proc/%d/cmdline" % d.proc.pid, "rb") as f:
        assert wrong.encode() not in f.read()
    wait_until(lambda: AUTH_REASON.search(d.log()), timeout=10,
               what="cordond's log saying the broker refused the user name/password; it says:\n"
               + d.log())


# ---------------------------------------------------------------- 3. the example ACL

def test_example_acl(env, parts):
    """Mosquitto with config/mosquitto.acl as it is in the repo (only the password
    file is made here): gate G01 of site s1 cannot publish as G02 (the message
    reaches neither cordond nor any subscriber), its own topics work; cordond may
    subscribe to every inbound topic and publish its state; an operator may ack
    but not forge a gate event."""
    pws = {user: new_password() for user in ("cordond", "gate-s1-G01", "gate-s1-G02", "operator-duty1",
                                             "volunteers-s1")}
    pw = make_passwd(os.path.join(env.dir, "passwd-acl"), pws)
    b = Broker(subdir(env, "broker-acl"), password_file=pw, acl_file=EXAMPLE_ACL)
    with open(b.conf, "a") as f:
        f.write("log_type debug\n")    # Mosquitto logs "Denied PUBLISH" at debug level
    parts.append(b)
    b.start()
    since = b.log_size()
    d = start_cordond(env, parts, b, "cordond-acl", {
        "username": "cordond",
        "password_file": write_secret(os.path.join(env.dir, "cordond-acl.password"), pws["cordond"])})
    wait_subscribed(b, d, since)

    # Every one of cordond's subscriptions was granted at QoS 1 (Mosquitto logs
    # "<client id> <granted QoS> <filter>"; a refused one is 128 or 135).
    # (clustered, the default: shard 0's session takes every site, with the
    # hand-over markers' filter too)
    subs = re.findall(r"^\S+: %s (\d+) (\S+)$" % re.escape(d.inbound_id), b.log()[since:],
                      re.M)
    assert len(subs) >= 10 and all(q == "1" for q, _ in subs), subs
    assert {"cordon/+/need", "cordon/+/call/+", "cordon/+/dropoff",
            "cordon/+/_handover"} <= {f for _, f in subs}

    def publish_as(user, topic, payload):
        # One connection per message: Mosquitto 2.0.11 with max_queued_messages 0
        # (as here and in config/mosquitto.conf) drops a client's connection
        # right after acknowledging a publish its ACL denied.
        c = Client(b.port, user, username=user, password=pws[user], v5=True)
        try:
            c.publish(topic, payload)
        finally:
            c.close()

    # A witness with cordond's credentials, on the gate event topics, and an
    # operator trying to read them (Mosquitto 2.0 grants the SUBSCRIBE and then
    # delivers only what the ACL lets the user read).
    watcher = Client(b.port, "watch", username="cordond", password=pws["cordond"])
    op = Client(b.port, "operator", username="operator-duty1", password=pws["operator-duty1"])
    try:
        assert watcher.subscribe("cordon/+/gate/+/event") == 1
        op.subscribe("cordon/+/gate/+/event")
        publish_as("gate-s1-G01", *gate_event("s1", "G02", "FORGED-1"))     # not its gate
        publish_as("gate-s1-G01", "cordon/s1/gate/G02/status", b"offline")  # nor its status
        publish_as("gate-s1-G01", *gate_event("s1", "G01", "OWN-1"))        # its own
        publish_as("gate-s1-G01", "cordon/s1/gate/G01/status", b"online")
        publish_as("gate-s1-G02", *gate_event("s1", "G02", "OWN-2"))
        publish_as("operator-duty1", *gate_event("s1", "G01", "OPFORGED-1"))
        publish_as("operator-duty1", "cordon/s1/ack",
                   b'{"alert_id":"0123abcd","by":"duty1","action":"ack"}')
        publish_as("volunteers-s1", *gate_event("s1", "G01", "VOLFORGED-1"))
        publish_as("volunteers-s1", "cordon/s1/dropoff",
                   b'{"id":"DP-1","ts":1581849120,"household":"3-2-401","action":"placed"}')

        wait_until(lambda: stored(env, "s1", "G02", "OWN-2") == 1, what="G02's own event stored")
        wait_until(lambda: env.pg.count("acks", "site = 's1' AND alert_id = '0123abcd'") == 1,
                   what="the operator's ack stored")
        assert stored(env, "s1", "G01", "OWN-1") == 1
        wait_until(lambda: env.pg.count("dropoffs", "site = 's1'") == 1,
                   what="the volunteers' drop-off stored")
        wait_until(lambda: env.pg.count("gate_status", "site = 's1' AND gate = 'G01'") == 1,
                   what="G01's own status stored")
        # Messages are published one after the other and each waits for its
        # PUBACK: whatever had got through before the stored ones would be here.
        assert stored(env, "s1", "G02", "FORGED-1") == 0
        assert stored(env, "s1", "G01", "OPFORGED-1") == 0
        assert stored(env, "s1", "G01", "VOLFORGED-1") == 0
        assert env.pg.count("gate_status", "site = 's1' AND gate = 'G02'") == 0
        wait_until(lambda: len(watcher.snapshot()) >= 2, what="the watcher saw both own events")
        seen = sorted(t for t, _ in watcher.snapshot())
        assert seen == ["cordon/s1/gate/G01/event", "cordon/s1/gate/G02/event"], seen
        assert not any(b"FORGED" in p for _, p in watcher.snapshot())
        assert op.snapshot() == [], "an operator read gate events"
    finally:
        watcher.close()
        op.close()
    log = b.log()[since:]
    assert re.search(r"Denied PUBLISH from gate-s1-G01-\S+ .*'cordon/s1/gate/G02/event'", log)
    assert not re.search(r"Denied PUBLISH from (cordond-acl|cordon-shard-\d+) ", log), \
        "cordond's own publishes denied"
    assert d.alive()


def test_each_program_its_own_user(env, parts):
    """One shared config file, the example ACL, a password per user: cordond
    connects as [mqtt] username = cordond, cordon-notify as [notify] username =
    cordon-notify and cordon-web as [web] username = cordon-web (each with its
    password_file); cordon-sim load publishes a fever as gate-s1-G01 (-u,
    --password-file); cordond raises it, cordon-notify (which, as cordond,
    would be granted the subscription and get nothing) hands it to a webhook;
    cordonctl ack -u operator-duty1 --password-file acknowledges it."""
    from notify_servers import Webhook

    users = ("cordond", "cordon-notify", "cordon-web", "operator-duty1", "gate-s1-G01")
    pws = {user: new_password() for user in users}
    pw = make_passwd(os.path.join(env.dir, "passwd-users"), pws)
    files = {user: write_secret(os.path.join(env.dir, "%s.password" % user), pws[user])
             for user in users}
    b = start_broker(env, parts, "broker-users", password_file=pw, acl_file=EXAMPLE_ACL)
    hook = Webhook()
    hook.start()
    parts.append(hook)
    hook_url = write_secret(os.path.join(env.dir, "hook.url"), hook.url("/alerts"))
    notify_metrics, web_port = free_port(), free_port()
    shared = {
        "mqtt": {"username": "cordond", "password_file": files["cordond"]},
        "notify": {"client_id": "notify-users", "username": "cordon-notify",
                   "password_file": files["cordon-notify"],
                   "metrics_listen": "127.0.0.1:%d" % notify_metrics},
        "receiver.hook": {"type": "webhook", "url_file": hook_url},
        "route.all": {"receivers": "hook"},
        "web": {"client_id": "web-users", "username": "cordon-web",
                "password_file": files["cordon-web"], "listen": "127.0.0.1:%d" % web_port},
    }
    d = Cordond(subdir(env, "cordond-users"), b.port, env.pg.conninfo, shared)
    conf = d.conffile      # the one file every program reads
    n = harness.Notifier(subdir(env, "notify-users"), b.port, env.pg.conninfo, shared)
    w = harness.Web(subdir(env, "web-users"), b.port, env.pg.conninfo, shared)
    n.conffile = w.conffile = conf
    w.port = web_port

    # --check-config of each prints the user it will connect as.
    for binary, want in ((n.binary, "[notify]"), (w.binary, "[web]")):
        p = subprocess.run([binary, "--check-config", "-c", conf], capture_output=True,
                           text=True, timeout=TIMEOUT)
        assert p.returncode == 0, p.stderr
        user = "cordon-notify" if want == "[notify]" else "cordon-web"
        block = p.stdout.split(want + "\n", 1)[1]
        assert "\nusername = %s\n" % user in "\n" + block, p.stdout
        assert "password_file = %s\n" % files[user] in block, p.stdout
        assert pws[user] not in p.stdout + p.stderr

    since = b.log_size()
    for part in (d, n, w):
        parts.append(part)
        part.start()
    wait_subscribed(b, d, since)
    wait_until(lambda: b.subscribed("notify-users", since), what="cordon-notify subscribed")
    w.wait_ready(b, since)
    log = b.log()[since:]
    # Mosquitto logs "New client connected from A:P as ID (p2, c0, k30, u'USER')."
    for cid, user in ((d.inbound_id, "cordond"), ("notify-users", "cordon-notify"),
                      ("web-users", "cordon-web")):
        assert re.search(r"New client connected from \S+ as %s \(.*u'%s'\)" % (cid, user), log), \
            (cid, user, log)
    wait_until(lambda: "user cordon-notify" in n.log(), what="cordon-notify logs its user")
    assert re.search(r"MQTT: connected to \S+ as client notify-users, user cordon-notify", n.log())
    wait_until(lambda: "user cordon-web" in w.log(), what="cordon-web logs its user")
    wait_until(lambda: harness.metric(harness.scrape(notify_metrics),
                                      "cordon_notify_mqtt_subscription") == 1,
               what="cordon_notify_mqtt_subscription 1")

    # A fever from the gate's own user, through cordon-sim load.
    sim = subprocess.run([harness.sim_binary(), "load", "--uri", "tcp://127.0.0.1:%d" % b.port,
                          "--site", "s1", "--gates", "1", "--count", "1", "--fever-every", "1",
                          "-u", "gate-s1-G01", "--password-file", files["gate-s1-G01"]],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert sim.returncode == 0, sim.stdout + sim.stderr
    assert re.search(r"^acknowledged\s+1$", sim.stdout, re.M), sim.stdout
    wait_until(lambda: env.pg.count("alerts", "site = 's1' AND kind = 'fever'") == 1,
               what="cordond raised the fever")
    alert_id = env.pg.query("SELECT alert_id FROM alerts WHERE site = 's1' AND kind = 'fever'")[0][0]

    # cordon-notify, as cordon-notify, got it and told the webhook.
    hook.wait_for(1, timeout=TIMEOUT)
    body = hook.received()[0].body.decode()
    assert alert_id in body, body

    # cordonctl ack as an operator's user, from the same file.
    p = harness.cordonctl(conf, "ack", alert_id, "--by", "duty1", "-u", "operator-duty1",
                          "--password-file", files["operator-duty1"], expect=0)
    assert "alert %s is acknowledged" % alert_id in p.stdout, p.stdout
    assert env.pg.query("SELECT state, by_whom FROM alerts WHERE alert_id = %s",
                        (alert_id,))[0] == ("acked", "duty1")
    assert all(part.alive() for part in (d, n, w))


# ---------------------------------------------------------------- the example broker config

def test_example_mosquitto_conf(env, parts):
    """config/mosquitto.conf runs as written once its paths point at test files
    (persistence dir, password file, the example ACL, certificates) and its ports
    are free ones: anonymous clients are refused, cordond logs in over the TLS
    listener with a password and stores a gate's event."""
    pki = make_pki(os.path.join(env.dir, "pki-example"))
    pws = {user: new_password() for user in ("cordond", "gate-s1-G01")}
    pw = make_passwd(os.path.join(env.dir, "passwd-example"), pws)
    b = Broker(subdir(env, "broker-example"))
    b.tls_port = free_port()
    replace = {
        r"^persistence_location .*$": "persistence_location %s/" % b.dir,
        r"^password_file .*$": "password_file " + pw,
        r"^acl_file .*$": "acl_file " + EXAMPLE_ACL,
        r"^listener 1883 127\.0\.0\.1$": "listener %d 127.0.0.1" % b.port,
        r"^listener 8883$": "listener %d 127.0.0.1" % b.tls_port,
        r"^cafile .*$": "cafile " + pki["ca_crt"],
        r"^certfile .*$": "certfile " + pki["server_crt"],
        r"^keyfile .*$": "keyfile " + pki["server_key"],
        r"^log_dest .*$": "log_dest file " + b.logfile,
    }
    with open(EXAMPLE_CONF) as f:
        conf = f.read()
    for pattern, line in replace.items():
        conf, n = re.subn(pattern, line, conf, flags=re.M)
        assert n == 1, "config/mosquitto.conf: expected one line matching %s" % pattern
    with open(b.conf, "w") as f:
        # as root, mosquitto would switch to user `mosquitto`, which cannot read here
        f.write(conf + "user %s\nlog_type subscribe\n" % harness.pwd.getpwuid(os.geteuid()).pw_name)
    parts.append(b)
    b.start()

    with pytest.raises(AssertionError, match="not authori[sz]ed"):
        Client(b.port, "anonymous").close()
    since = b.log_size()
    d = start_cordond(env, parts, b, "cordond-example", {
        "uri": "ssl://127.0.0.1:%d" % b.tls_port, "ca_file": pki["ca_crt"], "username": "cordond",
        "password_file": write_secret(os.path.join(env.dir, "cordond-example.password"),
                                      pws["cordond"])})
    wait_subscribed(b, d, since)
    gate = Client(b.tls_port, "gate", username="gate-s1-G01", password=pws["gate-s1-G01"],
                  tls={"ca": pki["ca_crt"]})
    try:
        gate.publish(*gate_event("s1", "G01", "EX-1"))
    finally:
        gate.close()
    wait_until(lambda: stored(env, "s1", "G01", "EX-1") == 1, what="the event stored")
    assert d.alive()


# ---------------------------------------------------------------- 4. systemd

def unit_settings(text):
    """{(section, key): [values...]} of a unit file."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def test_systemd_unit():
    """systemd/cordond.service passes `systemd-analyze verify` and keeps its
    promises (notify, watchdog, reload, drain time, user, hardening).

    verify insists that ExecStart's binary exists, so it runs on a copy of the
    unit whose ExecStart names the cordond under test ($CORDOND) instead of
    /usr/sbin/cordond; nothing else is changed. By hand:
      sed "s#/usr/sbin/cordond#$PWD/build/cordond#" systemd/cordond.service > /tmp/cordond.service
      systemd-analyze verify --man=no /tmp/cordond.service"""
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze not installed (Debian package systemd; scripts/check installs it)")
    with open(UNIT) as f:
        text = f.read()
    s = unit_settings(text)
    expect = {
        "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30s",
        "ExecReload": "/bin/kill -HUP $MAINPID", "TimeoutStopSec": "45",
        "Restart": "on-failure", "RestartSec": "2", "User": "cordon", "Group": "cordon",
        "StateDirectory": "cordon", "ConfigurationDirectory": "cordon", "UMask": "0027",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "RestrictNamespaces": "yes",
        "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
        "SystemCallFilter": "@system-service", "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
    }
    for key, value in expect.items():
        assert s.get(("Service", key)) == [value], "[Service] %s: %r, expected %r" % (
            key, s.get(("Service", key)), value)
    assert s[("Service", "ExecStart")] == ["/usr/sbin/cordond -c /etc/cordon/cordond.conf"]

    binary = os.environ.get("CORDOND")
    assert binary and os.access(binary, os.X_OK), "set CORDOND to the cordond binary"
    tmp = harness.make_tmpdir("cordon-unit-")
    try:
        copy = os.path.join(tmp, "cordond.service")
        with open(copy, "w") as f:
            f.write(text.replace("ExecStart=/usr/sbin/cordond ",
                                 "ExecStart=%s " % os.path.abspath(binary)))
        # --man=no: Documentation= names the manual pages, which the tree has
        # but this machine need not (scripts/package-check verifies the
        # installed units with them).
        p = subprocess.run([analyze, "verify", "--man=no", copy], capture_output=True,
                           text=True, timeout=TIMEOUT)
        # verify exits 0 even for unknown keys or bad values; those are warnings
        # naming the file.
        about_us = [line for line in (p.stdout + p.stderr).splitlines()
                    if "cordond" in line or copy in line]
        assert p.returncode == 0 and not about_us, \
            "systemd-analyze verify: exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr)

        # The sysusers file creates user and group cordon, home /var/lib/cordon.
        sysusers = shutil.which("systemd-sysusers")
        if sysusers:
            root = os.path.join(tmp, "root")
            os.makedirs(os.path.join(root, "etc"))
            with open(SYSUSERS) as f:
                run([sysusers, "--root=" + root, "-"], input=f.read())
            with open(os.path.join(root, "etc", "passwd")) as f:
                passwd = f.read()
            assert re.search(r"^cordon:x:\d+:\d+:cordon daemon:/var/lib/cordon:", passwd, re.M), passwd
            with open(os.path.join(root, "etc", "group")) as f:
                assert re.search(r"^cordon:x:\d+:", f.read(), re.M)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
