"""pytest fixtures for the integration tests (see harness.py for the parts).

env          module scope: a running private Mosquitto + PostgreSQL in a temp dir
cordond      function scope: factory cordond(overrides=None, wait=True) -> Cordond on `env`
private_env  function scope: its own Env, nothing started (for outage tests)
ctl          module scope: ctl(*args, expect=0) runs cordonctl against env's
             PostgreSQL (migrated first) and returns the CompletedProcess

Every test, and every Env when it closes, fails if a cordond log holds a
sanitizer report (harness.SANITIZER_MARKERS), even from a daemon the test
SIGKILLed or whose exit code it did not check.

Temp dirs are removed when their tests passed and kept (path printed) otherwise
or when CORDON_KEEP is set.
When a test fails, the tails of the cordond, Mosquitto and PostgreSQL logs are
added to its report.
"""

import os
import shutil

import pytest

import harness
from harness import ACTIVE, Broker, Cordond, Postgres, make_tmpdir, tail


class Env:
    """A broker, a PostgreSQL cluster (initialized, not started) and the cordond
    instances run against them, all under one temp dir."""

    def __init__(self, dir):
        self.dir = dir
        os.mkdir(os.path.join(dir, "broker"))
        os.mkdir(os.path.join(dir, "pg"))
        self.broker = Broker(os.path.join(dir, "broker"))
        self.pg = Postgres(os.path.join(dir, "pg"))
        self.daemons = []

    def cordond(self, overrides=None, start=True, wait=True):
        """Make a cordond for this env; start it and, if wait, return once the
        broker has seen it connect and subscribe (so nothing published later is lost)."""
        d = Cordond(self.dir, self.broker.port, self.pg.conninfo, overrides)
        self.daemons.append(d)
        if start:
            since = self.broker.log_size()
            d.start()
            if wait:
                self.wait_connected(d, since)
        return d

    def restart(self, d):
        """Start d again (same config, spool dir and client id) and wait until the
        broker has seen it connect. Its log is appended to."""
        since = self.broker.log_size()
        d.start()
        self.wait_connected(d, since)
        return d

    def wait_connected(self, d, since=0):
        """Until the client of d that takes every site (d.inbound_id: shard 0's
        session when clustered) has connected since `since` and subscribed."""
        assert d.inbound_id, "%s takes no site by wildcard: wait=False" % d.client_id

        def ready():
            assert d.alive(), "cordond exited with %r:\n%s" % (d.returncode(), tail(d.logfile))
            return self.broker.subscribed(d.inbound_id, since)
        harness.wait_until(ready, what="%s connected and subscribed at the broker" % d.inbound_id)

    def stop_daemons(self, daemons=None):
        for d in daemons if daemons is not None else self.daemons:
            try:
                d.stop()   # raises if it ignores SIGTERM (it is SIGKILLed then)
            finally:
                if d in ACTIVE:
                    ACTIVE.remove(d)

    def close(self):
        """Stop everything; then fail if any cordond of this env left a
        sanitizer report in its log."""
        try:
            self.stop_daemons()
        finally:
            for part in (self.broker, self.pg):
                part.stop()
                if part in ACTIVE:
                    ACTIVE.remove(part)
        check_sanitizer_reports(self.daemons)


def check_sanitizer_reports(daemons):
    """Raise AssertionError naming the sanitizer report lines in the logs of
    daemons (stopped, killed or still running)."""
    found = harness.sanitizer_reports(d.logfile for d in daemons)
    if found:
        raise AssertionError("sanitizer report in a cordond log:\n" + "\n".join(found[:20]))


def _finish(request, env, failed_before):
    clean = False
    try:
        env.close()
        clean = True
    finally:
        if clean and request.session.testsfailed == failed_before \
                and not os.environ.get("CORDON_KEEP"):
            shutil.rmtree(env.dir, ignore_errors=True)
        else:
            print("\nkept %s for inspection" % env.dir)


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    """After each test (and the teardown of its other fixtures, which stops
    its daemons), fail it if a cordond it made wrote a sanitizer report.
    Daemons of the module's env that are still running are scanned again
    when the env closes."""
    first = len(Cordond.instances)
    yield
    check_sanitizer_reports(Cordond.instances[first:])


@pytest.fixture(scope="module")
def env(request):
    e = Env(make_tmpdir("cordon-it-"))
    failed_before = request.session.testsfailed
    try:
        e.broker.start()
        e.pg.start()
        yield e
    finally:
        _finish(request, e, failed_before)


@pytest.fixture
def cordond(env):
    made = []

    def factory(overrides=None, start=True, wait=True):
        d = env.cordond(overrides, start, wait)
        made.append(d)
        return d
    yield factory
    env.stop_daemons(made)


@pytest.fixture(scope="module")
def ctl(env):
    conf = harness.cordonctl_config(env.dir, env.pg.conninfo)

    def run(*args, expect=0):
        return harness.cordonctl(conf, *args, expect=expect)
    run("migrate")
    return run


@pytest.fixture
def private_env(request):
    e = Env(make_tmpdir("cordon-it-"))
    failed_before = request.session.testsfailed
    try:
        yield e
    finally:
        _finish(request, e, failed_before)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for part in ACTIVE:
            rep.sections.append(("%s log tail (%s)" % (part.name, part.logfile), tail(part.logfile)))
