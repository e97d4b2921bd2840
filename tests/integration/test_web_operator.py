"""cordonctl operator add|list|remove|unlock (issue 18, docs/web.md): who
may log in to the console, against a real PostgreSQL (cordonctl applies the
migrations, sql/0011). The password is stored as libsodium's Argon2id
string, never as given."""

import json
import os

import pytest

PASSWORD = "s3cret-enough"


@pytest.fixture(scope="module")
def pwfile(env):
    path = os.path.join(env.dir, "operator-pw")
    with open(path, "w") as f:
        f.write(PASSWORD + "\n")
    return path


def listed(ctl):
    return {o["name"]: o for o in json.loads(ctl("operator", "list", "--json").stdout)}


def test_add_list_remove(env, ctl, pwfile):
    ctl("site", "add", "oa")
    ctl("site", "add", "ob")
    out = ctl("operator", "add", "li.ming@x", "--site", "oa", "--site=ob", "--role", "viewer",
              "--password-file", pwfile).stdout
    assert "operator li.ming@x added: viewer" in out, out
    ctl("operator", "add", "chief", "--role", "admin", "--password-file", pwfile)
    ctl("operator", "add", "duty", "--password-file", pwfile)
    ops = listed(ctl)
    assert ops["li.ming@x"]["role"] == "viewer" and ops["li.ming@x"]["sites"] == ["oa", "ob"]
    assert ops["chief"]["role"] == "admin" and ops["chief"]["sites"] == []
    assert ops["duty"]["role"] == "operator"  # the default role
    assert not ops["duty"]["locked"] and ops["duty"]["sessions"] == 0
    h = env.pg.scalar("SELECT pwhash FROM operators WHERE name = 'duty'")
    assert h.startswith("$argon2id$") and PASSWORD not in h
    # The text listing.
    text = ctl("operator", "list").stdout
    assert text.splitlines()[0].split() == ["name", "role", "sites", "sessions", "locked"], text
    assert any(l.split()[:3] == ["chief", "admin", "*"] for l in text.splitlines()), text
    # add on an existing name replaces role, sites and password.
    other = os.path.join(env.dir, "operator-pw2")
    with open(other, "w") as f:
        f.write("another password\n")
    out = ctl("operator", "add", "duty", "--role", "viewer", "--site", "oa",
              "--password-file", other).stdout
    assert "replaced" in out
    assert listed(ctl)["duty"]["role"] == "viewer" and listed(ctl)["duty"]["sites"] == ["oa"]
    assert env.pg.scalar("SELECT pwhash FROM operators WHERE name = 'duty'") != h
    ctl("operator", "remove", "duty")
    assert "duty" not in listed(ctl)
    assert ctl("operator", "remove", "duty", expect=1).returncode == 1


def test_bad_input_refused(env, ctl, pwfile, tmp_path):
    n = env.pg.count("operators")
    ctl("operator", "add", "x1", "--role", "root", "--password-file", pwfile, expect=2)
    ctl("operator", "add", "x1", "--site", "bad site", "--password-file", pwfile, expect=2)
    ctl("operator", "add", "x1", "--site", "s'1", "--password-file", pwfile, expect=2)
    ctl("operator", "add", "x1", "--site", "nosuchsite", "--password-file", pwfile, expect=1)
    ctl("operator", "add", "bad name", "--password-file", pwfile, expect=2)
    ctl("operator", "add", "a" * 65, "--password-file", pwfile, expect=2)
    short = tmp_path / "short"
    short.write_text("1234567\n")
    p = ctl("operator", "add", "x1", "--password-file", str(short), expect=1)
    assert "at least 8" in p.stderr
    empty = tmp_path / "empty"
    empty.write_text("")
    ctl("operator", "add", "x1", "--password-file", str(empty), expect=1)
    ctl("operator", "add", "x1", "--password-file", str(tmp_path / "missing"), expect=1)
    # No terminal and no file: refused, not hung.
    p = ctl("operator", "add", "x1", expect=2)
    assert "--password-file" in p.stderr
    ctl("operator", "frobnicate", expect=2)
    assert env.pg.count("operators") == n


def test_unlock(env, ctl, pwfile):
    ctl("operator", "add", "lk", "--password-file", pwfile)
    env.pg.query("INSERT INTO web_lockouts (name, failures, locked_until)"
                 " VALUES ('lk', 0, now() + interval '10 minutes') RETURNING 1")
    assert listed(ctl)["lk"]["locked"]
    assert "unlocked" in ctl("operator", "unlock", "lk").stdout
    assert not listed(ctl)["lk"]["locked"]
    assert "was not locked" in ctl("operator", "unlock", "lk").stdout
