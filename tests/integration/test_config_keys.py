"""Every key of the key table (src/config.c) does something (issue 12, point 8).

Each key is changed from its default, at start and, for the keys cordond
reloads, by SIGHUP, and its effect is observed in what cordond does: rows it
stores, alerts it raises, what the broker sees, files in the spool dir, its
metrics and its log; never --check-config's output. OBSERVED names every key
and the test that observes it; test_every_key_is_observed fails when the key
table has a key OBSERVED does not name (a new key needs an observation), and
test_reloadable_keys_are_the_observed_ones fails when the keys cordond reloads
(found by SIGHUPing a config that changes every key and reading which ones the
log says wait for a restart) are not exactly the ones observed after a SIGHUP.

Keys share a cordond where they can (four daemons in all). Negative
observations ("not raised") are made against a control in the same rules pass
or a later one: an alert or row that follows, in the order cordond handles
things, the one that would have been there. Timer rules are driven by device
times in the past (within max_clock_skew) and by orders whose start is moved
back, never by sleeping.
"""

import datetime
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import urllib.request

import psycopg2
import pytest

import harness
from harness import Broker, Cordond, free_port, publish_many, wait_until
from test_security import Client, make_passwd, make_pki, write_secret

LONG = 1.5 * harness.TIMEOUT
STORED = 'cordon_events_stored_total{type="gate_event"}'

# key -> (where it is observed: "start" or "start+sighup", the test, how)
OBSERVED = {
    "mqtt.uri": ("start", "test_mqtt_keys", "an ssl:// URI of a private broker: cordond is connected there and stores what a gate publishes there"),
    "mqtt.client_id": ("start", "test_mqtt_keys", "the broker logs the client id; spool_checkpoint.instance is it"),
    "mqtt.username": ("start", "test_mqtt_keys", "the broker (allow_anonymous false) logs u'<username>'"),
    "mqtt.password_file": ("start", "test_mqtt_keys", "the broker lets cordond in only with that password"),
    "mqtt.ca_file": ("start", "test_mqtt_keys", "the broker's certificate is verified against our CA (no system CA knows it)"),
    "mqtt.cert_file": ("start", "test_mqtt_keys", "the broker requires a client certificate"),
    "mqtt.key_file": ("start", "test_mqtt_keys", "the key of that certificate"),
    "mqtt.topic_root": ("start", "test_mqtt_keys", "an event on km/... is stored"),
    "mqtt.keepalive": ("start", "test_mqtt_keys", "the broker logs k7"),
    "mqtt.session_expiry": ("start", "test_mqtt_keys", "0s: a message published while cordond is stopped is gone after its restart (a later one is stored)"),
    "postgres.conninfo": ("start", "test_mqtt_keys", "the rows land in database cordon_keys, none in cordon"),
    "postgres.batch_rows": ("start+sighup", "test_spool_store_service_keys", "cordon_batch_rows: at 100 no batch over 100 rows; at 5000 one over 500"),
    "spool.dir": ("start", "test_spool_store_service_keys", "the segment files are in that directory"),
    "spool.max_bytes": ("start+sighup", "test_spool_store_service_keys", "1MiB: intake pauses ('of 1048576 bytes'); 4MiB by SIGHUP: it resumes with PostgreSQL still locked"),
    "spool.segment_bytes": ("start", "test_spool_store_service_keys", "64KiB: many segment files, none over 64 KiB and a record"),
    "spool.sync": ("start+sighup", "test_spool_store_service_keys", "always: cordon_spool_syncs_total grows by a sync per message; interval (60s) by SIGHUP: 600 messages, a handful of syncs"),
    "spool.sync_interval": ("start+sighup", "test_spool_store_service_keys", "60s: a handful of syncs for 600 messages; 1ms by SIGHUP: hundreds of syncs with no message"),
    "site.timezone": ("start+sighup", "test_rules_and_site_keys", "a naive local time at an unregistered site and at a site cordonctl made without --timezone: New York, then Tokyo"),
    "site.max_clock_skew": ("start+sighup", "test_rules_and_site_keys", "2h: an event 90 min off is not clock_skew; 3h: one 150 min off is not"),
    "site.id_key_file": ("start", "test_rules_and_site_keys", "a national ID number is stored as id:<HMAC-SHA256 under that key>"),
    "site.max_payload": ("start", "test_spool_store_service_keys", "1KiB: a 1500-byte payload is payload_too_large, stored cut to 1024 bytes"),
    "site.retention_days": ("start+sighup", "test_retention.py", "0 at start: rows 400 days old are kept; 30 by SIGHUP: rows older than 30 days are removed from every event table, newer ones and open alerts and needs kept; 0 by SIGHUP again: 40-day-old rows stay"),
    "rules.fever_c": ("start+sighup", "test_rules_and_site_keys", "37.0: 37.1 is a fever; 37.8: 37.7 is not"),
    "rules.critical_c": ("start+sighup", "test_rules_and_site_keys", "37.5: 37.6 is critical; 38.0: 37.9 is a warning"),
    "rules.recheck_window": ("start+sighup", "test_rules_and_site_keys", "1h: a normal reading 45 min after the fever resolves it (rechecked); 10m: one 20 min after does not"),
    "rules.check_interval": ("start+sighup", "test_rules_and_site_keys", "orders made by cordonctl without --check-interval: 2h overdue after 150 min; 1m by SIGHUP overdue after 200 min with 3h grace"),
    "rules.check_grace": ("start+sighup", "test_rules_and_site_keys", "0s: an order with a 1 min interval is overdue 30 min in; 3h: 90 min in it is not"),
    "rules.silence_timeout": ("start+sighup", "test_rules_and_site_keys", "2s: a registered gate is gate_silent; 1h: after its next message it is not, 4 s later"),
    "rules.exit_quota": ("start+sighup", "test_rules_and_site_keys", "1: two passes out raise exit_quota; 2: two do not, three do"),
    "rules.exit_window": ("start+sighup", "test_rules_and_site_keys", "30m: passes 50 min apart do not add up; 2h: they do"),
    "rules.disinfection_interval": ("start+sighup", "test_rules_and_site_keys", "zones made by cordonctl without --interval: 30m overdue 50 min after a disinfection; 2h not"),
    "rules.hotline_medical_limit": ("start+sighup", "test_rules_and_site_keys", "20m: an urgent medical call open 25 min is unresolved; 40m: one open 30 min is not"),
    "rules.hotline_other_limit": ("start+sighup", "test_rules_and_site_keys", "20m: an urgent call open 30 min is unresolved; 40m: open 30 min is not, 40 min is"),
    "rules.repeat_interval": ("start+sighup", "test_rules_and_site_keys", "0s: a second trigger 30 s later is published as updated; 1h: a third is not"),
    "rules.cards_per_household": ("start+sighup", "test_rules_and_site_keys", "2: a household of 3 ordinary cards raises card_exception, one of 2 does not; 1 by SIGHUP: it does"),
    "rules.max_open_alerts": ("start+sighup", "test_rules_and_site_keys", "10: the 11th unknown card of a site folds into the aggregate; 11 by SIGHUP: the 12th opens its own alert, the 13th folds"),
    "rules.need_assign_limit": ("start+sighup", "test_people_keys", "20m: a need open 25 min unassigned is overdue, one open 15 min is not; 10m by SIGHUP: that one is, one open 5 min is not"),
    "rules.call_deadline": ("start+sighup", "test_people_keys", "a minute ago in the site's zone (before 20:00 there): an isolated household not called is call_missed; 23:59 by SIGHUP: a household isolated then is not"),
    "rules.dropoff_limit": ("start+sighup", "test_people_keys", "20m: a delivery placed 25 min ago is uncollected, one placed 15 min ago is not; 10m by SIGHUP: that one is, one placed 5 min ago is not"),
    "daemon.shutdown_timeout": ("start+sighup", "test_rules_and_site_keys, test_spool_store_service_keys", "1s at start, 1h then 1s by SIGHUP: with PostgreSQL locked, SIGTERM ends cordond within 15 s ('shutdown deadline reached')"),
    "metrics.listen": ("start", "test_spool_store_service_keys", "/metrics answers on that port"),
    "cluster.shards": ("start", "test_cluster_sessions.py", "two instances with 8 shards: each subscribes only its shards' sites, under the shards' client ids"),
    "cluster.lease_time": ("start", "test_cluster_leases.py", "a SIGKILLed holder's shards are taken by the others once its leases expire"),
    "cluster.session_prefix": ("start", "test_cluster_sessions.py", "the broker logs the shard sessions' client ids with that prefix"),
    "cluster.discovery": ("start", "test_cluster_discovery.py, test_cluster_sessions.py", "yes: shard 0's session subscribes to every site, sites nobody registered are stored and judged; no: each session subscribes to its registered sites only, the wildcard filters nowhere"),
    "log.level": ("start+sighup", "test_spool_store_service_keys", "debug: a debug line (a COPY refused for a redelivered row); warning by SIGHUP: an alert's notice line is gone, a reject's warning is there"),
}

# What the SIGHUP of test_reloadable_keys_are_the_observed_ones changes
# every key to (all valid, none the default).
CHANGED = {
    "mqtt.uri": "ssl://127.0.0.1:1", "mqtt.client_id": "other", "mqtt.username": "other",
    "mqtt.password_file": "/nonexistent/password", "mqtt.ca_file": "/nonexistent/ca.crt",
    "mqtt.cert_file": "/nonexistent/c.crt", "mqtt.key_file": "/nonexistent/c.key",
    "mqtt.topic_root": "other", "mqtt.keepalive": "11s", "mqtt.session_expiry": "2h",
    "postgres.conninfo": "dbname=other", "postgres.batch_rows": "77",
    "spool.dir": "/nonexistent/spool", "spool.max_bytes": "2GiB", "spool.segment_bytes": "32MiB",
    "spool.sync": "off", "spool.sync_interval": "250ms",
    "site.timezone": "Europe/Paris", "site.max_clock_skew": "11m",
    "site.id_key_file": "/nonexistent/key", "site.max_payload": "32KiB",
    "site.retention_days": "91",
    "rules.fever_c": "37.6", "rules.critical_c": "38.9", "rules.recheck_window": "31m",
    "rules.check_interval": "11h", "rules.check_grace": "2h", "rules.silence_timeout": "6m",
    "rules.exit_quota": "3", "rules.exit_window": "47h", "rules.disinfection_interval": "5h",
    "rules.hotline_medical_limit": "31m", "rules.hotline_other_limit": "5h",
    "rules.repeat_interval": "61s", "rules.max_open_alerts": "99",
    "rules.cards_per_household": "3",
    "rules.need_assign_limit": "3h", "rules.call_deadline": "19:00", "rules.dropoff_limit": "3h",
    "daemon.shutdown_timeout": "21s",
    "metrics.listen": "127.0.0.1:1", "log.level": "debug",
    "cluster.shards": "4", "cluster.lease_time": "5s", "cluster.session_prefix": "km-shard-",
    "cluster.discovery": "no",
}


# ---------------------------------------------------------------- helpers

def key_table():
    """section.key of every key, as `cordond --check-config` prints them."""
    conf = os.path.join(os.environ.get("TMPDIR", "/tmp"), "cordon-keys-%d.conf" % os.getpid())
    with open(conf, "w") as f:
        f.write("[log]\nlevel = info\n")
    try:
        p = subprocess.run([os.environ["CORDOND"], "--check-config", "-c", conf],
                           capture_output=True, text=True, timeout=harness.TIMEOUT)
    finally:
        os.unlink(conf)
    assert p.returncode == 0, p.stderr
    keys, section = [], None
    for line in p.stdout.splitlines():
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
        elif "=" in line:
            keys.append("%s.%s" % (section, line.split("=")[0].strip()))
    return keys


def subdir(env, name):
    d = os.path.join(env.dir, name)
    os.makedirs(d, exist_ok=True)
    return d


def write_config(d, config):
    """Rewrite d's config file with `config` ({section: {key: value}})."""
    d.client_id = config.get("mqtt", {}).get("client_id", d.client_id)
    d.inbound_id = harness.inbound_id_of(config)
    with open(d.conffile, "w") as f:
        for section, kv in config.items():
            f.write("[%s]\n" % section)
            f.writelines("%s = %s\n" % (k, v) for k, v in kv.items())


def reload(d, config):
    """SIGHUP d with `config`; return once it says the reload is done."""
    write_config(d, config)
    before = d.log().count("configuration reloaded")
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: d.log().count("configuration reloaded") > before or
               "reload refused" in d.log(), what="cordond reloading its config")
    assert "reload refused" not in d.log(), d.log()[-2000:]


def iso(t):
    return t.isoformat(timespec="milliseconds")


def ago(**kw):
    """Now minus a timedelta, as ISO 8601 (UTC)."""
    return iso(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(**kw))


def pub(env, topic, body):
    publish_many(env.broker.port, [(topic, json.dumps(body).encode())])


def gate(env, site, g, id, ts=None, **fields):
    """A canonical gate event with only the fields given (no card unless asked)."""
    body = {"id": id, "ts": ts or ago(seconds=0), "temp_c": 36.6}
    body.update(fields)
    pub(env, "cordon/%s/gate/%s/event" % (site, g), body)


def call(env, site, call_id, opened, category, urgent=True):
    pub(env, "cordon/%s/hotline" % site, {"call_id": call_id, "id": "1", "action": "open",
                                          "ts": opened, "category": category, "urgent": urgent})


def alerts(pg, site, kind, subject):
    """[(state, severity, reason, count)] of the alerts of site/kind/subject."""
    return pg.query("SELECT state, severity, coalesce(reason, ''), count FROM alerts"
                    " WHERE site = %s AND kind = %s AND subject = %s ORDER BY raised_at",
                    (site, kind, subject))


def wait_alert(pg, site, kind, subject, pred=lambda rows: rows):
    return wait_until(lambda: pred(alerts(pg, site, kind, subject)), LONG,
                      what="%s alert %s at %s" % (kind, subject, site))


def stored(pg, key):
    return wait_until(lambda: pg.query("SELECT (extract(epoch FROM ts))::bigint, flags, person"
                                       " FROM gate_events WHERE event_key = %s", (key,)),
                      LONG, what="row " + key)[0]


class Metrics:
    def __init__(self, port):
        self.port = port

    def get(self):
        """{'name{labels}': value} from /metrics, or {} while it does not answer."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port,
                                        timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait(self, pred, what):
        return wait_until(lambda: (lambda m: m if m and pred(m) else None)(self.get()), LONG,
                          what=what)


class TableLock:
    """LOCK TABLE gate_events held in an open transaction: the store's COPY
    waits behind it, so what cordond receives stays in its spool."""

    def __init__(self, pg):
        self.conn = psycopg2.connect(pg.conninfo)
        self.conn.cursor().execute("LOCK TABLE gate_events IN ACCESS EXCLUSIVE MODE")

    def release(self):
        if self.conn:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


def stop_within(d, seconds):
    """SIGTERM; cordond must be gone within `seconds` (it is SIGKILLed and the
    test fails otherwise)."""
    rc = d.stop(timeout=seconds)
    assert rc == 0, rc


# ---------------------------------------------------------------- the key table

def test_a_default_the_machine_refuses(tmp_path):
    """Without tzdata the default [site] timezone cannot be loaded: every
    program says which default and why, not "out of memory" (a package
    without its tzdata dependency did), and exits 1."""
    conf = tmp_path / "empty.conf"
    conf.write_text("[log]\nlevel = info\n")
    (tmp_path / "zoneinfo").mkdir()   # a TZDIR without Asia/Shanghai
    env = dict(os.environ, TZDIR=str(tmp_path / "zoneinfo"))
    progs = [[os.environ["CORDOND"], "-c", str(conf), "--check-config"],
             [os.environ["CORDON_NOTIFY"], "-c", str(conf), "--check-config"],
             [os.environ["CORDON_WEB"], "-c", str(conf), "--check-config"],
             [os.environ["CORDONCTL"], "-c", str(conf), "migrate"]]
    for argv in progs:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=harness.TIMEOUT,
                           env=env)
        assert p.returncode == 1, (argv, p.returncode, p.stderr)
        assert "[site] timezone: the default 'Asia/Shanghai' is refused here" in p.stderr, \
            (argv, p.stderr)
        assert "out of memory" not in p.stderr, (argv, p.stderr)
    # the same file with TZDIR unset is fine
    p = subprocess.run([os.environ["CORDOND"], "--check-config", "-c", str(conf)],
                       capture_output=True, text=True, timeout=harness.TIMEOUT)
    assert p.returncode == 0, p.stderr


def test_every_key_is_observed():
    keys = key_table()
    assert len(keys) == len(set(keys)) >= 30
    missing = sorted(set(keys) - set(OBSERVED))
    assert not missing, "keys of the key table with no observation in OBSERVED: %s" % missing
    unknown = sorted(set(OBSERVED) - set(keys))
    assert not unknown, "OBSERVED names keys the key table does not have: %s" % unknown


def test_reloadable_keys_are_the_observed_ones(env):
    """SIGHUP with every key changed: the log names the keys that wait for a
    restart; every other key is reloaded and must be observed after a SIGHUP."""
    keys = key_table()
    assert not sorted(set(keys) - set(CHANGED)), "CHANGED has no new value for a new key"
    d = Cordond(subdir(env, "keys-discover"), env.broker.port, env.pg.conninfo,
                {"mqtt": {"client_id": "keys-discover"}})
    env.daemons.append(d)
    since = env.broker.log_size()
    d.start()
    env.wait_connected(d, since)
    config = {}
    for k in keys:
        section, name = k.split(".")
        config.setdefault(section, {})[name] = CHANGED[k]
    reload(d, config)
    restart = set("%s.%s" % m for m in re.findall(
        r"\[(\w+)\] (\w+) changed from '[^']*' to '[^']*': it takes effect at the next restart",
        d.log()))
    observed_restart = {k for k, (when, _, _) in OBSERVED.items() if "sighup" not in when}
    assert restart == observed_restart, \
        "cordond keeps %s until a restart, OBSERVED says %s" % (sorted(restart), sorted(observed_restart))
    env.stop_daemons([d])


# ---------------------------------------------------------------- [mqtt], [postgres] conninfo

def test_mqtt_keys(env):
    """A private broker with TLS (client certificate required) and passwords
    only, and a database of its own: cordond gets in only with every [mqtt]
    key right, and stores in that database."""
    pki = make_pki(os.path.join(env.dir, "keys-pki"))
    password = "pw-keys-0123456789"
    pwfile = make_passwd(os.path.join(env.dir, "keys-passwd"),
                         {"keys-user": password, "keys-gate": "gate-pw-0123"})
    broker = Broker(subdir(env, "keys-broker"), password_file=pwfile, tls={
        "cafile": pki["ca_crt"], "certfile": pki["server_crt"], "keyfile": pki["server_key"],
        "require_certificate": True})
    broker.start()
    admin = psycopg2.connect(env.pg.conninfo.replace("dbname=cordon", "dbname=postgres"))
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE cordon_keys")
    admin.close()
    conninfo = env.pg.conninfo.replace("dbname=cordon", "dbname=cordon_keys")
    d = Cordond(subdir(env, "keys-m"), broker.port, conninfo, {"mqtt": {
        "uri": "ssl://127.0.0.1:%d" % broker.tls_port, "client_id": "keys-m",
        "username": "keys-user",
        "password_file": write_secret(os.path.join(env.dir, "keys-m.password"), password),
        "ca_file": pki["ca_crt"], "cert_file": pki["client_crt"], "key_file": pki["client_key"],
        "topic_root": "km", "keepalive": "7s", "session_expiry": "0s"}})
    env.daemons.append(d)
    try:
        since = broker.log_size()
        d.start()
        wait_until(lambda: broker.subscribed(d.inbound_id, since), LONG,
                   what="keys-m's shard 0 session at the broker")
        assert re.search(r"as keys-m \(p5, c0, k7, u'keys-user'\)", broker.log()[since:]), \
            broker.log()[since:]

        def send(id):
            g = Client(broker.port, "keys-gate", username="keys-gate", password="gate-pw-0123")
            try:
                g.publish("km/kx/gate/G1/event",
                          json.dumps({"id": id, "ts": 1581849120, "temp_c": 36.6}).encode())
            finally:
                g.close()

        def count(db, id):
            """Rows of event id in database db (0 before cordond made the table)."""
            c = psycopg2.connect(env.pg.conninfo.replace("dbname=cordon", "dbname=" + db))
            try:
                cur = c.cursor()
                cur.execute("SELECT count(*) FROM gate_events WHERE event_key = %s",
                            ("kx/G1/" + id,))
                return cur.fetchone()[0]
            except psycopg2.errors.UndefinedTable:
                return 0
            finally:
                c.close()
        send("M-1")
        wait_until(lambda: count("cordon_keys", "M-1") == 1, LONG, what="M-1 in cordon_keys")
        assert env.pg.count("gate_events", "site = 'kx'") == 0
        c = psycopg2.connect(conninfo)
        cur = c.cursor()
        cur.execute("SELECT instance FROM spool_checkpoint")
        assert cur.fetchall() == [("keys-m",)]
        c.close()

        # session_expiry 0s: the broker forgets the session when cordond goes.
        assert d.stop() == 0
        send("M-2")                  # while cordond is away
        since = broker.log_size()
        d.start()
        # A new session: wait for its own SUBSCRIBE, not only the connect
        # (broker.subscribed() also counts the old session's).
        wait_until(lambda: re.search(r"^\S+: %s 1 km/\+/gate/\+/event$" % re.escape(d.inbound_id),
                                     broker.log()[since:], re.M), LONG,
                   what="keys-m's shard 0 session subscribed again")
        send("M-3")
        wait_until(lambda: count("cordon_keys", "M-3") == 1, LONG, what="M-3 stored")
        assert count("cordon_keys", "M-2") == 0, "M-2 was kept for a session that expired"
    finally:
        env.stop_daemons([d])
        broker.stop()
        if broker in harness.ACTIVE:
            harness.ACTIVE.remove(broker)


# ---------------------------------------------------------------- [spool], [postgres], [metrics], [log], [daemon]

def test_spool_store_service_keys(env):
    port = free_port()
    spool_dir = os.path.join(env.dir, "keys-s-spool")
    config = {
        "mqtt": {"uri": "tcp://127.0.0.1:%d" % env.broker.port, "client_id": "keys-s",
                 "keepalive": "10s", "session_expiry": "1h"},
        "postgres": {"conninfo": env.pg.conninfo, "batch_rows": "100"},
        "spool": {"dir": spool_dir, "max_bytes": "1MiB", "segment_bytes": "64KiB",
                  "sync": "always", "sync_interval": "60s"},
        "site": {"max_payload": "1KiB", "retention_days": "0"},   # as harness.BASE_CONFIG
        "daemon": {"shutdown_timeout": "1h"},
        "metrics": {"listen": "127.0.0.1:%d" % port},
        "log": {"level": "debug"},
    }
    d = Cordond(subdir(env, "keys-s"), env.broker.port, env.pg.conninfo)
    write_config(d, config)
    env.daemons.append(d)
    m = Metrics(port)
    lock = None
    try:
        since = env.broker.log_size()
        d.start()
        env.wait_connected(d, since)
        # [metrics] listen
        m.wait(lambda x: "cordon_spool_syncs_total" in x, "/metrics on port %d" % port)

        # [log] level = debug: a redelivered row makes the direct COPY refuse.
        gate(env, "ks", "G1", "D-1", ts=1581849120)
        gate(env, "ks", "G1", "D-1", ts=1581849120)
        gate(env, "ks", "G1", "D-2", ts=1581849120)
        wait_until(lambda: env.pg.count("gate_events", "event_key = 'ks/G1/D-2'"), LONG)
        wait_until(lambda: "debug: COPY into gate_events refused" in d.log(), LONG,
                   what="a debug line")

        # [site] max_payload = 1KiB
        big = json.dumps({"id": "B-1", "ts": 1581849120, "temp_c": 36.6, "pad": "x" * 1500})
        publish_many(env.broker.port, [("cordon/ks/gate/G1/event", big.encode())])
        assert wait_until(lambda: env.pg.query(
            "SELECT reason, octet_length(payload), payload_len FROM rejects"
            " WHERE topic = 'cordon/ks/gate/G1/event'"), LONG) == \
            [("payload_too_large", 1024, len(big))]

        # A spool that fills: PostgreSQL locked, 5000 messages.
        m0 = m.wait(lambda x: x["cordon_messages_received_total"] >= 4, "metrics")
        lock = TableLock(env.pg)
        msgs = [("cordon/ks/gate/G2/event", json.dumps(
            {"id": "F-%05d" % i, "ts": 1581849120, "temp_c": 36.6, "pad": "p" * 120}).encode())
            for i in range(5000)]
        publish_many(env.broker.port, msgs)
        # [spool] max_bytes = 1MiB
        wait_until(lambda: "pausing intake" in d.log(), LONG, what="intake paused")
        assert re.search(r"spool holds \d+ of 1048576 bytes: pausing intake", d.log())
        # [spool] dir, segment_bytes = 64KiB
        segs = [os.path.getsize(os.path.join(spool_dir, f)) for f in os.listdir(spool_dir)
                if f.endswith(".seg")]
        assert len(segs) >= 8 and max(segs) <= 65536 + 2048, segs
        # [spool] max_bytes = 4MiB by SIGHUP: intake resumes, PostgreSQL still locked
        config["spool"]["max_bytes"] = "4MiB"
        reload(d, config)
        wait_until(lambda: "resuming intake" in d.log(), LONG, what="intake resumed")
        # [spool] sync = always (interval 60s): a sync per message
        m.wait(lambda x: x["cordon_messages_received_total"] >= m0["cordon_messages_received_total"] + 5000,
               "5000 messages received")
        m.wait(lambda x: x["cordon_spool_syncs_total"] >= m0["cordon_spool_syncs_total"] + 5000,
               "5000 more syncs")
        lock.release()
        wait_until(lambda: env.pg.count("gate_events", "gate = 'G2' AND site = 'ks'") == 5000, LONG)
        # [postgres] batch_rows = 100: no batch over 100 rows
        m1 = m.wait(lambda x: x[STORED] >= m0[STORED] + 5000, "5000 more events stored")
        assert m1['cordon_batch_rows_bucket{le="100"}'] == m1["cordon_batch_rows_count"] > 50, m1

        # SIGHUP: batch_rows = 5000, sync = interval (every 60s)
        config["postgres"]["batch_rows"] = "5000"
        config["spool"]["sync"] = "interval"
        reload(d, config)
        m2 = m.wait(lambda x: x["cordon_batch_rows_count"] >= m1["cordon_batch_rows_count"],
                    "metrics after the reload")
        lock = TableLock(env.pg)
        publish_many(env.broker.port, [("cordon/ks/gate/G3/event", json.dumps(
            {"id": "H-%05d" % i, "ts": 1581849120, "temp_c": 36.6}).encode()) for i in range(600)])
        m3 = m.wait(lambda x: x["cordon_messages_received_total"] >= m2["cordon_messages_received_total"] + 600,
                    "600 messages received")
        lock.release()
        # [spool] sync = interval, sync_interval = 60s: a handful of syncs for
        # 600 messages (the reload's own, segment changes), not one each
        assert m3["cordon_spool_syncs_total"] - m2["cordon_spool_syncs_total"] <= 8, (m2, m3)
        wait_until(lambda: env.pg.count("gate_events", "gate = 'G3' AND site = 'ks'") == 600, LONG)
        m4 = m.wait(lambda x: x[STORED] >= m1[STORED] + 600, "600 more events stored")
        # [postgres] batch_rows = 5000: the 600 go in at most two batches
        # (the one PostgreSQL held, the rest), so one is over 250 rows
        new = m4["cordon_batch_rows_count"] - m2["cordon_batch_rows_count"]
        small = m4['cordon_batch_rows_bucket{le="250"}'] - m2['cordon_batch_rows_bucket{le="250"}']
        assert new >= 1 and small < new, "no batch over 250 rows with batch_rows 5000: %r" % m4

        # SIGHUP: sync_interval = 1ms, log level = warning, shutdown_timeout = 1s
        config["spool"]["sync_interval"] = "1ms"
        config["log"]["level"] = "warning"
        config["daemon"]["shutdown_timeout"] = "1s"
        write_config(d, config)     # no "configuration reloaded": a notice, under warning
        d.send_signal(signal.SIGHUP)
        m.wait(lambda x: x["cordon_spool_syncs_total"] >= m4["cordon_spool_syncs_total"] + 300,
               "300 syncs with no message")
        # [log] level = warning: the alert's notice line is gone, the reject's
        # warning (handled after it) is there
        gate(env, "ks", "G4", "L-1", temp_c=39.0, person="P-LOGLEVEL")
        publish_many(env.broker.port, [("cordon/ks/gate/G4/event", b"not json at all")])
        wait_until(lambda: "rejected message on cordon/ks/gate/G4/event" in d.log(), LONG)
        assert "person:P-LOGLEVEL" not in d.log()

        # [daemon] shutdown_timeout = 1s by SIGHUP (1h at start)
        lock = TableLock(env.pg)
        gate(env, "ks", "G5", "X-1")
        m.wait(lambda x: x["cordon_messages_received_total"] >= m4["cordon_messages_received_total"] + 3,
               "the last message received")
        stop_within(d, 15)
        assert "shutdown deadline reached" in d.log()
    finally:
        if lock:
            lock.release()
        env.stop_daemons([d])


# ---------------------------------------------------------------- [site], [rules], [daemon]

def daytime_zone():
    """A fixed-offset zone where it is about 14:00 now (06:00-22:00 counts
    for disinfection intervals)."""
    offset = 14 - datetime.datetime.now(datetime.timezone.utc).hour
    if offset > 14:
        offset -= 24
    if offset < -12:
        offset += 24
    return "Etc/GMT%+d" % -offset if offset else "UTC"


def test_rules_and_site_keys(env):
    work = subdir(env, "keys-r")
    key = b"cordon-keys-test-key-0123456789"
    keyfile = os.path.join(work, "id.key")
    with open(keyfile, "wb") as f:
        f.write(key + b"\n")
    config = {
        "mqtt": {"uri": "tcp://127.0.0.1:%d" % env.broker.port, "client_id": "keys-r",
                 "keepalive": "10s", "session_expiry": "1h"},
        "postgres": {"conninfo": env.pg.conninfo},
        "spool": {"dir": os.path.join(work, "spool")},
        "site": {"timezone": "America/New_York", "max_clock_skew": "2h", "id_key_file": keyfile,
                 "retention_days": "0"},   # keeps the 2020 readings (harness.BASE_CONFIG)
        "rules": {"fever_c": "37.0", "critical_c": "37.5", "recheck_window": "1h",
                  "check_interval": "2h", "check_grace": "0s", "silence_timeout": "2s",
                  "exit_quota": "1", "exit_window": "30m", "disinfection_interval": "30m",
                  "hotline_medical_limit": "20m", "hotline_other_limit": "20m",
                  "repeat_interval": "0s", "max_open_alerts": "10", "cards_per_household": "2"},
        "daemon": {"shutdown_timeout": "1s"},
        "metrics": {"listen": "off"},
        "log": {"level": "info"},
    }
    d = Cordond(work, env.broker.port, env.pg.conninfo)
    write_config(d, config)
    env.daemons.append(d)
    pg = env.pg

    def ctl(*args):
        return harness.cordonctl(d.conffile, *args, expect=0)

    # The register, by cordonctl with this very config file: site kr and its
    # gate G1 (no zone of its own), households H1-H8 with cards K1-K8, zones
    # of site kz (its own, daytime zone; no interval of their own),
    # isolation orders of H5 (no interval of its own) and H6 (1 min).
    ctl("migrate")
    ctl("gate", "add", "kr", "G1")
    csv = os.path.join(work, "kr.csv")
    with open(csv, "w") as f:
        f.write("household,building,unit,room,size,phone,cards\n")
        f.writelines("H%d,1,1,10%d,2,,K%d\n" % (i, i, i) for i in range(1, 9))
    ctl("import", "households", csv, "--site", "kr")
    csv = os.path.join(work, "kb.csv")
    with open(csv, "w") as f:
        f.write("household,building,unit,room,size,phone,cards\n1,1,1,101,2,,KB-1\n")
    ctl("import", "households", csv, "--site", "kb")
    csv = os.path.join(work, "kc.csv")
    with open(csv, "w") as f:
        f.write("household,building,unit,room,size,phone,cards\n"
                "C1,1,1,101,2,,KC-1;KC-2\nC2,1,1,102,3,,KC-3;KC-4;KC-5\n")
    ctl("import", "households", csv, "--site", "kc")
    ctl("site", "add", "kz", "--timezone", daytime_zone())
    ctl("zone", "add", "kz", "Z1")
    ctl("zone", "add", "kz", "Z2")

    def order(hh, minutes_ago, *opts):
        ctl("isolate", "kr", "--household", hh, *opts)
        pg.query("UPDATE isolation_orders SET starts_at = now() - %s * interval '1 minute'"
                 " WHERE site = 'kr' AND household = %s", (minutes_ago, hh))
    order("H5", 150)
    order("H6", 30, "--check-interval", "1m")
    assert pg.query("SELECT timezone FROM sites WHERE site = 'kr'") == [(None,)]

    since = env.broker.log_size()
    d.start()
    env.wait_connected(d, since)
    wait_until(lambda: "register loaded" in d.log(), LONG)

    try:
        # ---- phase 1: the values at start
        gate(env, "ku", "G1", "TZ-1", ts="2020-02-16T18:32:00")
        gate(env, "kr", "G2", "TZ-1", ts="2020-02-16T18:32:00")
        gate(env, "kr", "G2", "SK-1", ts=ago(minutes=90))
        gate(env, "kr", "G2", "ID-1", person="11010119900307123X")
        gate(env, "kr", "G2", "FV-1", temp_c=37.1, person="PF1")
        gate(env, "kr", "G2", "FV-2", temp_c=37.6, person="PF2")
        gate(env, "kr", "G2", "RC-1", temp_c=37.2, person="PR1", ts=ago(minutes=50))
        gate(env, "kr", "G2", "RC-2", temp_c=36.5, person="PR1", ts=ago(minutes=5))
        gate(env, "kr", "G2", "RP-1", temp_c=37.3, person="PRP", ts=ago(minutes=10))
        gate(env, "kr", "G2", "RP-2", temp_c=37.4, person="PRP", ts=ago(minutes=9, seconds=30))
        gate(env, "kr", "G2", "EX-1", card="K2", direction="out", ts=ago(minutes=50))
        gate(env, "kr", "G2", "EX-2", card="K2", direction="out")
        gate(env, "kr", "G2", "EX-3", card="K1", direction="out", ts=ago(minutes=10))
        gate(env, "kr", "G2", "EX-4", card="K1", direction="out")
        pub(env, "cordon/kz/disinfection/Z1", {"id": "D-1", "ts": ago(minutes=50)})
        call(env, "kr", "CM1", ago(minutes=25), "medical")
        call(env, "kr", "CO1", ago(minutes=30), "food")
        for i in range(1, 12):
            gate(env, "kb", "G1", "UK-%d" % i, card="U%d" % i)

        # [site] timezone: New York, for an unregistered site and one without a zone
        assert stored(pg, "ku/G1/TZ-1")[0] == 1581895920
        assert stored(pg, "kr/G2/TZ-1")[0] == 1581895920
        # [site] max_clock_skew = 2h: 90 min off is not clock_skew
        assert stored(pg, "kr/G2/SK-1")[1] == []
        # [site] id_key_file
        mac = hmac.new(key, b"11010119900307123X", hashlib.sha256).hexdigest()[:32]
        assert stored(pg, "kr/G2/ID-1")[2] == "id:" + mac
        # [rules] fever_c = 37.0, critical_c = 37.5
        assert wait_alert(pg, "kr", "fever", "person:PF1")[0][1] == "warning"
        assert wait_alert(pg, "kr", "fever", "person:PF2")[0][1] == "critical"
        # [rules] recheck_window = 1h: 45 min later resolves it
        wait_alert(pg, "kr", "fever", "person:PR1", lambda r: r and r[0][0] == "resolved")
        assert alerts(pg, "kr", "fever", "person:PR1")[0][2] == "rechecked"
        # [rules] repeat_interval = 0s: the second trigger, 30 s later, is published
        wait_until(lambda: pg.query(
            "SELECT t.count FROM alert_transitions t JOIN alerts a USING (alert_id)"
            " WHERE a.site = 'kr' AND a.subject = 'person:PRP' AND t.transition = 'updated'"),
            LONG, what="PRP updated")
        # [rules] exit_quota = 1, exit_window = 30m
        wait_alert(pg, "kr", "exit_quota", "household:H1")
        assert alerts(pg, "kr", "exit_quota", "household:H2") == []
        # [rules] silence_timeout = 2s
        wait_alert(pg, "kr", "gate_silent", "gate:G1")
        # [rules] check_interval = 2h, check_grace = 0s
        wait_alert(pg, "kr", "isolation_overdue", "household:H5")
        wait_alert(pg, "kr", "isolation_overdue", "household:H6")
        # [rules] disinfection_interval = 30m
        wait_alert(pg, "kz", "disinfection_overdue", "zone:Z1")
        # [rules] hotline limits = 20m
        wait_alert(pg, "kr", "hotline_unresolved", "call:CM1")
        wait_alert(pg, "kr", "hotline_unresolved", "call:CO1")
        # [rules] max_open_alerts = 10: U11 folds into the aggregate
        agg = wait_alert(pg, "kb", "unknown_card", "*")
        assert agg[0][0] == "raised", agg
        assert [len(alerts(pg, "kb", "unknown_card", "card:U%d" % i)) for i in range(1, 12)] \
            == [1] * 10 + [0]

        # [rules] cards_per_household = 2: C2's three cards, not C1's two (one pass)
        wait_alert(pg, "kc", "card_exception", "household:C2")
        assert alerts(pg, "kc", "card_exception", "household:C1") == []

        # ---- phase 2: SIGHUP
        config["site"].update(timezone="Asia/Tokyo", max_clock_skew="3h")
        config["rules"].update(fever_c="37.8", critical_c="38.0", recheck_window="10m",
                               check_interval="1m", check_grace="3h", silence_timeout="1h",
                               exit_quota="2", exit_window="2h", disinfection_interval="2h",
                               hotline_medical_limit="40m", hotline_other_limit="40m",
                               repeat_interval="1h", max_open_alerts="11",
                               cards_per_household="1")
        reload(d, config)
        assert "sites without a time zone of their own now use Asia/Tokyo" in d.log()
        loads = d.log().count("register loaded")
        order("H7", 200)
        order("H8", 90, "--check-interval", "1m")
        pg.query("NOTIFY cordon_register, 'kr'")
        wait_until(lambda: d.log().count("register loaded") > loads, LONG)

        gate(env, "ku", "G1", "TZ-2", ts="2020-02-16T18:32:00")
        gate(env, "kr", "G2", "TZ-2", ts="2020-02-16T18:32:00")
        gate(env, "kr", "G2", "SK-2", ts=ago(minutes=150))
        gate(env, "kr", "G2", "FV-3", temp_c=37.7, person="PA")
        gate(env, "kr", "G2", "FV-4", temp_c=37.9, person="PB")
        gate(env, "kr", "G2", "RC-3", temp_c=37.9, person="PR2", ts=ago(minutes=50))
        gate(env, "kr", "G2", "RC-4", temp_c=36.5, person="PR2", ts=ago(minutes=30))
        gate(env, "kr", "G2", "RP-3", temp_c=37.9, person="PRP")
        gate(env, "kr", "G2", "EX-5", card="K4", direction="out", ts=ago(minutes=1))
        gate(env, "kr", "G2", "EX-6", card="K4", direction="out")
        gate(env, "kr", "G2", "EX-7", card="K3", direction="out", ts=ago(minutes=50))
        gate(env, "kr", "G2", "EX-8", card="K3", direction="out", ts=ago(minutes=1))
        gate(env, "kr", "G2", "EX-9", card="K3", direction="out")
        for i in (12, 13):
            gate(env, "kb", "G1", "UK-%d" % i, card="U%d" % i)
        gate(env, "kr", "G2", "FV-5", temp_c=38.1, person="PC")     # control of the event rules
        pub(env, "cordon/kr/gate/G1/status", {"state": "online"})    # G1 speaks again
        pub(env, "cordon/kz/disinfection/Z2", {"id": "D-2", "ts": ago(minutes=50)})
        call(env, "kr", "CM2", ago(minutes=30), "medical")
        call(env, "kr", "CO2", ago(minutes=30), "food")
        call(env, "kr", "CO3", ago(minutes=40, seconds=-4), "food")  # due in 4 s: control

        # [rules] cards_per_household = 1 by SIGHUP: the register judged again
        wait_alert(pg, "kc", "card_exception", "household:C1")
        # [site] timezone = Asia/Tokyo by SIGHUP
        assert stored(pg, "ku/G1/TZ-2")[0] == 1581845520
        assert stored(pg, "kr/G2/TZ-2")[0] == 1581845520
        # [site] max_clock_skew = 3h: 150 min off is not clock_skew
        assert stored(pg, "kr/G2/SK-2")[1] == []
        # event rules, against the control PC (handled after all of them)
        assert wait_alert(pg, "kr", "fever", "person:PC")[0][1] == "critical"
        assert alerts(pg, "kr", "fever", "person:PA") == []                # fever_c 37.8
        assert len(alerts(pg, "kb", "unknown_card", "card:U12")) == 1      # max_open_alerts 11
        assert alerts(pg, "kb", "unknown_card", "card:U13") == []
        assert len(alerts(pg, "kb", "unknown_card", "*")) == 1
        assert alerts(pg, "kr", "fever", "person:PB")[0][1] == "warning"   # critical_c 38.0
        assert alerts(pg, "kr", "fever", "person:PR2")[0][0] == "raised"   # recheck_window 10m
        assert pg.scalar("SELECT count(*) FROM alert_transitions t JOIN alerts a USING (alert_id)"
                         " WHERE a.site = 'kr' AND a.subject = 'person:PRP'"
                         " AND t.transition = 'updated'") == 1           # repeat_interval 1h
        wait_alert(pg, "kr", "exit_quota", "household:H3")                 # exit_window 2h
        assert alerts(pg, "kr", "exit_quota", "household:H4") == []        # exit_quota 2
        # [rules] check_interval = 1m, check_grace = 3h: H7 overdue; H8, in the same pass, not
        wait_alert(pg, "kr", "isolation_overdue", "household:H7")
        assert alerts(pg, "kr", "isolation_overdue", "household:H8") == []
        # timer rules, against the call CO3 that falls due 4 s after everything above
        wait_alert(pg, "kr", "hotline_unresolved", "call:CO3")
        assert alerts(pg, "kr", "hotline_unresolved", "call:CM2") == []    # medical limit 40m
        assert alerts(pg, "kr", "hotline_unresolved", "call:CO2") == []    # other limit 40m
        assert alerts(pg, "kz", "disinfection_overdue", "zone:Z2") == []   # interval 2h
        assert [r[0] for r in alerts(pg, "kr", "gate_silent", "gate:G1")] == ["resolved"]

        # [daemon] shutdown_timeout = 1s: PostgreSQL locked, SIGTERM
        lock = TableLock(pg)
        try:
            gate(env, "kr", "G2", "SD-1", temp_c=38.9, person="PSD")
            wait_until(lambda: "(critical, person:PSD" in d.log(), LONG, what="PSD handled")
            stop_within(d, 15)
        finally:
            lock.release()
        assert "draining the spool to PostgreSQL (at most 1 s)" in d.log()
        assert "shutdown deadline reached" in d.log()
    finally:
        env.stop_daemons([d])


def test_people_keys(env):
    """[rules] need_assign_limit, call_deadline and dropoff_limit (issue 16),
    at start and by SIGHUP, at a site whose zone is between 01:00 and 18:59
    (the default 20:00 deadline not passed there). Negative observations
    come from the same tick as a positive one: needs are judged first, the
    welfare calls next, the drop-off point last."""
    from zoneinfo import ZoneInfo
    work = subdir(env, "keys-p")
    zone = None
    for name in ("Asia/Shanghai", "Europe/London", "America/New_York", "Asia/Tokyo",
                 "America/Los_Angeles", "Asia/Kolkata", "Pacific/Auckland", "Pacific/Honolulu"):
        if 1 <= datetime.datetime.now(ZoneInfo(name)).hour <= 18:
            zone = name
            break
    assert zone, "no zone between 01:00 and 18:59"
    deadline = (datetime.datetime.now(ZoneInfo(zone)) - datetime.timedelta(seconds=60))
    config = {
        "mqtt": {"uri": "tcp://127.0.0.1:%d" % env.broker.port, "client_id": "keys-p"},
        "postgres": {"conninfo": env.pg.conninfo},
        "spool": {"dir": os.path.join(work, "spool")},
        "site": {"max_clock_skew": "1h"},  # steps dated 25 min ago are on time
        "rules": {"need_assign_limit": "20m", "dropoff_limit": "20m",
                  "call_deadline": deadline.strftime("%H:%M")},
        "metrics": {"listen": "off"},
    }
    d = Cordond(work, env.broker.port, env.pg.conninfo)
    write_config(d, config)
    env.daemons.append(d)
    pg = env.pg

    def ctl(*args):
        return harness.cordonctl(d.conffile, *args, expect=0)

    ctl("migrate")
    csv = os.path.join(work, "kp.csv")
    with open(csv, "w") as f:
        f.write("household,building,unit,room,size,phone,cards\n")
        f.writelines("Q%d,1,1,10%d,2,,\n" % (i, i) for i in range(1, 8))
    ctl("import", "households", csv, "--site", "kp")
    pg.query("UPDATE sites SET timezone = %s WHERE site = 'kp'", (zone,))

    def order(hh):
        ctl("isolate", "kp", "--household", hh)
        pg.query("UPDATE isolation_orders SET starts_at = now() - interval '3 hours'"
                 " WHERE site = 'kp' AND household = %s", (hh,))
    for hh in ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6"):
        order(hh)

    def need(nid, minutes_ago):
        pub(env, "cordon/kp/need", {"need_id": nid, "action": "open", "id": "1",
                                    "ts": ago(minutes=minutes_ago), "household": "Q1",
                                    "category": "groceries"})

    def placed(hh, minutes_ago):
        pub(env, "cordon/kp/dropoff", {"id": "DP-%s-%d" % (hh, minutes_ago), "action": "placed",
                                       "ts": ago(minutes=minutes_ago), "household": hh})

    def reached(hh):
        pub(env, "cordon/kp/call/%s" % hh, {"id": "WC-%s" % hh, "ts": ago(minutes=1),
                                            "outcome": "reached"})

    since = env.broker.log_size()
    d.start()
    env.wait_connected(d, since)
    wait_until(lambda: "register loaded" in d.log(), LONG)
    try:
        # ---- phase 1: the values at start
        for hh in ("Q1", "Q2", "Q4", "Q5", "Q6"):
            reached(hh)
        wait_until(lambda: pg.count("welfare_calls", "site = 'kp'") == 5, LONG)
        need("NA2", 15)
        need("NA3", 5)
        placed("Q2", 15)
        placed("Q4", 5)
        wait_until(lambda: pg.count("dropoffs", "site = 'kp'") == 2, LONG)
        need("NA1", 25)
        placed("Q1", 25)
        # [rules] need_assign_limit = 20m
        wait_alert(pg, "kp", "need_overdue", "need:NA1")
        # [rules] call_deadline a minute ago: Q3, not called today
        wait_alert(pg, "kp", "call_missed", "household:Q3")
        # [rules] dropoff_limit = 20m (judged after the needs and the calls)
        wait_alert(pg, "kp", "dropoff_uncollected", "household:Q1")
        assert alerts(pg, "kp", "need_overdue", "need:NA2") == []
        assert alerts(pg, "kp", "dropoff_uncollected", "household:Q2") == []

        # ---- phase 2: SIGHUP
        config["rules"].update(need_assign_limit="10m", dropoff_limit="10m",
                               call_deadline="23:59")
        reload(d, config)
        # Q7 isolated since 3 h: with the old deadline it would be call_missed now
        loads = d.log().count("register loaded")
        order("Q7")
        pg.query("NOTIFY cordon_register, 'kp'")
        wait_until(lambda: d.log().count("register loaded") > loads, LONG)
        # [rules] need_assign_limit = 10m, dropoff_limit = 10m
        wait_alert(pg, "kp", "need_overdue", "need:NA2")
        wait_alert(pg, "kp", "dropoff_uncollected", "household:Q2")
        assert alerts(pg, "kp", "need_overdue", "need:NA3") == []
        assert alerts(pg, "kp", "dropoff_uncollected", "household:Q4") == []
        # [rules] call_deadline = 23:59: Q7 is not due yet (a delivery for Q6
        # placed 11 min ago falls due in a tick after the register's reload)
        placed("Q6", 11)
        wait_alert(pg, "kp", "dropoff_uncollected", "household:Q6")
        assert alerts(pg, "kp", "call_missed", "household:Q7") == []
        assert [r[0] for r in alerts(pg, "kp", "call_missed", "household:Q3")] == ["raised"]
    finally:
        env.stop_daemons([d])
