"""What a review of the people work (issue 16) found wrong, each as the test
that failed before its fix: what the docs and the issue promise."""

import json

import harness
from harness import gate_event, now_ts, publish_many, wait_register_loaded, wait_until
from test_people_register import ID3, PHONE, ctl, keyfile, write  # noqa: F401


def pub(env, topic, body):
    publish_many(env.broker.port, [(topic, json.dumps(body).encode())])


def ended(env, site, table):
    return (env.pg.count(table, "site = %s", (site,))
            + env.pg.count("rejects", "topic LIKE %s", ("cordon/%s/%%" % site,)))


def test_call_with_a_category_outside_the_ledger_is_stored(env, ctl, cordond):  # noqa: F811
    """docs/topics.md: a needs_help call opens a need "with the call's
    category if it gives one of the ledger's (else other)". A call saying
    the hotline's own word "medical" is rejected whole instead: the welfare
    call is lost, the household later raises call_missed although reached."""
    site = "rf1"
    d = cordond()
    wait_register_loaded(d)
    pub(env, "cordon/%s/call/3-2-401" % site, {"id": "W-1", "ts": now_ts(), "by": "op-3",
                                               "outcome": "needs_help", "category": "medical"})
    wait_until(lambda: ended(env, site, "welfare_calls") > 0, what="the call stored or rejected")
    assert env.pg.count("welfare_calls", "site = %s", (site,)) == 1, \
        env.pg.query("SELECT reason, detail FROM rejects WHERE topic LIKE 'cordon/rf1/%'")
    assert env.pg.query("SELECT category FROM needs WHERE site = %s", (site,)) == [("other",)]


def test_dropoff_item_longer_than_64_bytes_is_stored(env, ctl, cordond):  # noqa: F811
    """`item` is free text ("a bag of rice and a box of eggs ..."); the Limits
    table of docs/topics.md does not list it. A drop-off whose item is 65
    bytes is rejected bad_field: the delivery is not on record, its
    collection later resolves nothing."""
    site = "rf2"
    d = cordond()
    wait_register_loaded(d)
    pub(env, "cordon/%s/dropoff" % site, {"id": "P-1", "ts": now_ts(), "household": "3-2-401",
                                          "action": "placed", "item": "x" * 65})
    wait_until(lambda: ended(env, site, "dropoffs") > 0, what="the drop-off stored or rejected")
    assert env.pg.count("dropoffs", "site = %s", (site,)) == 1, \
        env.pg.query("SELECT reason, detail FROM rejects WHERE topic LIKE 'cordon/rf2/%'")


def test_household_page_shows_each_check_by_its_person(env, ctl, cordond):  # noqa: F811
    """`household` shows the person of each health check and order. Its
    PERSON() subquery compares pmap's own `person` column (not the outer
    row's), so every check and every whole-household order shows the first
    resident (P-1)."""
    site = "rf3"
    ctl("site", "add", site, expect=0)
    harness.import_households(env, lambda *a: ctl(*a, expect=0), site, [("3-2-401", ["C-1"])],
                              phone=PHONE)
    path = write(env, "rf3.csv", "household,person,born,phone,id_number\n"
                 "3-2-401,P-1,,,\n3-2-401,P-2,,,\n")
    ctl("import", "residents", path, "--site", site, expect=0)
    ctl("isolate", site, "--household", "3-2-401", expect=0)
    d = cordond()
    wait_register_loaded(d)
    pub(env, "cordon/%s/isolation/3-2-401/check" % site,
        {"id": "K-2", "ts": now_ts(), "person": "P-2", "temp_c": 36.6})
    wait_until(lambda: env.pg.count("isolation_checks", "site = %s", (site,)) == 1,
               what="the check stored")
    page = json.loads(ctl("household", site, "3-2-401", "--json", expect=0).stdout)
    assert [c["person"] for c in page["isolation_checks"]["items"]] == ["P-2"], page
    assert [o["person"] for o in page["isolation_orders"]["items"]] == [None], page


def test_report_of_today_does_not_count_a_need_not_yet_due(env, ctl, cordond):  # noqa: F811
    """report daily for today (docs: "Evening. report daily for today"):
    a need due in an hour, opened a minute ago, is counted `overdue` (the
    query takes due < end of the day, not due < now)."""
    site = "rf4"
    ctl("site", "add", site, "--timezone", "UTC", expect=0)
    d = cordond()
    wait_register_loaded(d)
    pub(env, "cordon/%s/need" % site, {"need_id": "N-1", "id": "1", "action": "open",
                                       "ts": now_ts(-60), "household": "3-2-401",
                                       "category": "medicine", "due": now_ts(600)})
    wait_until(lambda: env.pg.count("needs", "site = %s", (site,)) == 1, what="the need")
    out = ctl("report", "daily", "--site", site, expect=0).stdout
    sec = out.split("\nNeeds\n", 1)[1].split("\n\n", 1)[0].splitlines()
    head, row = sec[0].split(), sec[1].split()
    assert dict(zip(head, row))["overdue"] == "0", out


def test_operator_resolve_of_need_overdue_is_not_raised_again(env, ctl, cordond):  # noqa: F811
    """An operator resolves a need_overdue (docs/alerts.md, Lifecycle:
    "resolve (rule or operator)"). The next tick finds the need still
    overdue and no open alert, and raises a new one at once: the operator
    cannot close it except by publishing a deliver or cancel. (The same
    pattern in tick_welfare for call_missed and tick_drops for
    dropoff_uncollected.) The later need N-2, raised by a later tick, marks
    that the tick has run."""
    from test_alerts import Alerts
    site = "rf5"
    with Alerts(env.broker.port, site) as al:
        d = cordond()
        wait_register_loaded(d)
        pub(env, "cordon/%s/need" % site, {"need_id": "N-1", "id": "1", "action": "open",
                                           "ts": now_ts(-5), "household": "3-2-401",
                                           "category": "medicine", "due": now_ts(-1)})
        a = al.wait("need_overdue", "raised", lambda x: x["subject"] == "need:N-1")
        pub(env, "cordon/%s/ack" % site, {"alert_id": a["alert_id"], "by": "op-7",
                                          "action": "resolve", "note": "phoned, fine"})
        al.wait("need_overdue", "resolved", lambda x: x["alert_id"] == a["alert_id"])
        pub(env, "cordon/%s/need" % site, {"need_id": "N-2", "id": "1", "action": "open",
                                           "ts": now_ts(-5), "household": "3-2-402",
                                           "category": "medicine", "due": now_ts(-1)})
        al.wait("need_overdue", "raised", lambda x: x["subject"] == "need:N-2")
        raised = [x for x in al.all("need_overdue")
                  if x["subject"] == "need:N-1" and x["transition"] == "raised"]
        assert len(raised) == 1, raised


def test_household_page_masks_a_phone_written_with_separators(env, ctl, cordond):  # noqa: F811
    """Notes are shown with "digit runs masked" (runs of 7+ digits). A
    phone written the common way with separators, 138-1234-5678 or
    138 1234 5678, has no run of 7 and is printed whole."""
    site = "rf6"
    ctl("site", "add", site, expect=0)
    harness.import_households(env, lambda *a: ctl(*a, expect=0), site, [("3-2-401", ["C-1"])],
                              phone=PHONE)
    d = cordond()
    wait_register_loaded(d)
    pub(env, "cordon/%s/call/3-2-401" % site, {"id": "W-1", "ts": now_ts(), "by": "op-3",
                                               "outcome": "reached",
                                               "note": "daughter 138-1234-5678"})
    wait_until(lambda: env.pg.count("welfare_calls", "site = %s", (site,)) == 1,
               what="the call stored")
    out = ctl("household", site, "3-2-401", expect=0).stdout
    assert "1234-5678" not in out and "daughter 138-****-5678" in out, out

def test_household_page_never_prints_an_id_hash(env, ctl, cordond, keyfile):  # noqa: F811
    """`household` (tools/ctl_people.c: "ID numbers are never shown, not
    even hashed"): a fever of a person known only by an ID number that is
    not in the residents' register, at a card of the household, is listed
    with subject person:id:<hash>."""
    site = "rf7"
    ctl("site", "add", site, expect=0)
    harness.import_households(env, lambda *a: ctl(*a, expect=0), site, [("3-2-401", ["C-1"])],
                              phone=PHONE)
    d = cordond({"site": {"id_key_file": keyfile}})
    wait_register_loaded(d)
    publish_many(env.broker.port, [gate_event(site, "G01", "E-1", card="C-1", person=ID3,
                                              temp_c=38.6)])
    wait_until(lambda: env.pg.count("alerts", "site = %s AND kind = 'fever'", (site,)) == 1,
               what="the fever")
    out = ctl("household", site, "3-2-401", expect=0).stdout
    assert "id:" not in out, out


def test_dropoff_steps_may_share_the_delivery_id(env, ctl, cordond):  # noqa: F811
    """The issue's payload has one id for a delivery and an action: its
    `placed` and `collected` under the same id are two rows, not a device
    reusing a record id (event_keys_reused) nor one row."""
    site = "rf8"
    d = cordond()
    wait_register_loaded(d)
    ts = now_ts()
    for action in ("placed", "collected", "placed"):   # the last: a redelivery
        pub(env, "cordon/%s/dropoff" % site, {"id": "P-1", "ts": ts, "household": "3-2-401",
                                              "action": action, "item": "rice"})
    pub(env, "cordon/%s/dropoff" % site, {"id": "MARK", "ts": now_ts(), "household": "3-2-401",
                                          "action": "placed"})
    wait_until(lambda: env.pg.count("dropoffs", "site = %s AND event_key LIKE %s",
                                    (site, "%/MARK/%")) == 1, what="the marker")
    assert sorted(r[0] for r in env.pg.query(
        "SELECT event_key FROM dropoffs WHERE site = %s AND household = '3-2-401'"
        " AND event_key NOT LIKE %s", (site, "%/MARK/%"))) == \
        ["rf8/dropoff/P-1/collected", "rf8/dropoff/P-1/placed"]
    assert env.pg.count("event_keys_reused", "event_table = 'dropoffs'") == 0
