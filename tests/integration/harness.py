"""Integration harness: a private Mosquitto, a private PostgreSQL and cordond,
all real processes in a temp dir, plus MQTT publish/collect helpers.

No mocks. Every process is registered in _PROCS and killed (whole process
group) at interpreter exit or on SIGTERM, so a crashed or timed-out run
leaves nothing behind. Components register their log files in ACTIVE so
conftest.py can print log tails when a test fails.
"""

import atexit
import datetime
import fcntl
import functools
import glob
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
import time

import paho.mqtt.client as mqtt
import psycopg2


def _pg_bin():
    """Debian's newest PostgreSQL server binaries, unless PG_BIN says otherwise."""
    found = glob.glob("/usr/lib/postgresql/*/bin")
    found.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    return os.environ.get("PG_BIN") or (found[-1] if found else "/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
TIMEOUT = float(os.environ.get("CORDON_TEST_TIMEOUT", "60"))
IS_ROOT = os.geteuid() == 0

_PROCS = set()     # live subprocess.Popen objects, each leading its own group
ACTIVE = []        # live components with .name and .logfile, for failure reports


def _kill_all():
    for p in list(_PROCS):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        _PROCS.discard(p)


def _on_sigterm(signum, frame):
    # meson's timeout sends SIGTERM and SIGKILLs us 0.5 s later: be quick.
    _kill_all()
    os._exit(128 + signum)


atexit.register(_kill_all)
if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _on_sigterm)


# ---------------------------------------------------------------- utilities

def wait_until(pred, timeout=TIMEOUT, interval=0.1, what=None):
    """Poll pred() until it returns a truthy value; return that value. On timeout
    raise AssertionError naming `what` (a string, or a callable giving one)
    and the last value seen.

    A table that does not exist yet is a value not reached yet: cordond's
    store thread makes the schema on its own connection after cordond says
    it is ready, so a wait for rows that starts at once may come first. A
    table that never appears still fails, at the timeout, by name."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            last = pred()
        except psycopg2.errors.UndefinedTable:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)
            continue
        if last:
            return last
        if time.monotonic() > deadline:
            what = what() if callable(what) else what
            raise AssertionError("timed out after %.0f s waiting for %s (last value: %r)"
                                 % (timeout, what or getattr(pred, "__name__", "condition"), last))
        time.sleep(interval)


# Ports for the tests' servers: below Linux's ephemeral range (32768-60999 by
# default), where any process's outgoing connection may take a port between
# the moment a test picks it and the moment its server binds it (a lost
# bind: ejabberd "eaddrinuse", PostgreSQL restarted on its port). The shell
# scripts pick theirs from 10000-19999 (scripts/lib/tmpservers.sh).
PORT_RANGE = (20000, 32768)
_PORT_LOCKS = os.environ.get("CORDON_TEST_PORT_LOCKS", "/tmp/cordon-test-ports")
_reserved = {}   # port -> the open lock file that holds it for this process


def _shared_dir(path):
    """Make path, if need be, as a directory every user may add files to
    (sticky, as /tmp is): the suites may run as root and as another user."""
    try:
        os.mkdir(path)
        os.chmod(path, 0o1777)
    except FileExistsError:
        pass


def _lock_file(path):
    """path opened for an flock: read-only (flock needs no write access),
    made readable by all if it is new, so any user may lock it."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    return os.fdopen(fd, "rb")


def free_port():
    """Return a TCP port on 127.0.0.1 that nobody listens on, reserved for
    this process until it exits: no other test process (the plain and the
    ASan suites run side by side) is given it, even while its server is
    stopped and started again on it. The reservation is an flock(2) on
    CORDON_TEST_PORT_LOCKS/<port>, released by the kernel when the process
    ends however it ends. Raises RuntimeError if no port is left in
    PORT_RANGE."""
    _shared_dir(_PORT_LOCKS)
    lo, hi = PORT_RANGE
    start = random.randrange(lo, hi)
    for i in range(hi - lo):
        port = lo + (start - lo + i) % (hi - lo)
        if port in _reserved:
            continue
        try:
            f = _lock_file(os.path.join(_PORT_LOCKS, str(port)))
        except OSError:
            continue
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        # Held; now is it free? No SO_REUSEADDR: a port in TIME_WAIT is skipped.
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            f.close()
            continue
        _reserved[port] = f
        return port
    raise RuntimeError("no free port left in %d-%d" % PORT_RANGE)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def make_tmpdir(prefix):
    """A fresh temp dir under $TMPDIR (or /tmp), traversable by other users
    (PostgreSQL runs as `postgres` when we are root)."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


def tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(no log: %s)" % e
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _spawn(argv, logfile, user=None, cwd=None, env=None):
    """Start argv in its own process group with stdout+stderr appended to logfile.
    The child gets SIGKILL if we die (setpriv --pdeathsig)."""
    if shutil.which("setpriv"):
        argv = ["setpriv", "--pdeathsig", "KILL", "--"] + list(argv)
    kw = {}
    if user and IS_ROOT:
        kw = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
    with open(logfile, "ab") as log:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, cwd=cwd, env=env, **kw)
    _PROCS.add(p)
    return p


def _signal(p, sig):
    if p.poll() is None:   # never signal a reaped pid: it may be reused
        os.kill(p.pid, sig)


def _reap(p, timeout):
    """Wait for p; SIGKILL its group if it does not exit in time. Returns exit code."""
    try:
        rc = p.wait(timeout)
    except subprocess.TimeoutExpired:
        rc = None
    if p in _PROCS:   # first reap: its group id stays reserved while any member lives
        try:
            os.killpg(p.pid, signal.SIGKILL)   # leftovers (e.g. postgres backends)
        except OSError:
            pass
        _PROCS.discard(p)
    if rc is None:
        p.wait()
    return rc


# ---------------------------------------------------------------- Mosquitto

class Broker:
    """A private Mosquitto 2 with persistence in `dir`. start() may be called
    again after stop()/kill(): same port, same persistence file.

    Optional security settings (all off by default):
    tls            dict(cafile=, certfile=, keyfile=, require_certificate=False):
                   a second listener on 127.0.0.1:self.tls_port with TLS
    password_file  a file made by mosquitto_passwd: allow_anonymous becomes
                   false on every listener
    acl_file       a Mosquitto ACL file
    dynsec         a dict for the dynamic security plugin's JSON file (shipped
                   with Debian's mosquitto): unlike an acl_file in Mosquitto
                   2.0, its roles can refuse a SUBSCRIBE (SUBACK 0x87)
    extra          more lines for mosquitto.conf (e.g. "max_packet_size 1000")"""

    name = "mosquitto"

    def __init__(self, dir, port=None, tls=None, password_file=None, acl_file=None, dynsec=None,
                 extra=None):
        self.dir = dir
        self.port = port or free_port()
        self.tls_port = None
        self.conf = os.path.join(dir, "mosquitto.conf")
        self.logfile = os.path.join(dir, "mosquitto.log")
        self.proc = None
        with open(self.conf, "w") as f:
            f.write(f"""\
listener {self.port} 127.0.0.1
allow_anonymous {"false" if password_file else "true"}
# as root, mosquitto would switch to user `mosquitto`, which cannot write here
user {pwd.getpwuid(os.geteuid()).pw_name}
persistence true
persistence_location {dir}/
autosave_interval 0
# never drop a QoS 1 message queued for a disconnected persistent session
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 1000
set_tcp_nodelay true
log_dest file {self.logfile}
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
connection_messages true
log_timestamp_format %Y-%m-%dT%H:%M:%S
""")
            if password_file:
                f.write("password_file %s\n" % password_file)
            if acl_file:
                f.write("acl_file %s\n" % acl_file)
            if dynsec is not None:
                plugin = (glob.glob("/usr/lib/*/mosquitto_dynamic_security.so")
                          + glob.glob("/usr/lib/mosquitto_dynamic_security.so"))
                assert plugin, "mosquitto_dynamic_security.so not found (Debian's mosquitto has it)"
                dynsec_file = os.path.join(dir, "dynamic-security.json")
                with open(dynsec_file, "w") as j:
                    json.dump(dynsec, j)
                f.write("plugin %s\nplugin_opt_config_file %s\n" % (plugin[0], dynsec_file))
            if extra:
                f.write(extra.rstrip("\n") + "\n")
            if tls:
                self.tls_port = tls.get("port") or free_port()
                f.write("listener %d 127.0.0.1\n" % self.tls_port)
                for key in ("cafile", "certfile", "keyfile"):
                    f.write("%s %s\n" % (key, tls[key]))
                f.write("require_certificate %s\n"
                        % ("true" if tls.get("require_certificate") else "false"))

    def start(self):
        assert not self.alive(), "broker already running"
        self.proc = _spawn(["mosquitto", "-c", self.conf], self.logfile + ".stderr")
        if self not in ACTIVE:
            ACTIVE.append(self)
        for port in filter(None, (self.port, self.tls_port)):
            wait_until(lambda: port_open(port) or self.proc.poll() is not None,
                       what="mosquitto on port %d" % port)
        assert self.proc.poll() is None, "mosquitto exited:\n" + tail(self.logfile) \
            + "\n" + tail(self.logfile + ".stderr")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=TIMEOUT):
        """SIGTERM (mosquitto saves its persistence file) and wait."""
        if self.proc:
            _signal(self.proc, signal.SIGTERM)
            _reap(self.proc, timeout)
        self.proc = None

    def kill(self):
        if self.proc:
            _signal(self.proc, signal.SIGKILL)
            _reap(self.proc, TIMEOUT)
        self.proc = None

    def log(self):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.logfile)
        except FileNotFoundError:
            return 0

    def subscribed(self, client_id, since=0):
        """True once client_id has connected after log offset `since` and has
        (in this or an earlier connection of its persistent session) subscribed.
        Mosquitto logs `New client connected from A:P as ID (...)` and, with
        log_type subscribe, `ID QOS FILTER`."""
        cid = re.escape(client_id)
        text = self.log()
        return bool(re.search(r"New client connected from \S+ as %s \(" % cid, text[since:])
                    and re.search(r"^\S+: %s \d \S+$" % cid, text, re.M))


# ---------------------------------------------------------------- ejabberd

# MQTT credentials by broker port: _client(), Collector, publish_many and
# Stream log in with them (a broker that, unlike the tests' Mosquitto,
# takes no anonymous client registers its ports here).
MQTT_AUTH = {}


class EjabberdNode:
    """One node of an Ejabberd cluster (see there): its name, MQTT port,
    directory and log; start/stop/kill through the cluster."""

    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.name = "ejabberd-%d" % index
        self.node = "ejabberd%d-%d-%d@127.0.0.1" % (index, os.getpid(), cluster.seq)
        self.dir = os.path.join(cluster.dir, "node%d" % index)
        self.port = free_port()
        self.uri = "tcp://127.0.0.1:%d" % self.port
        self.logfile = os.path.join(self.dir, "ejabberd.log")
        self.config = os.path.join(self.dir, "ejabberd.yml")
        self.proc = None
        for sub in ("spool", "queue"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        with open(self.config, "w") as f:
            f.write(cluster.config_text(self))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class Ejabberd:
    """A cluster of `nodes` ejabberd nodes (Debian's 23.01, mod_mqtt) on this
    machine, in `dir`, run as the current user (root or not: it runs erl
    itself, not ejabberdctl, which insists on becoming user `ejabberd`).

    Each node: an Erlang node name ejabberdN-PID-SEQ@127.0.0.1, its own
    Mnesia spool (dir/nodeN/spool), file queues (dir/nodeN/queue),
    ejabberd.yml, log (dir/nodeN/ejabberd.log) and one listener: mod_mqtt
    on 127.0.0.1:nodes[i].port. A private epmd on a free port and a random
    cookie keep it apart from any other Erlang on the machine. Node 2..N
    join node 1 (`join_cluster`) at the first start: Mnesia then holds the
    users, the session and subscription tables on every node.

    mod_mqtt as docs/scaling.md, "The broker", sets it: sessions kept
    `session_expiry` (ejabberd's default is 5 minutes), up to `max_queue`
    messages queued per session (default 5,000), queues in files
    (`queue_type: file`), and a session's mailbox bound (`max_fsm_queue`)
    raised. Clients log in as user `user` with `password` (internal auth;
    the user is registered at the first start); MQTT_AUTH has them for
    every port, so the MQTT helpers of this module log in by themselves.

    start() brings every node up and waits until each one's MQTT port
    takes a client (CONNACK); start_node(i)/stop_node(i) (SIGTERM: ejabberd
    stops cleanly, its sessions end)/kill_node(i) (SIGKILL) per node, 0-based;
    close() stops them all and epmd."""

    _seq = 0

    def __init__(self, dir, nodes=2, session_expiry="7 days", max_queue=1000000,
                 user="cordon", password="cordon-secret"):
        Ejabberd._seq += 1
        self.seq = Ejabberd._seq
        self.dir = dir
        self.session_expiry = session_expiry
        self.max_queue = max_queue
        self.user = user
        self.password = password
        self.cookie = "cordon%d%d" % (os.getpid(), int(time.time() * 1000) % 1000000)
        self.epmd_port = free_port()
        self.epmd = None
        self.epmd_log = os.path.join(dir, "epmd.log")
        self.erl = shutil.which("erl") or "/usr/bin/erl"
        self.libs = self._ejabberd_libs()
        self.nodes = [EjabberdNode(self, i + 1) for i in range(nodes)]
        self.password_file = os.path.join(dir, "mqtt-password")
        with open(self.password_file, "w") as f:
            f.write(password + "\n")
        for n in self.nodes:
            MQTT_AUTH[n.port] = (user, password)
        self._joined = False

    @staticmethod
    def _ejabberd_libs():
        """ERL_LIBS as Debian's ejabberdctl sets it: where ejabberd-23.01 is."""
        for d in glob.glob("/usr/lib/*/ejabberd-*/ebin") + glob.glob("/usr/lib/ejabberd*/ebin"):
            return os.path.dirname(os.path.dirname(d))
        raise AssertionError("ejabberd not found under /usr/lib (apt-get install ejabberd)")

    def config_text(self, node):
        return f"""\
# cordon's test cluster, node {node.index}: mod_mqtt only (docs/scaling.md, "The broker")
hosts:
  - localhost
loglevel: info
log_rotate_count: 0
hide_sensitive_log_data: false
queue_dir: {node.dir}/queue
auth_method: [internal]
listen:
  -
    port: {node.port}
    ip: "127.0.0.1"
    module: mod_mqtt
    backlog: 1000
    # a session's mailbox (messages routed to it, not yet in its queue);
    # past it ejabberd ends the session (default 10,000)
    max_fsm_queue: 1000000
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_mqtt:
    # how long a session outlives its connection (default 5 minutes)
    session_expiry: {self.session_expiry}
    # messages queued per session, beyond which ejabberd ends it (default 5,000)
    max_queue: {self.max_queue}
    # queues in files under queue_dir instead of memory (they do not
    # survive the node: a session lives in the node its client is on)
    queue_type: file
"""

    def _env(self, node=None):
        env = dict(os.environ, ERL_EPMD_PORT=str(self.epmd_port), ERL_LIBS=self.libs,
                   HOME=self.dir, CONTRIB_MODULES_PATH=os.path.join(self.dir, "modules"),
                   LC_ALL="C.UTF-8")
        if node:
            env.update(EJABBERD_CONFIG_PATH=node.config, EJABBERD_LOG_PATH=node.logfile,
                       ERL_CRASH_DUMP=os.path.join(node.dir, "erl_crash.dump"))
        return env

    def _start_epmd(self):
        if self.epmd is not None and self.epmd.poll() is None:
            return
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        self.epmd = _spawn([epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                           self.epmd_log, env=self._env())
        wait_until(lambda: port_open(self.epmd_port) or self.epmd.poll() is not None,
                   what="epmd on port %d" % self.epmd_port)
        assert self.epmd.poll() is None, "epmd exited:\n" + tail(self.epmd_log)

    def ctl(self, node, *args, timeout=TIMEOUT):
        """Run an ejabberdctl command on `node` (an EjabberdNode) the way
        ejabberdctl does (a hidden Erlang node calling ejabberd_ctl); return
        (exit code, output)."""
        self.ctl_seq = getattr(self, "ctl_seq", 0) + 1
        argv = [self.erl, "-name", "ctl%d-%d@127.0.0.1" % (self.ctl_seq, os.getpid()),
                "-setcookie", self.cookie, "-hidden", "-noinput", "-s", "ejabberd_ctl",
                "-extra", node.node] + [str(a) for a in args]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           env=self._env(), cwd=self.dir, timeout=timeout)
        return p.returncode, (p.stdout + p.stderr).strip()

    def _launch(self, node):
        assert not node.alive(), "%s already running" % node.name
        node.proc = _spawn([self.erl, "-name", node.node, "-setcookie", self.cookie, "-noinput",
                            "+K", "true", "+P", "250000",
                            "-mnesia", "dir", '"%s"' % os.path.join(node.dir, "spool"),
                            "-s", "ejabberd"],
                           os.path.join(node.dir, "erl.log"), cwd=node.dir, env=self._env(node))
        if node not in ACTIVE:
            ACTIVE.append(node)

    def _wait_ready(self, node):
        """Until node's MQTT port takes a client with our credentials."""
        def ready():
            if not node.alive():
                raise AssertionError("%s exited:\n%s\n%s" % (
                    node.name, tail(node.logfile), tail(os.path.join(node.dir, "erl.log"))))
            return port_open(node.port) and mqtt_login_works(node.port)
        wait_until(ready, timeout=max(TIMEOUT, 90), interval=0.3,
                   what="%s taking MQTT clients on port %d" % (node.name, node.port))

    def start(self):
        """Start every node; the first time, cluster them and register the user."""
        self._start_epmd()
        for node in self.nodes:
            if not node.alive():
                self._launch(node)
        first = self.nodes[0]
        if not self._joined:
            wait_until(lambda: port_open(first.port) or not first.alive(), timeout=max(TIMEOUT, 90),
                       what="%s listening" % first.name)
            for node in self.nodes[1:]:
                wait_until(lambda: port_open(node.port) or not node.alive(),
                           timeout=max(TIMEOUT, 90), what="%s listening" % node.name)
                rc, out = self.ctl(node, "join_cluster", first.node)
                assert rc == 0, "%s: join_cluster %s: %s" % (node.name, first.node, out)
            rc, out = self.ctl(first, "register", self.user, "localhost", self.password)
            assert rc == 0, "register %s: %s" % (self.user, out)
            rc, out = self.ctl(first, "list_cluster")
            assert all(n.node in out for n in self.nodes), "list_cluster: %s" % out
            self._joined = True
        for node in self.nodes:
            self._wait_ready(node)
        wait_until(self.settled, what="every node counting the whole cluster")
        return self

    def settled(self):
        """True when every running node counts exactly the running nodes as
        the cluster (`list_cluster`: Mnesia's running nodes). Until then a
        PUBLISH on a node may crash its sender's session (docs/scaling.md,
        "ejabberd": a node going or coming)."""
        live = {n.node for n in self.nodes if n.alive()}
        for n in self.nodes:
            if n.alive():
                rc, out = self.ctl(n, "list_cluster")
                if rc != 0 or {w.strip("'") for w in out.split()} != live:
                    return False
        return True

    def start_node(self, i, settle=True):
        """Start node i again (it rejoins the cluster by itself: Mnesia
        remembers) and wait until it takes MQTT clients (and, with settle,
        until the cluster counts it)."""
        self._start_epmd()
        self._launch(self.nodes[i])
        self._wait_ready(self.nodes[i])
        if settle:
            wait_until(self.settled, what="the cluster counting %s" % self.nodes[i].name)

    def stop_node(self, i, timeout=TIMEOUT, settle=False):
        """SIGTERM: the Erlang VM stops cleanly (init:stop); its sessions end.
        With settle, wait until the other nodes no longer count it."""
        node = self.nodes[i]
        if node.proc:
            _signal(node.proc, signal.SIGTERM)
            rc = _reap(node.proc, timeout)
            assert rc is not None, "%s did not stop within %.0f s" % (node.name, timeout)
        node.proc = None
        if settle:
            wait_until(self.settled, what="the cluster without %s" % node.name)

    def kill_node(self, i, settle=False):
        """SIGKILL; with settle as stop_node()."""
        node = self.nodes[i]
        if node.proc:
            _signal(node.proc, signal.SIGKILL)
            _reap(node.proc, TIMEOUT)
        node.proc = None
        if settle:
            wait_until(self.settled, what="the cluster without %s" % node.name)

    def uris(self, order=None):
        """[mqtt] uri listing the nodes (0-based indexes, in that order)."""
        order = range(len(self.nodes)) if order is None else order
        return ",".join(self.nodes[i].uri for i in order)

    def close(self):
        for i in range(len(self.nodes)):
            try:
                self.stop_node(i)
            finally:
                if self.nodes[i] in ACTIVE:
                    ACTIVE.remove(self.nodes[i])
        if self.epmd is not None:
            _signal(self.epmd, signal.SIGTERM)
            _reap(self.epmd, TIMEOUT)
            self.epmd = None
        for n in self.nodes:
            MQTT_AUTH.pop(n.port, None)


def mqtt_login_works(port, timeout=5):
    """True when a clean-session client logs in on port (with MQTT_AUTH's
    credentials for it, if any) and gets a CONNACK that lets it in."""
    got = threading.Event()
    ok = []
    c = mqtt.Client(client_id="probe-%d-%d" % (os.getpid(), port), clean_session=True)
    if port in MQTT_AUTH:
        c.username_pw_set(*MQTT_AUTH[port])

    def on_connect(cl, ud, flags, rc):
        ok.append(rc == 0)
        got.set()
    c.on_connect = on_connect
    try:
        c.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return False
    c.loop_start()
    try:
        return got.wait(timeout) and ok[0]
    finally:
        c.disconnect()
        c.loop_stop()


# ---------------------------------------------------------------- PostgreSQL

INITDB_ARGS = ["-A", "trust", "--nosync", "-U", "cordon", "-E", "UTF8", "--locale=C"]


@functools.lru_cache(maxsize=None)
def _pg_version():
    """`postgres --version` of PG_BIN's server, asked once per process."""
    return subprocess.run([os.path.join(PG_BIN, "postgres"), "--version"], check=True,
                          capture_output=True, text=True).stdout.strip()


def _pg_template(user):
    """The path of a cluster freshly made by `initdb INITDB_ARGS` (PG_BIN's),
    never started, owned by `user` (None: us); made once per machine and
    kept under $TMPDIR, keyed by the server's version, the arguments and the
    owner. Test clusters are `cp -a` copies of it. Made under an flock by the
    first process that needs it, in a temp dir renamed into place, so a
    process that dies half-way leaves no half a template."""
    version = _pg_version()
    key = re.sub(r"[^A-Za-z0-9.]+", "-", "%s %s %s %s" % (version, PG_BIN, " ".join(INITDB_ARGS),
                                                          user or os.geteuid()))
    base = os.path.join(tempfile.gettempdir(), "cordon-test-pg-template")
    path = os.path.join(base, key)
    if os.path.isdir(path):
        return path
    _shared_dir(base)
    with _lock_file(os.path.join(base, key + ".lock")) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(path):
            tmp = tempfile.mkdtemp(prefix=key + ".new-", dir=base)
            os.chmod(tmp, 0o755)
            data = os.path.join(tmp, "data")
            if user:
                pw = pwd.getpwnam(user)
                os.chown(tmp, pw.pw_uid, pw.pw_gid)
            subprocess.run([os.path.join(PG_BIN, "initdb"), "-D", data] + INITDB_ARGS,
                           check=True, cwd=tmp, user=user, capture_output=True,
                           env=dict(os.environ, LC_ALL="C", LANG="C"))
            os.rename(data, path)
            os.rmdir(tmp)
    return path


class Postgres:
    """A private PostgreSQL 15 cluster in dir/data; socket in dir; database `cordon`,
    superuser `cordon`, trust auth. Runs as `postgres` when we are root."""

    name = "postgresql"

    def __init__(self, dir, port=None, durable=False, initdb=True):
        """durable: fsync, synchronous_commit and full_page_writes on, as in
        production (benchmarks); tests run without them, for speed.
        initdb=False: dir/data is made by the caller (make_standby)."""
        self.dir = dir
        self.port = port or free_port()
        self.data = os.path.join(dir, "data")
        self.logfile = os.path.join(dir, "postgres.log")
        self.user = "postgres" if IS_ROOT else None
        self.proc = None
        self.conninfo = f"host={dir} port={self.port} dbname=cordon user=cordon"
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(dir, pw.pw_uid, pw.pw_gid)
        self._created = False
        # query()'s connections: one per thread, kept while the server runs
        # (each poll of a wait_until was a new backend: a fork and its
        # start-up, the largest share of the suites' CPU); a start or stop
        # begins a new generation, and a connection of an older one is
        # dropped before use, never retried.
        self._local = threading.local()
        self._generation = 0
        if not initdb:
            return
        # A copy of one initdb's cluster: the same files initdb would make,
        # at a quarter of its CPU (the suites make some 170 clusters each).
        subprocess.run(["cp", "-a", _pg_template(self.user), self.data], check=True)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{dir}'
max_connections = 50
""")
            if not durable:
                f.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")

    def make_standby(self, dir):
        """A streaming standby of this running server, in dir/data: a base
        backup with the settings to follow it (pg_basebackup -R: standby.signal
        and primary_conninfo), its own port and socket dir. Returned not
        started; its start() waits until it takes (read-only) connections,
        promote() makes it a primary."""
        s = Postgres(dir, initdb=False)
        subprocess.run([os.path.join(PG_BIN, "pg_basebackup"), "-h", self.dir, "-p", str(self.port),
                        "-U", "cordon", "-D", s.data, "-R", "-X", "stream", "-c", "fast"],
                       check=True, cwd=dir, user=self.user, capture_output=True,
                       env=dict(os.environ, LC_ALL="C"))
        with open(os.path.join(s.data, "postgresql.conf"), "a") as f:
            f.write("\n# the standby's own\nport = %d\nunix_socket_directories = '%s'\n"
                    % (s.port, dir))
        s._created = True   # the base backup holds database `cordon`
        return s

    def in_recovery(self):
        return self.scalar("SELECT pg_is_in_recovery()")

    def promote(self):
        """pg_ctl promote; returns once the server takes writes."""
        subprocess.run([os.path.join(PG_BIN, "pg_ctl"), "promote", "-D", self.data],
                       check=True, cwd=self.dir, user=self.user, capture_output=True)
        wait_until(lambda: not self.in_recovery(), what="the standby promoted")

    def start(self):
        """Start the postmaster and wait until it accepts connections; the first
        time, also create database `cordon`."""
        assert not self.alive(), "postgres already running"
        self._generation += 1
        self.proc = _spawn([os.path.join(PG_BIN, "postgres"), "-D", self.data], self.logfile,
                           user=self.user, cwd=self.dir, env=dict(os.environ, LC_ALL="C"))
        if self not in ACTIVE:
            ACTIVE.append(self)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("postgres exited:\n" + tail(self.logfile))
            try:
                psycopg2.connect(self._dsn("postgres"), connect_timeout=2).close()
                return True
            except psycopg2.OperationalError:
                return False
        wait_until(ready, what="postgres on port %d" % self.port)
        if not self._created:
            c = psycopg2.connect(self._dsn("postgres"))
            c.autocommit = True
            c.cursor().execute("CREATE DATABASE cordon")
            c.close()
            self._created = True
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, mode="fast", timeout=TIMEOUT):
        """Shut down: mode smart (SIGTERM), fast (SIGINT) or immediate (SIGQUIT)."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        self._generation += 1
        self._drop_conn()   # smart waits for every client, this one too
        if self.proc:
            _signal(self.proc, sig)
            _reap(self.proc, timeout)
        self.proc = None

    def kill(self):
        self.stop("immediate")

    def _dsn(self, db):
        return f"host={self.dir} port={self.port} dbname={db} user=cordon"

    def _drop_conn(self):
        c = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is not None:
            c.close()

    def query(self, sql, args=None):
        """Run one statement, autocommit (its own transaction: now() is this
        statement's), on this thread's connection to database `cordon`;
        return all rows (or [] for statements without a result). The
        connection is made on first use and after the server's last start
        or stop; a failed connection is dropped, and the error raised."""
        c = getattr(self._local, "conn", None)
        if c is None or c.closed or self._local.generation != self._generation:
            self._drop_conn()
            c = psycopg2.connect(self.conninfo, connect_timeout=5)
            c.autocommit = True
            self._local.conn, self._local.generation = c, self._generation
        try:
            with c.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            self._drop_conn()
            raise

    def scalar(self, sql, args=None):
        return self.query(sql, args)[0][0]

    def count(self, table, where="true", args=None):
        """Row count of table, 0 if the table does not exist yet (cordond
        creates it by migration at start)."""
        try:
            return self.scalar(f"SELECT count(*) FROM {table} WHERE {where}", args)
        except psycopg2.errors.UndefinedTable:
            return 0

    def log(self):
        with open(self.logfile, encoding="utf-8", errors="replace") as f:
            return f.read()


# ---------------------------------------------------------------- cordond

BASE_CONFIG = {
    "mqtt": {"uri": None, "client_id": "cordond-test", "topic_root": "cordon",
             "keepalive": "10s", "session_expiry": "1h"},
    "postgres": {"conninfo": None},
    "spool": {"dir": None},
    # The fixtures carry device times of February 2020 (gate_event()'s ts,
    # the field cases): retention (90 days by default) would remove their
    # rows at start or at a SIGHUP. test_retention.py sets its own.
    "site": {"retention_days": "0"},
    "rules": {"fever_c": "37.3", "critical_c": "38.5"},
    "log": {"level": "info"},
    # Tests run several daemons: no fixed metrics port unless a test asks.
    "metrics": {"listen": "off"},
    # One cordond the old way (its own session takes every site): a clustered
    # start (the default, 16 shards) takes about 3 s more (the join delay,
    # the shards' seeds, 16 sessions connecting), and this suite starts
    # cordond in some 300 places. The clustered default is what
    # test_cluster_discovery.py, test_cluster*.py, test_ejabberd.py,
    # test_demo.py (scripts/demo's own config), the clustered cases of
    # test_ingest.py, test_replays.py and test_security.py run; a test asks
    # for it with {"cluster": CLUSTERED}.
    "cluster": {"shards": "0"},
}
# The product's default: [cluster] shards = 16, discovery = yes.
CLUSTERED = {"shards": "16"}


# What ASan, LSan and UBSan write to stderr (cordond's log) when they find
# something. abort_on_error/halt_on_error end the process, but a report in a
# daemon that a test then SIGKILLs, or whose exit code it does not check,
# would go unnoticed: conftest.py scans every cordond log for these.
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def sanitizer_reports(logfiles):
    """The lines of logfiles that carry a sanitizer report marker, each as
    "logfile: line" (an empty list when there are none)."""
    found = []
    for path in logfiles:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                found += ["%s: %s" % (path, line.rstrip()) for line in f
                          if any(m in line for m in SANITIZER_MARKERS)]
        except FileNotFoundError:
            pass
    return found


def inbound_id_of(config):
    """The client id of the MQTT client of a cordond with `config` ({section:
    {key: value}}, the product's defaults for what it leaves out) that takes
    every site: shard 0's session when clustered with discovery, the
    instance's own client with [cluster] shards = 0, None with discovery off."""
    cl = config.get("cluster", {})
    if int(cl.get("shards", "16")) == 0:
        return config.get("mqtt", {}).get("client_id", "cordond")
    if cl.get("discovery", "yes") == "yes":
        return cl.get("session_prefix", "cordon-shard-") + "000"
    return None


class Cordond:
    """One cordond process with a generated INI config. The spool dir is shared
    by all instances made in the same workdir (a restart of the same daemon).
    Cordond.instances lists every one made, for the sanitizer log scan."""

    name = "cordond"
    _seq = 0
    instances = []

    def __init__(self, workdir, broker_port, conninfo, overrides=None):
        binary = os.environ.get("CORDOND")
        assert binary and os.access(binary, os.X_OK), \
            "set CORDOND to the cordond binary (meson does: meson test --suite integration)"
        Cordond._seq += 1
        Cordond.instances.append(self)
        self.binary = binary
        self.config = {s: dict(kv) for s, kv in BASE_CONFIG.items()}
        self.config["mqtt"]["uri"] = "tcp://127.0.0.1:%d" % broker_port
        self.config["postgres"]["conninfo"] = conninfo
        self.config["spool"]["dir"] = os.path.join(workdir, "spool")
        for section, kv in (overrides or {}).items():
            self.config.setdefault(section, {}).update(kv)
        self.client_id = self.config["mqtt"]["client_id"]
        # The MQTT client that takes every site: with [cluster] shards > 0
        # (16 by default) and discovery (the default), shard 0's session
        # (docs/scaling.md); with shards = 0, the instance's own client;
        # with discovery off, none takes every site (None).
        self.inbound_id = inbound_id_of(self.config)
        self.conffile = os.path.join(workdir, "cordond-%d.conf" % Cordond._seq)
        self.logfile = os.path.join(workdir, "cordond-%d.log" % Cordond._seq)
        with open(self.conffile, "w") as f:
            for section, kv in self.config.items():
                f.write("[%s]\n" % section)
                f.writelines("%s = %s\n" % (k, v) for k, v in kv.items())
                f.write("\n")
        self.proc = None

    def start(self, extra_env=None):
        """Start it; extra_env adds environment variables (e.g. NOTIFY_SOCKET)."""
        assert not self.alive(), "cordond already running"
        env = dict(os.environ, **extra_env) if extra_env else None
        self.proc = _spawn([self.binary, "-c", self.conffile], self.logfile, env=env)
        if self not in ACTIVE:
            ACTIVE.append(self)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def returncode(self):
        return self.proc.poll() if self.proc else None

    def stop(self, sig=signal.SIGTERM, timeout=TIMEOUT):
        """Send sig and wait; return the exit code (negative: killed by a signal).
        Raises if cordond does not exit within timeout (it is then SIGKILLed)."""
        if self.proc is None:
            return None
        _signal(self.proc, sig)
        rc = _reap(self.proc, timeout)
        if rc is None:
            raise AssertionError("cordond did not exit within %.0f s of signal %d:\n%s"
                                 % (timeout, sig, tail(self.logfile)))
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def send_signal(self, sig):
        """Send sig without waiting (see wait())."""
        if self.proc is not None:
            _signal(self.proc, sig)

    def wait(self, timeout=TIMEOUT):
        """Wait for cordond to exit; return its exit code. Raises if it does not
        exit within timeout (it is then SIGKILLed)."""
        if self.proc is None:
            return None
        rc = _reap(self.proc, timeout)
        if rc is None:
            raise AssertionError("cordond did not exit within %.0f s:\n%s" % (timeout, tail(self.logfile)))
        return rc

    def log(self):
        with open(self.logfile, encoding="utf-8", errors="replace") as f:
            return f.read()


class Notifier(Cordond):
    """One cordon-notify process (CORDON_NOTIFY) with a generated config: the
    shared sections as cordond's, plus `overrides` (its [notify],
    [receiver.NAME] and [route.NAME] sections). Same start/stop/kill/log."""

    name = "cordon-notify"

    def __init__(self, workdir, broker_port, conninfo, overrides=None):
        binary = os.environ.get("CORDON_NOTIFY")
        assert binary and os.access(binary, os.X_OK), \
            "set CORDON_NOTIFY to the cordon-notify binary (meson does)"
        overrides = dict(overrides or {})
        overrides.setdefault("notify", {}).setdefault("metrics_listen", "off")
        os.environ.setdefault("CORDOND", binary)  # Cordond checks it; the binary is ours
        super().__init__(workdir, broker_port, conninfo, overrides)
        self.binary = binary
        self.client_id = self.config["notify"].get("client_id", "cordon-notify")
        self.inbound_id = self.client_id   # its one client subscribes
        base = os.path.join(workdir, "cordon-notify-%d" % Cordond._seq)
        os.replace(self.conffile, base + ".conf")
        self.conffile, self.logfile = base + ".conf", base + ".log"


class Web(Cordond):
    """One cordon-web process (CORDON_WEB) with a generated config: the shared
    sections as cordond's, [web] listen on a free port, its own client id and
    assets_dir (CORDON_WEB_ASSETS, else a minimal page written into workdir),
    plus `overrides`. Same start/stop/kill/log; url(path) for requests and
    wait_ready() until it answers and the broker has seen it subscribe."""

    name = "cordon-web"

    def __init__(self, workdir, broker_port, conninfo, overrides=None):
        binary = os.environ.get("CORDON_WEB")
        assert binary and os.access(binary, os.X_OK), \
            "set CORDON_WEB to the cordon-web binary (meson does)"
        overrides = {s: dict(kv) for s, kv in (overrides or {}).items()}
        web = overrides.setdefault("web", {})
        self.port = free_port()
        web.setdefault("listen", "127.0.0.1:%d" % self.port)
        web.setdefault("client_id", "cordon-web-test-%d" % (Cordond._seq + 1))
        if "assets_dir" not in web:
            assets = os.environ.get("CORDON_WEB_ASSETS")
            if not assets or not os.path.isdir(assets):
                assets = os.path.join(workdir, "web-assets")
                os.makedirs(assets, exist_ok=True)
                with open(os.path.join(assets, "index.html"), "w") as f:
                    f.write("<!doctype html><title>cordon</title><script src=app.js></script>\n")
                with open(os.path.join(assets, "app.js"), "w") as f:
                    f.write("// the console\n")
            web["assets_dir"] = assets
        os.environ.setdefault("CORDOND", binary)  # Cordond checks it; the binary is ours
        super().__init__(workdir, broker_port, conninfo, overrides)
        self.binary = binary
        self.client_id = web["client_id"]
        self.inbound_id = self.client_id   # its one client subscribes
        base = os.path.join(workdir, "cordon-web-%d" % Cordond._seq)
        os.replace(self.conffile, base + ".conf")
        self.conffile, self.logfile = base + ".conf", base + ".log"

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait_ready(self, broker=None, since=0):
        """Wait until /healthz answers (any status) and, with broker, until
        the broker has seen this client subscribe."""
        def up():
            assert self.alive(), "cordon-web exited with %r:\n%s" % (self.returncode(),
                                                                    tail(self.logfile))
            return port_open(self.port)
        wait_until(up, what="cordon-web listening on %d" % self.port)
        if broker is not None:
            wait_until(lambda: broker.subscribed(self.client_id, since),
                       what="%s subscribed at the broker" % self.client_id)
        return self


# ---------------------------------------------------------------- MQTT clients

_cid = 0


def _client(port, prefix):
    """A connected paho client (MQTT 3.1.1, clean session) with its loop thread running."""
    global _cid
    _cid += 1
    connected = threading.Event()
    c = mqtt.Client(client_id="%s-%d-%d" % (prefix, os.getpid(), _cid), clean_session=True)
    if port in MQTT_AUTH:
        c.username_pw_set(*MQTT_AUTH[port])
    c.on_connect = lambda cl, ud, flags, rc: rc == 0 and connected.set()
    c.connect("127.0.0.1", port, keepalive=60)
    c.loop_start()
    if not connected.wait(TIMEOUT):
        c.loop_stop()
        raise AssertionError("MQTT client could not connect to port %d" % port)
    return c


def publish_many(port, messages, qos=1, timeout=TIMEOUT * 2, retain=False):
    """Publish [(topic, payload_bytes), ...] in order and return once the broker
    acknowledged every one (a PUBACK for each at QoS 1); with retain, each as
    the topic's retained message."""
    messages = list(messages)
    done = threading.Semaphore(0)
    c = _client(port, "pub")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.on_publish = lambda cl, ud, mid: done.release()
    try:
        for topic, payload in messages:
            info = c.publish(topic, payload, qos=qos, retain=retain)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS, "publish failed: %s" % mqtt.error_string(info.rc)
        deadline = time.monotonic() + timeout
        for i in range(len(messages)):
            if not done.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise AssertionError("only %d of %d publishes acknowledged within %.0f s"
                                     % (i, len(messages), timeout))
    finally:
        c.disconnect()
        c.loop_stop()


class Collector:
    """Subscribes to topic_filter at QoS 1 in the background and records
    (topic, payload_bytes) in self.messages. Use as a context manager or close()."""

    def __init__(self, port, topic_filter):
        self.messages = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = _client(port, "collect")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda cl, ud, mid, granted: subscribed.set()
        self.client.subscribe(topic_filter, qos=1)
        if not subscribed.wait(TIMEOUT):
            self.close()
            raise AssertionError("no SUBACK for %s" % topic_filter)

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def snapshot(self):
        with self._lock:
            return list(self.messages)

    def wait_for(self, pred, timeout=TIMEOUT):
        """Wait for a message with pred(topic, payload) true; return the first such (topic, payload)."""
        def found():
            return next(((t, p) for t, p in self.snapshot() if pred(t, p)), None)
        return wait_until(found, timeout, what=lambda: "a matching MQTT message (%d others received)"
                          % len(self.snapshot()))

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- payloads

def gate_event(site, gate, id, card="C-0412", person="P-10233", direction="in",
               temp_c=36.6, ts="2020-02-16T18:32:00.123+08:00", mask=True, **extra):
    """Return (topic, payload_bytes) of a canonical gate event. Extra keyword
    arguments add or replace keys; drop=("ts", ...) omits keys."""
    drop = extra.pop("drop", ())
    body = {"id": id, "ts": ts, "card": card, "person": person, "direction": direction,
            "temp_c": temp_c, "mask": mask, **extra}
    for k in drop:
        body.pop(k, None)
    return "cordon/%s/gate/%s/event" % (site, gate), json.dumps(body).encode()


def event_key(site, gate, id):
    return "%s/%s/%s" % (site, gate, id)


# ---------------------------------------------------------------- long streams

def sequence_events(site, n, start=0, gates=4, prefix="S"):
    """Yield (topic, payload) of n canonical gate events of site with ids
    "S-0000000".."S-%07d" (sequence numbers start..start+n-1) spread over
    gates G01..G<gates>; the event key is site/gate/id, unique per number."""
    for i in range(start, start + n):
        yield gate_event(site, "G%02d" % (i % gates + 1), "%s-%07d" % (prefix, i),
                         card="C-%04d" % (i % 700), person="P-%05d" % (i % 900),
                         direction=("in", "out")[i % 2], temp_c=round(36.0 + (i % 10) / 10, 1))


class Stream(threading.Thread):
    """Publishes messages at QoS 1 from a background thread and counts PUBACKs.

    The client has a persistent session (clean_session=False, fixed client id)
    and reconnects by itself (paho's loop thread, 1-2 s delay); on reconnect
    paho re-sends every QoS 1 message it has not seen a PUBACK for, so the
    stream survives a broker restart without anything re-sent by hand
    (a message the broker had stored but not yet acknowledged arrives twice:
    the consumer dedupes). At most `window` messages are unacknowledged at a
    time (paho's message ids are 16 bits). `rate` (messages/s) paces the
    stream; None publishes as fast as the broker acknowledges.

    `more_ports`: the other nodes of a clustered broker: after a lost
    connection or a failed connect the client goes on to the next port of
    [port] + more_ports, round and round (as a gate listing every node).

    start(); then .sent (handed to paho), .acked (PUBACKs), .connects,
    .done (Event: every message acknowledged), .error; wait(timeout) joins,
    raises on a publisher error or if not everything was acknowledged in
    time, and disconnects. close() always disconnects."""

    def __init__(self, port, messages, client_id, rate=None, window=2000, inflight=1000,
                 more_ports=()):
        super().__init__(daemon=True, name="stream-" + client_id)
        self.messages = messages if isinstance(messages, list) else list(messages)
        self.total = len(self.messages)
        self.port = port
        self.ports = [port] + list(more_ports)
        self.client_id = client_id
        self.rate = rate
        self.sent = 0
        self.acked = 0
        self.connects = 0
        self.error = None
        self.t_start = self.t_sent = self.t_acked = None
        self.done = threading.Event()
        self._window = threading.Semaphore(window)
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._halt = False
        c = mqtt.Client(client_id=client_id, clean_session=False)
        if port in MQTT_AUTH:
            c.username_pw_set(*MQTT_AUTH[port])
        c.max_inflight_messages_set(inflight)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, 2)
        c.on_connect = self._on_connect
        c.on_publish = self._on_publish
        if more_ports:
            c.on_disconnect = self._next_port
            c.on_connect_fail = self._next_port
        self.client = c
        if self.total == 0:
            self.done.set()

    def _on_connect(self, client, userdata, flags, rc):
        if rc == 0:
            self.connects += 1
            self._connected.set()

    def _next_port(self, client, userdata, rc=None):
        if self._halt:
            return
        self.port = self.ports[(self.ports.index(self.port) + 1) % len(self.ports)]
        client.connect_async("127.0.0.1", self.port, keepalive=30)

    def _on_publish(self, client, userdata, mid):
        with self._lock:
            self.acked += 1
            acked = self.acked
        self._window.release()
        if acked >= self.total:
            self.t_acked = time.monotonic()
            self.done.set()

    def start(self):
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(TIMEOUT):
            self.close()
            raise AssertionError("stream %s could not connect to port %d" % (self.client_id, self.port))
        super().start()
        return self

    def run(self):
        try:
            self.t_start = t0 = time.monotonic()
            for i, (topic, payload) in enumerate(self.messages):
                if self.rate and i % 50 == 0:
                    ahead = t0 + i / self.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                while not self._window.acquire(timeout=0.5):
                    if self._halt:
                        return
                info = self.client.publish(topic, payload, qos=1)
                # NO_CONN: the broker is away; paho keeps the message and sends it on reconnect
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    raise RuntimeError("publish %d failed: %s" % (i, mqtt.error_string(info.rc)))
                self.sent += 1
            self.t_sent = time.monotonic()
        except Exception as e:   # reported by wait()
            self.error = e

    def progress(self):
        return "%d of %d sent, %d acknowledged, %d connects" % (self.sent, self.total, self.acked, self.connects)

    def wait(self, timeout=300):
        """Wait until every message is acknowledged; disconnect; return self."""
        try:
            wait_until(lambda: self.done.is_set() or self.error, timeout, interval=0.2,
                       what=lambda: "stream %s acknowledged (%s)" % (self.client_id, self.progress()))
            if self.error:
                raise AssertionError("stream %s failed: %r (%s)" % (self.client_id, self.error, self.progress()))
            self.join(TIMEOUT)
        finally:
            self.close()
        return self

    def close(self):
        self._halt = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


# ---------------------------------------------------------------- cordonctl

def http_get(url):
    """(status, body text) of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port):
    """cordond's /metrics text on `port`, or "" when it does not answer 200."""
    try:
        code, text = http_get("http://127.0.0.1:%d/metrics" % port)
    except OSError:
        return ""
    return text if code == 200 else ""


def metric(text, name):
    """The value of the sample `name` (with its labels, e.g.
    'cordon_x_total{why="a"}') in a /metrics text, or None."""
    for line in (text or "").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def cordonctl_config(workdir, conninfo, name="cordonctl.conf"):
    """Write a config file with only [postgres] conninfo (all cordonctl
    needs; a cordond's config file works as well) and return its path."""
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write("[postgres]\nconninfo = %s\n" % conninfo)
    return path


def cordonctl(conffile, *args, expect=None, timeout=TIMEOUT):
    """Run $CORDONCTL -c conffile args... and return the CompletedProcess
    (text stdout/stderr). With expect=N, assert the exit code is N."""
    binary = os.environ.get("CORDONCTL")
    assert binary and os.access(binary, os.X_OK), \
        "set CORDONCTL to the cordonctl binary (meson does: meson test --suite integration)"
    p = subprocess.run([binary, "-c", conffile] + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if expect is not None:
        assert p.returncode == expect, "cordonctl %s: exit %d, expected %d\nstdout:\n%s\nstderr:\n%s" \
            % (" ".join(map(str, args)), p.returncode, expect, p.stdout, p.stderr)
    return p


def sim_binary():
    """The cordon-sim binary ($CORDON_SIM, as meson sets it)."""
    binary = os.environ.get("CORDON_SIM")
    assert binary and os.access(binary, os.X_OK), \
        "set CORDON_SIM to the cordon-sim binary (meson does: meson test --suite integration)"
    return binary


# ---- shared by the tests of the register, alerts and field cases

FIELD_CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                           "field-cases")
# The header of a households CSV for `cordonctl import households`.
HOUSEHOLDS_HEADER = "household,building,unit,room,size,phone,cards\n"


def field(name):
    """The bytes of tests/fixtures/field-cases/<name>."""
    with open(os.path.join(FIELD_CASES, name), "rb") as f:
        return f.read()


def now_ts(offset_s=0.0):
    """The current time (UTC) as ISO 8601 with milliseconds, offset_s from now."""
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)
    return t.isoformat(timespec="milliseconds")


def register_loads(d):
    """How many times cordond d has loaded the register (its log says so)."""
    return d.log().count("register loaded")


def wait_register_holds_gates(d, pg):
    """Wait until cordond d's latest register load holds as many gates as the
    database does. Counting loads is not enough after several changes: the
    changes' NOTIFYs may come as one reload or several, and a count reached
    by an earlier change's reload says nothing of a later one."""
    gates = pg.count("gates")

    def current():
        loads = re.findall(r"register loaded: \d+ sites, (\d+) gates", d.log())
        return loads and int(loads[-1]) == gates
    wait_until(current, what="cordond's register holding all %d gates" % gates)


def wait_register_loaded(d, at_least=1):
    wait_until(lambda: register_loads(d) >= at_least,
               what="cordond loading the register (%d times)" % at_least)


def import_households(env, ctl, site, rows, phone="18012341999"):
    """Import rows [(household, [cards])] into `site` with cordonctl; every
    household gets `phone` (which must never leave the database)."""
    path = os.path.join(env.dir, "%s.csv" % site)
    with open(path, "w", encoding="utf-8") as f:
        f.write(HOUSEHOLDS_HEADER)
        for i, (hh, cards) in enumerate(rows):
            f.write("%s,%d,1,%d,2,%s,%s\n" % (hh, i + 1, 101 + i, phone, ";".join(cards)))
    ctl("import", "households", path, "--site", site)
