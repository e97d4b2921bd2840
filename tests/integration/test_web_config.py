"""cordon-web's configuration (issue 18): the [web] section of the one file
every daemon reads. --check-config prints the effective [web]; errors name
FILE:LINE; every key of src/web_config.c's table is documented in
docs/web.md ("Configuration") and config/cordond.conf; cordond and
cordon-notify accept [web], cordon-web accepts their sections. No server is
needed: everything here is --check-config."""

import os
import re
import subprocess

import pytest

from harness import make_tmpdir

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def run(binary_env, path):
    return subprocess.run([os.environ[binary_env], "--check-config", "-c", path],
                          capture_output=True, text=True, timeout=30)


def keys_in_code():
    with open(os.path.join(ROOT, "src", "web_config.c")) as f:
        text = f.read()
    table = text[text.index("web_config_keys[] = {"):]
    table = table[:table.index("};")]
    return re.findall(r'"([a-z_]+)"', table)


@pytest.fixture
def tmp():
    return make_tmpdir("web-config")


def write(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


FULL = """\
[mqtt]
uri = tcp://127.0.0.1:1883

[postgres]
conninfo = host=/nonexistent dbname=cordon

[notify]
client_id = cordon-notify

[receiver.hook]
type = webhook
url_file = {hook}

[route.all]
receivers = hook

[web]
listen = 0.0.0.0:8443
assets_dir = /srv/cordon-web
client_id = cordon-web-1
session_ttl = 8h
idle_timeout = 30m
lockout_after = 7
lockout_time = 5m
secure_cookies = true
max_connections = 100
db_pool = 6
request_timeout = 20s
"""


def test_check_config_prints_the_effective_web(tmp):
    hook = write(tmp, "hook.url", "http://127.0.0.1:9/x\n")
    path = write(tmp, "all.conf", FULL.format(hook=hook))
    w = run("CORDON_WEB", path)
    assert w.returncode == 0, w.stderr
    assert w.stdout.splitlines() == [
        "[web]", "listen = 0.0.0.0:8443", "assets_dir = /srv/cordon-web",
        "client_id = cordon-web-1", "username = ", "password_file = ", "session_ttl = 28800s", "idle_timeout = 1800s",
        "lockout_after = 7", "lockout_time = 300s", "secure_cookies = true",
        "max_connections = 100", "db_pool = 6", "request_timeout = 20s"]
    # Every key of the table is printed.
    assert [l.split(" = ")[0] for l in w.stdout.splitlines()[1:]] == keys_in_code()
    assert run("CORDOND", path).returncode == 0
    assert run("CORDON_NOTIFY", path).returncode == 0


def test_broker_user_own_or_mqtts(tmp):
    """[notify] and [web] username/password_file: empty, the [mqtt] pair;
    set, their own (never [mqtt]'s password with another user); a
    password_file without a username is an error. cordond accepts them."""
    hook = write(tmp, "hook.url", "http://127.0.0.1:9/x\n")
    head = ("[mqtt]\nusername = cordond\npassword_file = /etc/cordon/mqtt.password\n\n"
            "[receiver.hook]\ntype = webhook\nurl_file = %s\n\n[route.all]\nreceivers = hook\n\n"
            % hook)

    def printed(binary, section, text):
        p = run(binary, write(tmp, "u.conf", head + text))
        assert p.returncode == 0, p.stderr
        block = p.stdout.split("[%s]\n" % section, 1)[1].split("\n\n", 1)[0]
        out = dict(l.split(" = ", 1) for l in block.splitlines())
        return out["username"], out["password_file"]

    for binary, section, user in (("CORDON_NOTIFY", "notify", "cordon-notify"),
                                  ("CORDON_WEB", "web", "cordon-web")):
        assert printed(binary, section, "") == ("cordond", "/etc/cordon/mqtt.password")
        assert printed(binary, section, "[%s]\nusername = %s\n" % (section, user)) == (user, "")
        assert printed(binary, section, "[%s]\nusername = %s\npassword_file = /p/%s\n"
                       % (section, user, user)) == (user, "/p/" + user)
        path = write(tmp, "bad.conf", head + "[%s]\npassword_file = /p/x\n" % section)
        p = run(binary, path)
        assert p.returncode == 1
        assert "[%s] password_file needs [%s] username" % (section, section) in p.stderr, p.stderr
        both = write(tmp, "both.conf", head + "[%s]\nusername = %s\npassword_file = /p/x\n"
                     % (section, user))
        assert run("CORDOND", both).returncode == 0


def test_defaults(tmp):
    path = write(tmp, "min.conf", "[mqtt]\nuri = tcp://127.0.0.1:1883\n")
    w = run("CORDON_WEB", path)
    assert w.returncode == 0, w.stderr
    out = dict(l.split(" = ", 1) for l in w.stdout.splitlines()[1:])
    assert out["listen"] == "127.0.0.1:8478"
    assert out["assets_dir"].endswith("/share/cordon/web")
    assert re.fullmatch(r"cordon-web-.+-\d+", out["client_id"])
    assert (out["session_ttl"], out["idle_timeout"], out["lockout_after"],
            out["lockout_time"], out["secure_cookies"], out["max_connections"],
            out["db_pool"]) == ("43200s", "3600s", "5", "900s", "false", "64", "4")


@pytest.mark.parametrize("bad, why", [
    ("listen = 8478", "must be HOST:PORT"),
    ("listen = 127.0.0.1:99999", "must be HOST:PORT"),
    # a host that is no address: refused by --check-config, not at the bind
    ("listen = gate-pc:8478", "must be HOST:PORT"),
    ("listen = [::1:8478", "must be HOST:PORT"),
    ("assets_dir = web", "must be an absolute path"),
    ("session_ttl = forever", "not a duration"),
    ("idle_timeout = 1s", "out of range"),
    ("lockout_after = 0", "not a whole number in range"),
    ("secure_cookies = yes", "must be true or false"),
    ("db_pool = 1000", "not a whole number in range"),
    ("colour = red", "unknown key 'colour' in section [web]"),
])
def test_errors_name_file_and_line(tmp, bad, why):
    path = write(tmp, "bad.conf", "[mqtt]\nuri = tcp://127.0.0.1:1883\n\n[web]\n%s\n" % bad)
    w = run("CORDON_WEB", path)
    assert w.returncode == 1
    assert "%s:5:" % path in w.stderr and why in w.stderr, w.stderr
    # cordond does not read [web]: the same file is fine for it.
    assert run("CORDOND", path).returncode == 0


def test_twice_and_idle_over_ttl(tmp):
    path = write(tmp, "twice.conf", "[web]\ndb_pool = 2\ndb_pool = 3\n")
    w = run("CORDON_WEB", path)
    assert w.returncode == 1 and "db_pool is set twice" in w.stderr
    path = write(tmp, "idle.conf", "[web]\nsession_ttl = 1h\nidle_timeout = 2h\n")
    w = run("CORDON_WEB", path)
    assert w.returncode == 1 and "idle_timeout is longer than session_ttl" in w.stderr


def test_every_key_is_documented():
    keys = keys_in_code()
    assert len(keys) >= 10
    with open(os.path.join(ROOT, "docs", "web.md"), encoding="utf-8") as f:
        doc = f.read()
    section = doc[doc.index("### `[web]`"):]
    with open(os.path.join(ROOT, "config", "cordond.conf"), encoding="utf-8") as f:
        conf = f.read()
    web = conf[conf.index("[web]"):]
    for k in keys:
        assert re.search(r"^\| `%s` \|" % k, section, re.M), "docs/web.md: [web] %s" % k
        assert re.search(r"^;%s = " % k, web, re.M), "config/cordond.conf: [web] %s" % k


def test_the_example_file_is_valid():
    path = os.path.join(ROOT, "config", "cordond.conf")
    w = run("CORDON_WEB", path)
    assert w.returncode == 0, w.stderr
