"""What the programs tell about themselves (issue 20; docs/operations.md,
"Versions" and "Metrics"; docs/topics.md, the stats topic): --version of
the five programs against the libraries installed; cordon_build_info and
the process_* metrics of cordond and cordon-notify; cordon_alerts_open
through a fever's raise, ack and resolve; the stats message on
cordon/_daemon/<client id>/stats (SPEC 2).

One cordond serves the module (its metrics port, its stats topic); each
test looks at its own site. Metrics are rendered every 2 s and the stats
message every 10 s: the tests wait for them, nothing is timed.
"""

import ctypes
import json
import os
import re
import subprocess
import time

import pytest

from harness import (BASE_CONFIG, Collector, Notifier, free_port, gate_event, publish_many,
                     scrape, wait_register_loaded, wait_until)

PROGRAMS = {"cordond": "CORDOND", "cordon-notify": "CORDON_NOTIFY", "cordon-web": "CORDON_WEB",
            "cordonctl": "CORDONCTL", "cordon-sim": "CORDON_SIM"}
# The shared object behind each name --version can print (what ldd shows).
SONAMES = {"paho-mqtt": ("libpaho-mqtt3as.so.", "libpaho-mqtt3cs.so."), "libpq": ("libpq.so.",),
           "jansson": ("libjansson.so.",), "libmicrohttpd": ("libmicrohttpd.so.",),
           "libcurl": ("libcurl.so.",), "libsodium": ("libsodium.so.",),
           "openssl": ("libcrypto.so.",), "xxhash": ("libxxhash.so.",)}
LABELS = {"paho-mqtt": "paho"}
PROCESS = ("process_cpu_seconds_total", "process_virtual_memory_bytes",
           "process_resident_memory_bytes", "process_start_time_seconds", "process_open_fds",
           "process_max_fds")


def binary(program):
    path = os.environ.get(PROGRAMS[program])
    assert path and os.access(path, os.X_OK), "set %s" % PROGRAMS[program]
    return path


def version_of(program):
    """--version's text as (first line, {name: version}), its shape checked."""
    out = subprocess.run([binary(program), "--version"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    lines = out.splitlines()
    assert re.fullmatch(r"%s \d+\.\d+\.\d+" % re.escape(program), lines[0]), out
    libs = {}
    for line in lines[1:]:
        m = re.fullmatch(r"  ([a-z0-9-]+) (\S+)", line)
        assert m, "not a library line: %r in\n%s" % (line, out)
        libs[m.group(1)] = m.group(2)
    return lines[0], libs


def loaded(program):
    """{soname prefix: path} of the shared objects the program loads (ldd)."""
    out = subprocess.run(["ldd", binary(program)], capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def package_version(path):
    """The upstream version of the Debian package that installed `path`
    ("15.18" of libpq5's "15.18-0+deb12u1")."""
    name = os.path.basename(path)
    owner = subprocess.run(["dpkg", "-S", "*/" + name], capture_output=True, text=True,
                           check=True).stdout.splitlines()[0].split(":")[0]
    v = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", owner], capture_output=True,
                       text=True, check=True).stdout
    return re.sub(r"^\d+:", "", v).rsplit("-", 1)[0], owner


def paho_version(path):
    """What the installed Paho library says of itself (its getVersionInfo)."""
    class NameValue(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]
    lib = ctypes.CDLL(path)
    fn = lib.MQTTAsync_getVersionInfo if "3as" in path else lib.MQTTClient_getVersionInfo
    fn.restype = ctypes.POINTER(NameValue)
    info = fn()
    i = 0
    while info[i].name:
        if info[i].name == b"Version":
            return info[i].value.decode()
        i += 1
    return None


def samples(text, name):
    """[(labels dict, value)] of metric `name` in a /metrics text."""
    out = []
    for line in text.splitlines():
        m = re.fullmatch(r"%s(?:\{(.*)\})? (\S+)" % re.escape(name), line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            out.append((labels, float(m.group(2))))
    return out


def check_help_type(text, name, kind):
    assert re.search(r"^# HELP %s \S" % name, text, re.M), "no HELP for %s" % name
    assert re.search(r"^# TYPE %s %s$" % (name, kind), text, re.M), "no TYPE %s %s" % (name, kind)


class Recorder(Collector):
    """A Collector that also keeps each message's retain flag and QoS."""

    def __init__(self, port, topic_filter):
        self.flags = []
        super().__init__(port, topic_filter)

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self.flags.append((msg.topic, bool(msg.retain), msg.qos))


@pytest.fixture(scope="module")
def stats(env):
    """A subscriber to the module's cordond's stats topic from before it
    starts (its first message is sent as soon as it connects)."""
    topic = "cordon/_daemon/%s/stats" % BASE_CONFIG["mqtt"]["client_id"]
    with Recorder(env.broker.port, topic) as col:
        yield col


@pytest.fixture(scope="module")
def daemon(env, stats):
    """The module's cordond, its metrics on a port of its own."""
    port = free_port()
    d = env.cordond({"metrics": {"listen": "127.0.0.1:%d" % port}})
    d.metrics_port = port
    wait_register_loaded(d)
    wait_until(lambda: "cordon_build_info" in scrape(port), what="cordond's first metrics")
    yield d
    env.stop_daemons([d])


def alert_messages(col, kind):
    return [json.loads(p) for t, p in col.snapshot() if t.endswith("/alert/" + kind)]


# ---------------------------------------------------------------- --version

@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_version_names_the_libraries(program):
    """Each library the program loads that has a version call is named,
    with the version its installed package (or, for Paho, the library
    itself) gives, and nothing it does not load."""
    _, libs = version_of(program)
    sonames = loaded(program)
    for name, prefixes in SONAMES.items():
        paths = [p for so, p in sonames.items() if so.startswith(prefixes)]
        if not paths:
            assert name not in libs, "%s names %s, which it does not load" % (program, name)
            continue
        assert name in libs, "%s loads %s but --version does not name it" % (program, paths)
        if name == "paho-mqtt":
            # Debian's libpaho-mqtt 1.3.12 calls itself 1.3.11 (its
            # sources' version files): the library's own word is compared.
            assert libs[name] == paho_version(paths[0]), (libs, paths)
            print("%s: paho-mqtt %s (package %s)" % (program, libs[name],
                                                     package_version(paths[0])[0]))
        else:
            want, owner = package_version(paths[0])
            assert libs[name] == want, "%s: %s %s, package %s has %s" % (
                program, name, libs[name], owner, want)


# ---------------------------------------------------------------- /metrics

def test_build_info_and_process_metrics(env, daemon):
    port = daemon.metrics_port
    text = scrape(port)
    _, libs = version_of("cordond")
    check_help_type(text, "cordon_build_info", "gauge")
    (labels, value), = samples(text, "cordon_build_info")
    assert value == 1
    assert labels.pop("program") == "cordond"
    assert labels.pop("version") == version_of("cordond")[0].split()[1]
    assert labels == {LABELS.get(n, n): v for n, v in libs.items()}, (labels, libs)

    for name in PROCESS:
        check_help_type(text, name, "counter" if name.endswith("_total") else "gauge")
        assert len(samples(text, name)) == 1, name
    value = {name: samples(text, name)[0][1] for name in PROCESS}
    assert value["process_resident_memory_bytes"] > 0
    assert value["process_virtual_memory_bytes"] >= value["process_resident_memory_bytes"]
    assert value["process_open_fds"] >= 3
    assert value["process_max_fds"] >= value["process_open_fds"]
    assert value["process_cpu_seconds_total"] >= 0
    # started a moment ago (the module's first test), by its own clock
    age = time.time() - value["process_start_time_seconds"]
    assert -5 < age < 600, age
    with open("/proc/%d/limits" % daemon.proc.pid) as f:
        soft = re.search(r"^Max open files\s+(\d+)", f.read(), re.M).group(1)
    assert value["process_max_fds"] == int(soft)

    # A later text (a message received since): the CPU time does not go back.
    received = samples(text, "cordon_messages_received_total")[0][1]
    publish_many(env.broker.port, [gate_event("bip", "G01", "P-1")])
    later = wait_until(lambda: (lambda t: t if samples(t, "cordon_messages_received_total")[0][1]
                                > received else None)(scrape(port)),
                       what="a text rendered after the message")
    assert samples(later, "process_cpu_seconds_total")[0][1] >= value["process_cpu_seconds_total"]
    assert samples(later, "process_start_time_seconds")[0][1] == \
        pytest.approx(value["process_start_time_seconds"], abs=1)
    print("render: %s s" % samples(later, "cordon_metrics_render_seconds")[0][1])


def test_alerts_open_follows_a_fever(env, daemon):
    """raise -> a raised sample; ack -> an acked sample and no raised one;
    resolve -> neither."""
    port, site = daemon.metrics_port, "bio"

    def gauge(state):
        got = [v for lab, v in samples(scrape(port), "cordon_alerts_open")
               if lab == {"site": site, "kind": "fever", "state": state}]
        return got[0] if got else 0

    check_help_type(scrape(port), "cordon_alerts_open", "gauge")
    assert gauge("raised") == 0 and gauge("acked") == 0
    with Collector(env.broker.port, "cordon/%s/alert/#" % site) as col:
        publish_many(env.broker.port, [gate_event(site, "G01", "F-1", person="P-1", temp_c=38.6)])
        wait_until(lambda: alert_messages(col, "fever"), what="the fever alert")
        alert_id = alert_messages(col, "fever")[0]["alert_id"]
        wait_until(lambda: gauge("raised") == 1, what="cordon_alerts_open raised 1")
        assert gauge("acked") == 0

        def ack(action):
            body = {"alert_id": alert_id, "by": "op-1", "action": action}
            publish_many(env.broker.port, [("cordon/%s/ack" % site, json.dumps(body).encode())])

        ack("ack")
        wait_until(lambda: gauge("acked") == 1 and gauge("raised") == 0,
                   what="cordon_alerts_open acked 1, raised 0")
        ack("resolve")
        wait_until(lambda: gauge("acked") == 0 and gauge("raised") == 0,
                   what="no cordon_alerts_open sample of the site")
        # the gauge is the rules' state; the message may still be on its way
        wait_until(lambda: len(alert_messages(col, "fever")) >= 3, what="the resolved message")
        assert [a["transition"] for a in alert_messages(col, "fever")] == \
            ["raised", "acked", "resolved"]


def test_notify_build_info_and_process_metrics(env, ctl):
    port = free_port()
    url = os.path.join(env.dir, "hook.url")
    with open(url, "w") as f:
        f.write("http://127.0.0.1:9/alerts\n")   # never called: no alert comes
    n = Notifier(env.dir, env.broker.port, env.pg.conninfo, {
        "notify": {"client_id": "notify-bi", "metrics_listen": "127.0.0.1:%d" % port},
        "receiver.hook": {"type": "webhook", "url_file": url},
        "route.all": {"receivers": "hook"}})
    env.daemons.append(n)
    since = env.broker.log_size()
    n.start()
    try:
        env.wait_connected(n, since)
        text = wait_until(lambda: (lambda t: t if "cordon_build_info" in t else None)(
            scrape(port)), what="cordon-notify's first metrics")
        (labels, value), = samples(text, "cordon_build_info")
        _, libs = version_of("cordon-notify")
        assert value == 1 and labels.pop("program") == "cordon-notify"
        assert labels.pop("version") == version_of("cordon-notify")[0].split()[1]
        assert labels == {LABELS.get(k, k): v for k, v in libs.items()}
        assert "libcurl" in labels
        for name in PROCESS:
            check_help_type(text, name, "counter" if name.endswith("_total") else "gauge")
        assert samples(text, "process_resident_memory_bytes")[0][1] > 0
        assert samples(text, "process_open_fds")[0][1] >= 3
    finally:
        env.stop_daemons([n])


# ---------------------------------------------------------------- the stats topic

def test_stats_message(env, daemon, stats):
    """Messages on cordon/_daemon/<client id>/stats, at QoS 0: the first
    as cordond connected, and a later one that counts a message received
    since; none retained."""
    base = "cordon/_daemon/%s/" % daemon.client_id
    topic = base + "stats"

    def messages():
        return [json.loads(p) for t, p in stats.snapshot() if t == topic]
    first = wait_until(lambda: messages(), timeout=40, what="a stats message")[0]
    publish_many(env.broker.port, [gate_event("bis", "G01", "S-1")])
    # `received` is counted as Paho appends to the spool, `events` by the
    # main loop after: wait for the one the assertions below read
    later = wait_until(lambda: [m for m in messages()[1:] if m["events"] > first["events"]],
                       timeout=40, what="a stats message counting an event")[0]
    assert {qos for t, retain, qos in stats.flags} == {0}, stats.flags
    # A new subscriber gets the retained state at its SUBSCRIBE, and no
    # stats message with it (the broker sends the retained ones together).
    with Recorder(env.broker.port, base + "+") as late:
        wait_until(lambda: (base + "state", True) in [(t, r) for t, r, q in late.flags],
                   what="the retained state")
        assert (topic, True) not in [(t, r) for t, r, q in late.flags], late.flags
    for m in (first, later):
        assert set(m) == {"instance", "version", "ts", "uptime_s", "received", "events",
                          "rejected", "stored", "backlog_bytes", "spool_bytes",
                          "alert_transitions", "alerts_open", "alerts_acked", "postgres",
                          "intake_paused"}, m
        assert m["instance"] == daemon.client_id
        assert m["version"] == version_of("cordond")[0].split()[1]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", m["ts"]), m
        assert m["intake_paused"] is False, m
        assert 0 <= m["alerts_acked"] <= m["alerts_open"], m
        for k in ("uptime_s", "received", "events", "rejected", "stored", "backlog_bytes",
                  "spool_bytes", "alert_transitions"):
            assert isinstance(m[k], int) and m[k] >= 0, (k, m)
    assert later["postgres"] == "up", later
    assert later["uptime_s"] > first["uptime_s"], (first, later)
    assert later["ts"] > first["ts"]
    assert later["events"] > first["events"]
    print("stats messages %s and %s: %d s apart by uptime" % (
        first["ts"], later["ts"], later["uptime_s"] - first["uptime_s"]))
