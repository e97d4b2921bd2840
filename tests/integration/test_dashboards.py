"""The Grafana dashboard (contrib/grafana/cordon.json) and the Prometheus
alerting rules (contrib/prometheus/cordon.rules.yml) against what runs
(docs/operations.md, "Dashboards and alerting rules"):

- the dashboard is JSON made for import: its two data source inputs, every
  panel on one of them, panel ids unique, no two panels on the same cells;
- every metric name in a PromQL expression of the dashboard or the rules is
  in the /metrics of a real cordond (clustered, after a fever and a reject)
  or cordon-notify (after a delivery), and every PromQL expression of the
  dashboard parses (promtool, on a rules file made of them);
- every PostgreSQL panel's SQL runs on the migrated schema as a role that may
  only read alerts, rejects and needs, and gives the columns its panel
  shows; fevers per hour counts the fever published;
- `promtool check rules`, `promtool test rules` (cordon.rules.test.yml:
  rules firing when they should, and not before) and `promtool check config`
  on the example prometheus.yml pass; every rule has `for`, a severity, a
  summary and a description, and docs/operations.md names it.

Metric names come from a small tokenizer (metric_names()): strings, label
matchers, ranges and label lists (by, without, on, ignoring, group_left,
group_right) are taken out first; then an identifier followed by "(" is a
function or an aggregation, and PromQL's keywords are not names. `up` is
written by Prometheus, not by a target.
"""

import json
import os
import re
import shutil
import subprocess

import psycopg2
import pytest
import yaml

import harness
from harness import Notifier, free_port, gate_event, now_ts, publish_many, scrape, wait_until
from notify_servers import Webhook

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DASHBOARD = os.path.join(ROOT, "contrib", "grafana", "cordon.json")
PROMETHEUS = os.path.join(ROOT, "contrib", "prometheus")
RULES = os.path.join(PROMETHEUS, "cordon.rules.yml")
RULES_TEST = os.path.join(PROMETHEUS, "cordon.rules.test.yml")
EXAMPLE_CONFIG = os.path.join(PROMETHEUS, "prometheus.yml")
OPERATIONS = os.path.join(ROOT, "docs", "operations.md")

SITE = "dash1"
INPUTS = {"${DS_PROMETHEUS}": "prometheus", "${DS_POSTGRES}": "postgres"}
# The tables the PostgreSQL panels read: a role with SELECT on them is
# enough (docs/operations.md says so).
READ_TABLES = ("alerts", "rejects", "needs")

# What each PostgreSQL panel's query returns (a panel added needs a line).
SQL_COLUMNS = {
    "Fever alerts raised per hour": ["time", "fever alerts"],
    "Sites with the most fever alerts": ["site", "fevers", "critical", "max_temp_c"],
    "Alerts open by kind": ["kind", "open", "acked", "subjects"],
    "Rejects per hour by reason": ["time", "metric", "value"],
    "Needs open by category": ["category", "open", "assigned", "overdue"],
}

# Grafana's variables in PromQL, as the parse check writes them: the
# dashboard's own (template variables) and Grafana's.
PROMQL_VARIABLES = {"instance": ".*", "notify_instance": ".*", "__rate_interval": "5m"}

PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                   "group_right", "bool", "offset", "inf", "nan"}
# Series Prometheus writes for every scrape target itself.
SYNTHETIC = {"up"}


def promtool():
    path = shutil.which("promtool")
    assert path, "promtool not found: apt-get install prometheus (scripts/lib/deps.sh)"
    return path


def run_promtool(*args, cwd=None):
    p = subprocess.run([promtool()] + list(args), capture_output=True, text=True, cwd=cwd,
                       timeout=60)
    assert p.returncode == 0, "promtool %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                               p.stdout, p.stderr)
    return p.stdout


# ---------------------------------------------------------------- reading the files

def load_dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def load_rules():
    with open(RULES, encoding="utf-8") as f:
        return [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]


def all_panels(dash):
    """Every panel, those inside collapsed rows too."""
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def prometheus_exprs(dash):
    """[(where, PromQL with Grafana's variables)] of the dashboard's panels."""
    return [("panel %r %s" % (p["title"], t["refId"]), t["expr"])
            for p in all_panels(dash) for t in p.get("targets", []) if "expr" in t]


def variable_metrics(dash):
    """[(where, metric)] of the template variables' label_values(metric, label)."""
    out = []
    for v in dash["templating"]["list"]:
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{[^}]*\})?\s*,"
                         r"\s*\w+\s*\)", q)
        assert m, "variable %s: a query of another shape: %r" % (v["name"], q)
        out.append(("variable " + v["name"], m.group(1)))
    return out


def sql_targets(dash):
    """[(panel, target)] of the PostgreSQL panels."""
    return [(p, t) for p in all_panels(dash) for t in p.get("targets", []) if "rawSql" in t]


def metric_names(expr):
    """The metric names a PromQL expression reads (see the module's comment)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)
    names = set()
    for m in re.finditer(r"[0-9][0-9A-Za-z_.]*|[A-Za-z_:][A-Za-z0-9_:]*", s):
        tok = m.group(0)
        if tok[0].isdigit() or tok.lower() in PROMQL_KEYWORDS:
            continue   # a number, a duration, a keyword
        if s[m.end():].lstrip().startswith("("):
            continue   # a function or an aggregation
        names.add(tok)
    return names


def exported_names(text):
    """Sample names and declared (# TYPE) names of a /metrics text."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def grafana_sql(raw):
    """A panel's SQL with the Grafana macros it uses written out as Grafana
    does, over the last day."""
    def group(m):
        n, unit = int(m.group(2)), m.group(3)
        secs = n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        return 'floor(extract(epoch from %s)/%d)*%d AS "time"' % (m.group(1), secs, secs)
    s = re.sub(r"\$__timeGroupAlias\(\s*(\w+)\s*,\s*'(\d+)([smhd])'\s*\)", group, raw)
    s = re.sub(r"\$__timeFilter\(\s*(\w+)\s*\)",
               r"\1 BETWEEN now() - interval '1 day' AND now()", s)
    assert "$" not in s, "a Grafana macro or variable this test does not write out: %s" % s
    return s


# ---------------------------------------------------------------- the stack

@pytest.fixture(scope="module")
def scrapes(env, ctl):
    """A clustered cordond and a cordon-notify with a webhook receiver, after
    a fever, a reject and an open need: {"cordond": text, "cordon-notify":
    text} of their /metrics."""
    ctl("gate", "add", SITE, "G01")
    hook = Webhook().start()
    try:
        port, nport = free_port(), free_port()
        d = env.cordond({"cluster": {"shards": "4"},
                         "metrics": {"listen": "127.0.0.1:%d" % port}})
        url_file = os.path.join(env.dir, "hook.url")
        with open(url_file, "w") as f:
            f.write(hook.url("/alerts") + "\n")
        n = Notifier(env.dir, env.broker.port, env.pg.conninfo, {
            "notify": {"client_id": "notify-dash", "metrics_listen": "127.0.0.1:%d" % nport},
            "receiver.hook": {"type": "webhook", "url_file": url_file},
            "route.fevers": {"kinds": "fever", "receivers": "hook", "group_wait": "0s"}})
        env.daemons.append(n)
        since = env.broker.log_size()
        n.start()
        env.wait_connected(n, since)

        def settled():
            text = scrape(port)
            return text and harness.metric(text, "cordon_cluster_shards_owned") == 4 \
                and harness.metric(text, 'cordon_cluster_sessions{state="connected"}') == 4 \
                and harness.metric(text, "cordon_cluster_handover_sites_holding") == 0 \
                and harness.metric(text, 'cordon_mqtt_subscriptions{state="pending"}') == 0
        wait_until(settled, what="cordond owning its 4 shards, every session subscribed")
        publish_many(env.broker.port, [
            gate_event(SITE, "G01", "DASH-1", card="C-D1", person="P-D1", temp_c=38.2,
                       ts=now_ts()),
            ("cordon/%s/gate/G01/event" % SITE, b"not json"),
            ("cordon/%s/need" % SITE, json.dumps({
                "need_id": "N-D1", "id": "1", "action": "open", "ts": now_ts(),
                "household": "H-D1", "category": "groceries", "due": now_ts(-60)}).encode()),
        ])
        wait_until(lambda: hook.received(), what="the fever delivered to the webhook")
        wait_until(lambda: env.pg.count("needs") == 1 and env.pg.count("rejects") == 1,
                   what="the need and the reject in PostgreSQL")

        def counted():
            text, ntext = scrape(port), scrape(nport)
            ok = harness.metric(
                text, 'cordon_alert_transitions_total{kind="fever",transition="raised"}') == 1 \
                and harness.metric(text, 'cordon_rejects_total{reason="not_json"}') == 1 \
                and harness.metric(
                    ntext, 'cordon_notify_attempts_total{receiver="hook",result="ok"}') == 1
            return ok and {"cordond": text, "cordon-notify": ntext}
        got = wait_until(counted, what="the fever, the reject and the delivery in /metrics")
        # Names this test wants that are not there yet get until the timeout
        # to appear (each render is a few seconds apart); then the test names them.
        wanted = wanted_names()

        def all_there():
            got.update({"cordond": scrape(port), "cordon-notify": scrape(nport)})
            return not missing(wanted, got)
        try:
            wait_until(all_there, what="every metric the dashboard and the rules read")
        except AssertionError:
            pass
        yield got
        env.stop_daemons([n, d])
    finally:
        hook.stop()


def wanted_names():
    """{metric name: [where it is read]} over the dashboard and the rules."""
    dash = load_dashboard()
    uses = {}
    for where, expr in prometheus_exprs(dash) + [("rule " + r["alert"], r["expr"])
                                                 for r in load_rules()]:
        for name in metric_names(expr):
            uses.setdefault(name, []).append(where)
    for where, name in variable_metrics(dash):
        uses.setdefault(name, []).append(where)
    return uses


def missing(wanted, texts):
    have = set()
    for text in texts.values():
        have |= exported_names(text)
    return {n: w for n, w in wanted.items() if n not in have and n not in SYNTHETIC}


# ---------------------------------------------------------------- the tests

def test_metric_names_tokenizer():
    """The tokenizer on the shapes the files use."""
    assert metric_names('sum by (kind) (increase(cordon_alert_transitions_total'
                        '{transition="raised",instance=~"$instance"}[$__rate_interval]))') \
        == {"cordon_alert_transitions_total"}
    assert metric_names("histogram_quantile(0.99, sum by (le, instance) "
                        "(rate(cordon_store_seconds_bucket[5m])))") \
        == {"cordon_store_seconds_bucket"}
    assert metric_names('max without (instance) (cordon_cluster_shards) - sum without (instance) '
                        '(cordon_cluster_shards_owned{state=""}) > 0') \
        == {"cordon_cluster_shards", "cordon_cluster_shards_owned"}
    assert metric_names('a_total offset 5m / on (job) group_left (version) b_info and up == bool 1'
                        ' or c{x="sum(d)"} unless e > 16 * 1024 * 1e3') \
        == {"a_total", "b_info", "up", "c", "e"}
    assert metric_names("sum(rate(x[5m])) by (y) / ignoring(z) w") == {"x", "w"}


def test_dashboard_is_importable_json():
    """Two inputs; every panel (rows aside) and target on one of them, of the
    input's type; ids unique; panels on distinct cells; variables on Prometheus."""
    dash = load_dashboard()
    assert {i["name"]: i["pluginId"] for i in dash["__inputs"]} \
        == {"DS_PROMETHEUS": "prometheus", "DS_POSTGRES": "postgres"}
    assert all(i["type"] == "datasource" for i in dash["__inputs"])
    assert isinstance(dash["schemaVersion"], int) and dash["title"] and dash["uid"]
    panels = all_panels(dash)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat: %r" % ids
    cells = {}
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, "panel %r out of the grid" % p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, "panels %r and %r overlap at %d,%d" \
                    % (cells[(x, y)], p["title"], x, y)
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert re.search(r"[\u4e00-\u9fff]", p.get("description", "")), \
            "panel %r: no Chinese in its description (docs/operations.md says so)" % p["title"]
        ds = p.get("datasource")
        assert ds and INPUTS.get(ds["uid"]) == ds["type"], \
            "panel %r: data source %r is not one of the inputs" % (p["title"], ds)
        assert p["targets"], "panel %r queries nothing" % p["title"]
        for t in p["targets"]:
            assert t.get("datasource", ds) == ds, "panel %r: a target on another data source" \
                % p["title"]
            assert ("expr" in t) == (ds["type"] == "prometheus") \
                and ("rawSql" in t) == (ds["type"] == "postgres"), p["title"]
    for v in dash["templating"]["list"]:
        assert v["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, v["name"]
    titles = [p["title"] for p, _ in sql_targets(dash)]
    assert sorted(titles) == sorted(SQL_COLUMNS), "PostgreSQL panels and SQL_COLUMNS differ"


def test_dashboard_promql_parses(env):
    """Every PromQL expression of the dashboard, its variables written out,
    as a recording rule for promtool check rules (Prometheus' own parser)."""
    rules = []
    for i, (where, expr) in enumerate(prometheus_exprs(load_dashboard())):
        text = re.sub(r"\$\{?(\w+)\}?", lambda m: PROMQL_VARIABLES[m.group(1)], expr)
        rules.append({"record": "cordon_dashboard:expr_%d" % i, "expr": text})
    path = os.path.join(env.dir, "dashboard.rules.yml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    out = run_promtool("check", "rules", path)
    assert "SUCCESS: %d rules found" % len(rules) in out, out


def test_every_metric_read_is_exported(scrapes):
    """Every name the dashboard and the rules read is in cordond's or
    cordon-notify's /metrics (its samples or its # TYPE lines)."""
    wanted = wanted_names()
    assert len(wanted) > 40, sorted(wanted)
    gone = missing(wanted, scrapes)
    assert not gone, "metrics read but exported by neither cordond nor cordon-notify:\n" + \
        "\n".join("  %s  (%s)" % (n, ", ".join(w[:3])) for n, w in sorted(gone.items()))


def test_postgres_panels_run(env, scrapes):
    """Each PostgreSQL panel's SQL, macros written out, in a read-only
    transaction of a role with SELECT on READ_TABLES only: its columns, and
    the fever, reject and need published by the fixture in its rows."""
    env.pg.query("DO $$BEGIN CREATE ROLE grafana_reader LOGIN; EXCEPTION WHEN duplicate_object"
                 " THEN NULL; END$$")
    env.pg.query("GRANT SELECT ON %s TO grafana_reader" % ", ".join(READ_TABLES))
    conninfo = env.pg.conninfo.replace("user=cordon", "user=grafana_reader")
    assert conninfo != env.pg.conninfo
    results = {}
    c = psycopg2.connect(conninfo, connect_timeout=5)
    try:
        c.set_session(readonly=True)
        for p, t in sql_targets(load_dashboard()):
            with c.cursor() as cur:
                cur.execute(grafana_sql(t["rawSql"]))
                cols = [d.name for d in cur.description]
                results[p["title"]] = [dict(zip(cols, r)) for r in cur.fetchall()]
            c.rollback()
            assert cols == SQL_COLUMNS[p["title"]], p["title"]
            if t["format"] == "time_series":
                assert cols[0] == "time", "%r: Grafana wants the time first" % p["title"]
    finally:
        c.close()
    fevers = results["Fever alerts raised per hour"]
    assert sum(r["fever alerts"] for r in fevers) >= 1, fevers
    assert {r["site"]: r["fevers"] for r in results["Sites with the most fever alerts"]} \
        == {SITE: 1}
    assert {r["kind"]: r["open"] for r in results["Alerts open by kind"]}.get("fever") == 1
    assert {r["metric"] for r in results["Rejects per hour by reason"]} == {"not_json"}
    assert results["Needs open by category"] == [
        {"category": "groceries", "open": 1, "assigned": 0, "overdue": 1}]


def test_rules_check_and_fire():
    """promtool check rules; promtool test rules; the example configuration
    loads them."""
    out = run_promtool("check", "rules", RULES)
    assert "SUCCESS: %d rules found" % len(load_rules()) in out, out
    out = run_promtool("test", "rules", os.path.basename(RULES_TEST), cwd=PROMETHEUS)
    assert "SUCCESS" in out, out
    with open(RULES_TEST, encoding="utf-8") as f:
        tested = {t["alertname"] for case in yaml.safe_load(f)["tests"]
                  for t in case["alert_rule_test"]}
    assert {"CordondDown", "CordonNotStoring", "CordonShardsUnowned"} <= tested
    assert tested <= {r["alert"] for r in load_rules()}
    out = run_promtool("check", "config", EXAMPLE_CONFIG)
    assert "SUCCESS" in out, out


def test_rules_are_whole_and_documented():
    """Every rule: an alert name, `for`, severity critical or warning, a
    summary and a description; docs/operations.md names each one."""
    with open(OPERATIONS, encoding="utf-8") as f:
        doc = f.read()
    rules = load_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), names
    for r in rules:
        assert re.fullmatch(r"\d+[smh]", r.get("for", "")), "%s: no for" % r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        assert "`%s`" % r["alert"] in doc, "%s is not in docs/operations.md" % r["alert"]
