"""cordon-notify's configuration (issue 17): one file for every daemon.

cordond and cordon-notify read the same file: each checks its own sections
and the shared ones, and accepts the others'. Errors name FILE:LINE. The
complete example of docs/notify.md is checked by both. No server is needed:
everything here is --check-config.
"""

import os
import re
import subprocess

import pytest

from harness import make_tmpdir

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "..", "docs", "notify.md")


def run(binary_env, path):
    return subprocess.run([os.environ[binary_env], "--check-config", "-c", path],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def tmp():
    d = make_tmpdir("notify-config")
    yield d


def write(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def secrets(d):
    """The secret files a config names: {name: path}."""
    out = {}
    for name, value in {
        "wecom": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0000-secret-key",
        "dingtalk": "https://oapi.dingtalk.com/robot/send?access_token=secret-token",
        "ding_secret": "SECsecretsecret",
        "mail": "smtp://127.0.0.1:25",
        "hook": "http://127.0.0.1:9/hook",
        "sms": "http://127.0.0.1:9/sms?key=secret",
    }.items():
        out[name] = write(d, name + ".url", value + "\n")
    return out


def good_config(d):
    s = secrets(d)
    return f"""\
[mqtt]
uri = tcp://127.0.0.1:1883

[postgres]
conninfo = dbname=cordon

[rules]
fever_c = 37.3

[notify]
client_id = cordon-notify-1
fail_after = 2m

[receiver.workers]
type = wecom
url_file = {s['wecom']}

[receiver.office]
type = dingtalk
url_file = {s['dingtalk']}
secret_file = {s['ding_secret']}
language = en
format = text

[receiver.mail]
type = smtp
url_file = {s['mail']}
from = cordon@example.org
to = duty@example.org, head@example.org

[receiver.hook]
type = webhook
url_file = {s['hook']}

[receiver.phone]
type = sms
url_file = {s['sms']}
to = 13800000000
body_template = {{"to":"{{to}}","text":"{{text}}"}}

[route.default]
receivers = hook

[route.fever]
kinds = fever
severities = warning, critical
sites = s1 s2
receivers = workers, mail
group_wait = 1m
remind_every = 0
escalate_after = 30m
escalate_to = office phone

[web]
listen = 127.0.0.1:8478
"""


def test_both_daemons_accept_one_file(tmp):
    path = write(tmp, "all.conf", good_config(tmp))
    d = run("CORDOND", path)
    assert d.returncode == 0, d.stderr
    n = run("CORDON_NOTIFY", path)
    assert n.returncode == 0, n.stderr
    out = n.stdout
    # The effective configuration: every receiver and route, defaults filled,
    # "default" last, and no secret (the files' names only).
    for name in ("workers", "office", "mail", "hook", "phone"):
        assert "[receiver.%s]" % name in out
    assert out.index("[route.fever]") < out.index("[route.default]")
    assert "rate_limit = 20" in out.split("[receiver.workers]")[1].split("[")[0]
    assert "rate_limit = 0" in out.split("[receiver.hook]")[1].split("[")[0]
    assert "escalate_to = office phone" in out
    assert "remind_every = 0ms" in out.split("[route.fever]")[1]  # "0": off
    assert "secret-key" not in out and "secret-token" not in out and "SECsecret" not in out
    assert "secret" not in d.stdout  # cordond prints none of ours
    # The duty phone is masked like every phone number cordon shows.
    assert "13800000000" not in out
    assert "to = 138****0000" in out.split("[receiver.phone]")[1]


@pytest.mark.parametrize("section, bad, why", [
    ("[receiver.workers]", "type = wechat", "must be wecom, dingtalk, webhook, smtp or sms"),
    ("[receiver.workers]", "url_file = /nonexistent/url", "cannot read the file"),
    ("[receiver.workers]", "language = fr", "must be zh-CN or en"),
    ("[receiver.workers]", "rate_limit = many", "messages per minute"),
    ("[receiver.workers]", "colour = red", "unknown key 'colour'"),
    ("[route.fever]", "kinds = fevr", "unknown alert kind"),
    ("[route.fever]", "severities = urgent", "must list info, warning or critical"),
    ("[route.fever]", "group_wait = soon", "not a duration"),
    ("[notify]", "fail_after = 0s", "out of range"),
])
def test_errors_name_file_and_line(tmp, section, bad, why):
    text = good_config(tmp)
    lines = text.splitlines()
    at = lines.index(section) + 1
    lines.insert(at, bad)
    path = write(tmp, "bad.conf", "\n".join(lines) + "\n")
    n = run("CORDON_NOTIFY", path)
    assert n.returncode == 1
    assert "%s:%d:" % (path, at + 1) in n.stderr, n.stderr
    assert why in n.stderr, n.stderr
    # cordond does not read cordon-notify's sections: still fine for it.
    assert run("CORDOND", path).returncode == 0


def test_whole_file_checks(tmp):
    s = secrets(tmp)
    base = "[postgres]\nconninfo = dbname=x\n\n"
    cases = [
        ("[route.r]\nreceivers = nobody\n", "names 'nobody', which has no [receiver.nobody]"),
        ("[receiver.a]\ntype = wecom\nurl_file = %s\n[route.r]\nreceivers = a\n"
         "escalate_to = a\n" % s["wecom"], "escalate_to needs escalate_after"),
        ("[receiver.a]\ntype = smtp\nurl_file = %s\nto = x@example.org\n[route.r]\n"
         "receivers = a\n" % s["mail"], "[receiver.a] needs from"),
        ("[receiver.a]\ntype = wecom\nurl_file = %s\nsecret_file = %s\n[route.r]\n"
         "receivers = a\n" % (s["wecom"], s["ding_secret"]), "secret_file is for type dingtalk"),
        ("[receiver.a]\ntype = wecom\nurl_file = %s\n" % s["wecom"], "no [route.NAME] section"),
        ("[receiver.a b]\ntype = wecom\n", "must be 1 to 64 letters"),
        ("[recever.a]\ntype = wecom\n", "unknown key 'type' in section [recever.a]"),
        ("[receiver.a]\ntype = wecom\nurl_file = %s\n[route.r]\nreceivers = a\n"
         % write(tmp, "empty.url", "\n"), "the file is empty"),
    ]
    for text, why in cases:
        path = write(tmp, "case.conf", base + text)
        n = run("CORDON_NOTIFY", path)
        assert n.returncode == 1, text
        assert why in n.stderr, (text, n.stderr)
    # A misspelt section is an error for cordond too: it is no one's.
    path = write(tmp, "typo.conf", base + "[recever.a]\ntype = wecom\n")
    assert run("CORDOND", path).returncode == 1


def test_the_documented_example_is_valid(tmp):
    """docs/notify.md's complete example for a compound, with its secret
    files made, passes both daemons' checks."""
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    m = re.search(r"<!-- example-config -->\n```ini\n(.*?)```", doc, re.S)
    assert m, "docs/notify.md has no example config block"
    text = m.group(1)
    for path in sorted(set(re.findall(r"^(?:url_file|secret_file) = (\S+)$", text, re.M))):
        local = os.path.join(tmp, os.path.basename(path))
        write(tmp, os.path.basename(path), "https://example.invalid/x?key=k\n")
        text = text.replace(path, local)
    path = write(tmp, "example.conf", text)
    n = run("CORDON_NOTIFY", path)
    assert n.returncode == 0, n.stderr
    assert run("CORDOND", path).returncode == 0
