"""Timers follow the monotonic clock (issue 13, point 6; docs/architecture.md,
"Clocks"): cordond runs under libfaketime (Debian package libfaketime) with a
control file, so that a test sets its wall clock back or forward while it
runs; CLOCK_MONOTONIC is left alone (FAKETIME_DONT_FAKE_MONOTONIC=1). The
broker, PostgreSQL and the publishers keep the real clock.

The races are controlled, nothing is timed: a gate's silence is judged only
once the gate is opened (a sealed gate is never silent), after the step; the
absence of a false alert is asserted once a later timer alert, raised by a
tick after the step, is stored.
"""

import datetime
import json
import os

import pytest

import harness
from harness import Collector, now_ts, publish_many, register_loads, wait_until

LONG = 120
FAKETIME_LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/faketime/libfaketimeMT.so.1")


def faketime_lib():
    for path in FAKETIME_LIBS:
        if os.path.exists(path):
            return path
    pytest.fail("libfaketime is not installed (Debian package libfaketime; scripts/lib/deps.sh)")


class Clock:
    """cordond's wall clock: an offset from the real one in a libfaketime
    control file, read on every clock call (FAKETIME_NO_CACHE=1)."""

    def __init__(self, dir, name):
        self.path = os.path.join(dir, "%s.faketime" % name)
        self.set(0)

    def set(self, offset_s):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%+d\n" % offset_s)
        os.replace(tmp, self.path)   # never a half-written file

    def env(self):
        asan = os.environ.get("ASAN_OPTIONS", "")
        return {
            "LD_PRELOAD": faketime_lib(),
            "FAKETIME_TIMESTAMP_FILE": self.path,
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "NO_FAKE_STAT": "1",
            # under ASan, libfaketime comes before the sanitizer's runtime
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0",
        }


def start(env, overrides, clock):
    d = env.cordond(overrides, start=False)
    since = env.broker.log_size()
    d.start(clock.env())
    env.wait_connected(d, since)
    return d


def status(env, site, gate, id):
    publish_many(env.broker.port, [("cordon/%s/gate/%s/status" % (site, gate),
                                    json.dumps({"state": "online", "ts": now_ts(),
                                                "id": id}).encode())])


def wait_stored(env, site, gate, id):
    """Until the status message `id` is in gate_status: the rules processed
    it before (they run ahead of the store)."""
    key = harness.event_key(site, gate, id)
    wait_until(lambda: env.pg.count("gate_status", "event_key = %s", (key,)) == 1,
               LONG, what="status %s stored" % key)
    return env.pg.scalar("SELECT received_at FROM gate_status WHERE event_key = %s", (key,))


def alerts(env, site, kind):
    return env.pg.query("SELECT alert_id, subject, state, raised_at FROM alerts"
                        " WHERE site = %s AND kind = %s ORDER BY raised_at", (site, kind))


def wait_step_logged(d, text):
    wait_until(lambda: text in d.log(), LONG, what="cordond logging %r" % text)


def test_gate_silent_after_the_clock_is_set_back(env, ctl):
    """The wall clock set back an hour after a gate's last message: the gate
    is still found silent silence_timeout after that message (it used to be
    an hour and silence_timeout)."""
    site = "ckback"
    ctl("gate", "add", site, "G01", "--sealed")
    clock = Clock(env.dir, site)
    d = start(env, {"rules": {"silence_timeout": "3s"}}, clock)
    wait_until(lambda: register_loads(d) >= 1, what="the register loaded")
    status(env, site, "G01", "HB-1")
    last = wait_stored(env, site, "G01", "HB-1")
    clock.set(-3600)
    wait_step_logged(d, "wall clock stepped back by 3600 s")
    before = register_loads(d)
    ctl("gate", "open", site, "G01")    # judged from now on: silent since HB-1
    wait_until(lambda: register_loads(d) > before, what="the register reloaded")
    rows = wait_until(lambda: alerts(env, site, "gate_silent"), LONG,
                      what="gate_silent for G01 after the clock was set back")
    assert [(r[1], r[2]) for r in rows] == [("gate:G01", "raised")], rows
    # Shown and stored on the wall clock: an hour before HB-1 was received.
    assert rows[0][3] < last - datetime.timedelta(minutes=50), (rows[0][3], last)
    assert d.alive()
    d.stop()


def test_no_false_gate_silent_when_the_clock_is_set_forward(env, ctl):
    """The wall clock set forward two hours: gates that talked within
    silence_timeout are not silent. The marker: an urgent call opened after
    the step, whose hotline_unresolved alert is raised by a later tick (a
    tick judges the gates before the calls)."""
    site = "ckfwd"
    gates = ["G01", "G02", "G03"]
    for g in gates:
        ctl("gate", "add", site, g)
    clock = Clock(env.dir, site)
    d = start(env, {"rules": {"silence_timeout": "30m", "hotline_other_limit": "1s"}}, clock)
    wait_until(lambda: register_loads(d) >= 1, what="the register loaded")
    for g in gates:
        status(env, site, g, "HB-%s" % g)
    for g in gates:
        wait_stored(env, site, g, "HB-%s" % g)
    clock.set(7200)
    wait_step_logged(d, "wall clock stepped forward by 7200 s")
    with Collector(env.broker.port, "cordon/%s/alert/#" % site) as col:
        publish_many(env.broker.port, [("cordon/%s/hotline" % site, json.dumps({
            "call_id": "H-1", "id": "1", "action": "open", "category": "supplies",
            "urgent": True, "ts": now_ts()}).encode())])
        wait_until(lambda: [r for r in alerts(env, site, "hotline_unresolved")], LONG,
                   what="hotline_unresolved for H-1 (the marker)")
        assert alerts(env, site, "gate_silent") == []
        assert not [t for t, p in col.snapshot() if t.endswith("/gate_silent")]
    # The gates go on talking, the clock forward: still nothing.
    for g in gates:
        status(env, site, g, "HB2-%s" % g)
    for g in gates:
        wait_stored(env, site, g, "HB2-%s" % g)
    assert alerts(env, site, "gate_silent") == []
    assert d.alive()
    d.stop()
