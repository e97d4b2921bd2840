"""The rules side of a cluster (docs/scaling.md, "Fencing" and "Rule state at
a takeover"), with a real PostgreSQL and Mosquitto.

- The store's fencing, through tests/integration/store_probe (one batch as
  cordond's pipeline hands it): alert rows made under an epoch older than
  their shard's in shard_leases are not written, the rest are, and events
  always are.
- Two clustered cordond instances on one broker, 4 shards: each raises the
  alerts of the sites of its shards only (every alert raised once), and
  stores the others' messages without judging them; one SIGKILLed, the
  other takes its shards, loads their rule state from PostgreSQL and goes on
  with the same alerts under the same ids.

Until the shards' own MQTT sessions are wired (src/sessions.c), each
instance's own client subscribes to every site, so both receive every
message: what one judges the other only stores."""

import json
import os
import re
import subprocess

import pytest

import harness
from harness import metric, now_ts, scrape, wait_until

SHARDS = 4
# it-00 .. it-49: their shards among 16 as test_cluster_leases.py pins them
# (XXH3-64 of the site, modulo 16); modulo 4 is the same hash modulo 4.
SITE_SHARDS16 = [5, 9, 3, 1, 1, 15, 14, 11, 2, 2, 11, 11, 2, 13, 6, 7, 2, 15, 2, 2, 13, 2, 11, 6,
                 10, 0, 15, 9, 11, 9, 3, 8, 9, 9, 6, 14, 7, 6, 11, 3, 10, 14, 7, 7, 1, 14, 14,
                 11, 6, 11]
SITES = {"it-%02d" % i: s % SHARDS for i, s in enumerate(SITE_SHARDS16)}


def probe(conninfo, lines):
    binary = os.environ.get("STORE_PROBE")
    assert binary and os.access(binary, os.X_OK), "set STORE_PROBE (meson test does)"
    p = subprocess.run([binary, conninfo], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, timeout=90)
    assert p.returncode == 0, "store_probe: %d\n%s" % (p.returncode, p.stderr)
    return json.loads(p.stdout)


@pytest.fixture
def leases(env, ctl):
    env.pg.query("TRUNCATE cluster_settings, cluster_instances, shard_leases, lease_history")
    env.pg.query("DELETE FROM alerts WHERE site LIKE 'it-%'")
    env.pg.query("DELETE FROM alert_transitions WHERE alert_id LIKE 'f%'")
    yield
    env.pg.query("TRUNCATE cluster_settings, cluster_instances, shard_leases, lease_history")


def test_alert_rows_of_a_stale_epoch_are_fenced(env, ctl, leases):
    """A batch with alert rows of shard 3 under epochs 4 (older than the
    lease's 5: fenced), 5 and 6 (written), of shard 7 (no lease row:
    written), one not fenced (written whatever the leases), and an event:
    only the stale row is missing, counted once."""
    env.pg.query("INSERT INTO shard_leases (shard, owner, epoch) VALUES (3, 'other', 5),"
                 " (4, NULL, 9)")
    ids = {"stale": "f" * 31 + "1", "same": "f" * 31 + "2", "newer": "f" * 31 + "3",
           "nolease": "f" * 31 + "4", "unfenced": "f" * 31 + "5", "free": "f" * 31 + "6"}
    out = probe(env.pg.conninfo, [
        "event it-fence it-fence/G1/1",
        "alert it-fence 3 4 %s" % ids["stale"],
        "alert it-fence 3 5 %s" % ids["same"],
        "alert it-fence 3 6 %s" % ids["newer"],
        "alert it-fence 7 1 %s" % ids["nolease"],
        "alert it-fence -1 0 %s" % ids["unfenced"],
        "alert it-fence 4 8 %s" % ids["free"],     # a freed shard keeps its epoch: fenced
    ])
    assert out["fenced"] == 2
    written = {r[0] for r in env.pg.query("SELECT alert_id FROM alerts WHERE site = 'it-fence'")}
    assert written == {ids["same"], ids["newer"], ids["nolease"], ids["unfenced"]}
    history = {r[0] for r in env.pg.query(
        "SELECT alert_id FROM alert_transitions WHERE alert_id = ANY(%s)", (list(ids.values()),))}
    assert history == written
    assert env.pg.count("gate_events", "event_key = 'it-fence/G1/1'") == 1

    # Events are never fenced, a batch of stale rows alone neither.
    out = probe(env.pg.conninfo, ["event it-fence it-fence/G1/2",
                                  "alert it-fence 3 1 %s" % ("e" * 32)])
    assert out["fenced"] == 1
    assert env.pg.count("gate_events", "event_key = 'it-fence/G1/2'") == 1
    assert env.pg.count("alerts", "alert_id = %s", ("e" * 32,)) == 0


# ------------------------------------------------------------ two instances

def clustered(env, cordond, name):
    port = harness.free_port()
    d = cordond({"mqtt": {"client_id": name},
                 "spool": {"dir": os.path.join(env.dir, "spool-%s" % name)},
                 "metrics": {"listen": "127.0.0.1:%d" % port},
                 "cluster": {"shards": str(SHARDS), "lease_time": "3s"}},
                wait=False)   # its own client subscribes to nothing: its shards' sessions do
    d.metrics_port = port
    return d


def settled(env, ds):
    """Every shard owned over `ds` and its session connected and subscribed."""
    owned = up = 0
    for d in ds:
        assert d.alive(), "%s exited:\n%s" % (d.client_id, harness.tail(d.logfile))
        text = scrape(d.metrics_port)
        if not text or metric(text, 'cordon_mqtt_subscriptions{state="pending"}'):
            return False
        owned += metric(text, "cordon_cluster_shards_owned") or 0
        up += metric(text, 'cordon_cluster_sessions{state="connected"}') or 0
    return owned == SHARDS and up == SHARDS


def owners(pg):
    """{shard: owner} of the leases held."""
    return {s: o for s, o in pg.query("SELECT shard, owner FROM shard_leases"
                                      " WHERE owner IS NOT NULL")}


def raised_in_log(d):
    """{alert_id} of the alerts cordond `d` logged as raised."""
    return set(re.findall(r"alert \w+ raised \(.*\) ([0-9a-f]{32})$", d.log(), re.M))


def fever(site, i, temp, offset_s=0.0):
    return harness.gate_event(site, "G1", "F-%d-%s" % (i, temp), card="C-%d" % i,
                              person="P-%d" % i, temp_c=temp, ts=now_ts(offset_s))


def test_two_instances_share_the_alerts_and_take_over(env, ctl, leases, cordond):
    # Clustered, a site is served once registered: its shard's session
    # subscribes to its topics.
    env.pg.query("INSERT INTO sites (site) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                 (sorted(SITES),))
    env.pg.query("SELECT pg_notify('cordon_register', '')")
    a = clustered(env, cordond, "cordond-a")
    wait_until(lambda: len(owners(env.pg)) == SHARDS, what="cordond-a owning every shard")
    b = clustered(env, cordond, "cordond-b")
    wait_until(lambda: sorted(owners(env.pg).values()).count("cordond-b") == SHARDS // 2
               and len(owners(env.pg)) == SHARDS and settled(env, [a, b]),
               what="the shards shared 2/2, their sessions subscribed")
    own = owners(env.pg)

    with harness.Collector(env.broker.port, "cordon/+/alert/+") as alerts:
        harness.publish_many(env.broker.port,
                             [fever(site, i, 38.4) for i, site in enumerate(SITES)])
        wait_until(lambda: env.pg.count("alerts", "site LIKE 'it-__' AND kind = 'fever'")
                   == len(SITES), what="a fever alert of every site in PostgreSQL")
        wait_until(lambda: len(alerts.snapshot()) >= len(SITES), what="every alert published")
        raised = [json.loads(p) for t, p in alerts.snapshot()]
        ids = [m["alert_id"] for m in raised if m["state"] == "raised"]
        assert len(ids) == len(SITES) and len(set(ids)) == len(SITES), \
            "each alert raised once: %d raised, %d ids" % (len(ids), len(set(ids)))
        # each by the owner of its site's shard, never by the other
        by_a, by_b = raised_in_log(a), raised_in_log(b)
        assert by_a.isdisjoint(by_b)
        for m in raised:
            owner = own[SITES[m["site"]]]
            assert m["alert_id"] in (by_a if owner == "cordond-a" else by_b), m
        for d in (a, b):   # each received only its shards' messages: none unjudged
            assert (metric(scrape(d.metrics_port),
                           "cordon_cluster_events_not_judged_total") or 0) == 0
            assert metric(scrape(d.metrics_port), "cordon_cluster_alert_rows_fenced_total") == 0
        # the events: each once, whoever stored it
        assert env.pg.count("gate_events", "site LIKE 'it-__'") == len(SITES)

        # a dies: b takes its shards (after the lease, 3 s), loads their
        # rule state, and resolves a's alerts under their ids
        a_sites = [s for s in SITES if own[SITES[s]] == "cordond-a"]
        a_ids = {m["site"]: m["alert_id"] for m in raised if m["site"] in a_sites}
        assert a_sites
        a.kill()
        # (what is published before b owns a's shards waits in a's shard
        # sessions for b to resume them)
        wait_until(lambda: set(owners(env.pg).values()) == {"cordond-b"}
                   and len(owners(env.pg)) == SHARDS and settled(env, [b]),
                   what="b owning every shard, their sessions subscribed")
        harness.publish_many(env.broker.port,
                             [fever(site, i, 36.5, 60) for i, site in enumerate(SITES)])

        def rechecked():
            rows = env.pg.query("SELECT alert_id, state, reason FROM alerts"
                                " WHERE site LIKE 'it-__' AND kind = 'fever'")
            return all(st == "resolved" and why == "rechecked" for _, st, why in rows) \
                and len(rows) == len(SITES)
        wait_until(rechecked, what="every fever rechecked, a's by b")

        def resolved():   # the rows commit before the messages arrive: waited for
            return {json.loads(p)["alert_id"] for t, p in alerts.snapshot()
                    if json.loads(p)["state"] == "resolved"}
        wait_until(lambda: set(a_ids.values()) <= resolved(),
                   what="a's alerts resolved on MQTT")
        states = [json.loads(p) for t, p in alerts.snapshot()]
        resolved_by_b = set(re.findall(r"alert fever resolved \(.*\) ([0-9a-f]{32})$", b.log(),
                                       re.M))
        assert set(a_ids.values()) <= resolved_by_b
        again = [m["alert_id"] for m in states if m["state"] == "raised"]
        assert len(again) == len(SITES), "no alert raised twice: %r" % sorted(again)
    assert "rule state of" in b.log()
