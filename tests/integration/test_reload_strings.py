"""Issue 13.1: a SIGHUP frees the old configuration, so no module may keep
pointers into it. cordond starts with the broker down (its first connect
fails and is retried with what the configuration gave it: user name,
password file, TLS files), reloads a changed configuration, and only then
does the broker come up: cordond must connect, subscribe and store what is
published and, run against the ASan cordond of build-asan, leave no
sanitizer report in its log (conftest.py scans every cordond log).
"""

import os
import signal
import threading

import paho.mqtt.client as mqtt

from harness import TIMEOUT, Broker, Cordond, event_key, gate_event, wait_until
from test_security import make_passwd, make_pki, new_password, write_secret


def start_down_then_reload(env, broker, mqtt_overrides):
    """cordond against `broker` (made, not started): waits for its first
    connect to fail, reloads a changed config, starts the broker and
    returns the cordond once the broker saw it subscribe."""
    d = Cordond(env.dir, broker.port, env.pg.conninfo,
                {"mqtt": dict(mqtt_overrides, client_id="reload-strings")})
    env.daemons.append(d)
    d.start()
    wait_until(lambda: not d.alive() or "MQTT connect to the broker failed" in d.log(),
               what="cordond's first connect to fail")
    assert d.alive(), d.log()
    # A changed config (fever_c reloads): the reload frees the old strings.
    d.config["rules"]["fever_c"] = "37.5"
    with open(d.conffile, "w") as f:
        for section, kv in d.config.items():
            f.write("[%s]\n" % section)
            f.writelines("%s = %s\n" % (k, v) for k, v in kv.items())
            f.write("\n")
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in d.log(), what="the reload")
    since = broker.log_size()
    broker.start()
    wait_until(lambda: not d.alive() or broker.subscribed(d.inbound_id, since),
               timeout=TIMEOUT * 2, what="cordond connected after the reload")
    assert d.alive(), d.log()
    wait_until(lambda: "MQTT connected to the broker" in d.log(), what="cordond's log to say so")
    return d


def publish_one(port, site, username=None, password=None, tls=None):
    """One gate event at QoS 1 (user/password, TLS when given); returns once
    the broker acknowledged it."""
    done = threading.Event()
    c = mqtt.Client(client_id="pub-reload-%d" % os.getpid(), clean_session=True)
    if username:
        c.username_pw_set(username, password)
    if tls:
        c.tls_set(ca_certs=tls["ca"], certfile=tls["cert"], keyfile=tls["key"])
    c.on_connect = lambda cl, ud, fl, rc: rc == 0 and done.set()
    c.connect("127.0.0.1", port, keepalive=60)
    c.loop_start()
    try:
        assert done.wait(TIMEOUT), "the publisher could not connect"
        topic, payload = gate_event(site, "G01", "R-000001")
        info = c.publish(topic, payload, qos=1)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()
    finally:
        c.disconnect()
        c.loop_stop()


def wait_stored(env, site):
    wait_until(lambda: env.pg.count("gate_events", "event_key = %s",
                                    (event_key(site, "G01", "R-000001"),)) == 1,
               what="the event of %s stored" % site)


def test_reload_before_first_connect_password(private_env):
    """User name and password file, plain TCP."""
    env = private_env
    env.pg.start()
    password = new_password()
    bdir = os.path.join(env.dir, "auth-broker")
    os.makedirs(bdir)
    passwd = make_passwd(os.path.join(bdir, "passwd"), {"cordond": password, "pub": password})
    env.broker = Broker(bdir, password_file=passwd)
    secret = write_secret(os.path.join(env.dir, "mqtt-password"), password)
    start_down_then_reload(env, env.broker, {"username": "cordond", "password_file": secret})
    publish_one(env.broker.port, "S1", username="pub", password=password)
    wait_stored(env, "S1")


def test_reload_before_first_connect_tls(private_env):
    """CA file, client certificate and key, over TLS."""
    env = private_env
    env.pg.start()
    pki = make_pki(os.path.join(env.dir, "pki"))
    bdir = os.path.join(env.dir, "tls-broker")
    os.makedirs(bdir)
    tls = {"cafile": pki["ca_crt"], "certfile": pki["server_crt"],
           "keyfile": pki["server_key"], "require_certificate": True}
    env.broker = Broker(bdir, tls=tls)
    start_down_then_reload(env, env.broker, {
        "uri": "ssl://127.0.0.1:%d" % env.broker.tls_port, "ca_file": pki["ca_crt"],
        "cert_file": pki["client_crt"], "key_file": pki["client_key"]})
    publish_one(env.broker.tls_port, "S2",
                tls={"ca": pki["ca_crt"], "cert": pki["client_crt"], "key": pki["client_key"]})
    wait_stored(env, "S2")
