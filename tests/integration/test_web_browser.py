"""The console's page in a real browser (issue 18; docs/web.md, "The page").

Headless Chromium (Debian's chromium and chromium-driver, driven by
python3-selenium) against cordon-web, cordond, Mosquitto and PostgreSQL, all
real, started once for the module: one browser walks through the duty desk's
day. The tests run in file order and share the browser: log in; a fever
published here appears on the open alerts without a reload; it is acked from
the page (keyboard only) and PostgreSQL and the alert topic say so; a viewer
has no ack button and is refused; a wrong password, then the lock-out; the
household page shows what the register holds; the report draws its charts
(screenshots at desktop and phone width in $CORDON_WEB_ARTIFACTS, which meson
sets to <builddir>/meson-logs/web-artifacts); no page left with English in
its fixed texts when it is Chinese, nor wider than a phone.

Every wait is WebDriverWait or harness.wait_until on a condition."""

import glob
import json
import os
import re
import tempfile
import urllib.error
import urllib.request

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

import harness
from harness import Collector, gate_event, now_ts, publish_many, wait_until

SITE = "wb"
HH = "3-2-401"
PASSWORD = "duty-desk-pass-1"
WAIT = 20   # seconds for a page condition (a cold Chromium renders in < 2 s)
LOCKOUT_AFTER = 3
ARTIFACTS = os.environ.get("CORDON_WEB_ARTIFACTS") or os.path.join(tempfile.gettempdir(),
                                                                    "cordon-web-artifacts")
# Fixed texts the Chinese page may keep in Latin letters.
ALLOWED_LATIN = {"CSV", "ID"}
PAGES = ["alerts", "gates", "zones", "isolation", "needs", "household/%s/%s" % (SITE, HH), "report"]


# ---------------------------------------------------------------- servers

def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


@pytest.fixture(scope="module")
def world(env, ctl):
    """The register of site wb (a household under isolation with a card and
    two residents, a gate, a zone, a volunteer), three operators, cordond
    and cordon-web. Yields (cordond, web)."""
    ctl("site", "add", SITE, "--timezone", "Asia/Shanghai")
    ctl("gate", "add", SITE, "G01")
    ctl("zone", "add", SITE, "Z1", "--per-day", "4")
    harness.import_households(env, ctl, SITE, [(HH, ["C-0412"])])
    ctl("import", "residents", write(os.path.join(env.dir, "res.csv"),
                                     "household,person,born,phone,id_number,name\n"
                                     "%s,P-1,1950-03-07,,,张三\n%s,P-2,,,,\n" % (HH, HH)),
        "--site", SITE)
    ctl("isolate", SITE, "--household", HH, "--days", "14")
    ctl("volunteer", "add", SITE, "vol-07", "--team", "A")
    pw = write(os.path.join(env.dir, "pw"), PASSWORD + "\n")
    for name, role in (("duty", "operator"), ("look", "viewer"), ("lock", "operator")):
        ctl("operator", "add", name, "--role", role, "--password-file", pw)

    d = env.cordond()
    harness.wait_register_loaded(d)
    since = env.broker.log_size()
    web = harness.Web(env.dir, env.broker.port, env.pg.conninfo, overrides={
        "web": {"assets_dir": os.environ["CORDON_WEB_ASSETS"],
                "lockout_after": str(LOCKOUT_AFTER), "lockout_time": "5m"}})
    env.daemons.append(web)   # stopped, and its log scanned, with the env
    web.start().wait_ready(env.broker, since)
    # Passes of today, so the gates page and the report have figures.
    publish_many(env.broker.port, [
        gate_event(SITE, "G01", "P-%02d" % i, card="C-0412", person="P-2",
                   direction=("in", "out")[i % 2], temp_c=36.2 + i / 10, ts=now_ts(-60 * i))
        for i in range(6)])
    # Two disinfections of zone Z1 (its schedule: 4 a day), for the zones
    # page and the report's chart.
    publish_many(env.broker.port, [
        ("cordon/%s/disinfection/Z1" % SITE,
         json.dumps({"id": "D-%d" % i, "ts": now_ts(-120 * i), "crew": "crew-2"}).encode())
        for i in (1, 2)])
    wait_until(lambda: env.pg.count("gate_events", "site = %s", (SITE,)) == 6
               and env.pg.count("disinfections", "site = %s", (SITE,)) == 2,
               what="the six passes and two disinfections in PostgreSQL")
    yield d, web
    env.stop_daemons([web, d])


@pytest.fixture(scope="module")
def browser(world):
    """One headless Chromium for the module, its languages Chinese first.
    The screenshots of an earlier run's failed waits are removed."""
    for old in glob.glob(os.path.join(ARTIFACTS, "failed-*.png")):
        os.remove(old)
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--lang=zh-CN", "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # chromedriver's port from the harness: selenium's own is an ephemeral
    # port it binds, closes and hands on, open to the race harness.free_port avoids.
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver", port=harness.free_port()),
                           options=opts)
    drv.set_page_load_timeout(WAIT)
    drv.console = []   # the browser's log, kept across reads (get_log empties it)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def views(world, browser):
    """Skip a test of the boards, the household or the report when this
    cordon-web was built without src/views.c (its web_views_none.c answers
    them 503 "this build has no views"): the page is tested, not that."""
    _, web = world
    jar = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    jar.open(urllib.request.Request(web.url("/api/login"), method="POST",
                                    data=json.dumps({"name": "duty", "password": PASSWORD}).encode(),
                                    headers={"Content-Type": "application/json"}), timeout=10)
    try:
        jar.open(web.url("/api/gates"), timeout=10)
    except urllib.error.HTTPError as e:
        if e.code == 503 and "no views" in e.read().decode():
            pytest.skip("cordon-web built without src/views.c (the views branch not merged)")
        raise


# ---------------------------------------------------------------- helpers

def until(drv, cond, what, timeout=WAIT):
    """WebDriverWait for cond(drv), retried over stale elements; its value.
    On a timeout, a screenshot in ARTIFACTS and the page's text in the error."""
    def check(d):
        try:
            return cond(d)
        except StaleElementReferenceException:
            return False
    try:
        return WebDriverWait(drv, timeout, poll_frequency=0.1).until(check)
    except TimeoutException:
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "failed-%s.png" % re.sub(r"[^A-Za-z0-9]+", "-", what)[:60])
        drv.save_screenshot(shot)
        raise AssertionError("timed out after %d s waiting for %s (%s; screenshot %s)\npage text:\n%s"
                             % (timeout, what, drv.current_url, shot,
                                drv.find_element(By.TAG_NAME, "body").text[:3000])) from None


def css(drv, selector):
    return drv.find_elements(By.CSS_SELECTOR, selector)


def visible(drv, selector):
    return [e for e in css(drv, selector) if e.is_displayed()]


def go(drv, web, page):
    drv.get(web.url("/#/" + page))
    until(drv, lambda d: d.execute_script("return document.querySelector('main')"
                                         " && document.querySelector('main').dataset.view")
          == page.split("/")[0], "page %s shown" % page)


def log_in(drv, web, name, password=PASSWORD):
    drv.get(web.url("/"))
    until(drv, lambda d: visible(d, "#login-name") or visible(d, "#logout"), "the login or the app")
    if visible(drv, "#logout"):
        log_out(drv)
    name_box = drv.find_element(By.ID, "login-name")
    name_box.clear()
    name_box.send_keys(name)
    drv.find_element(By.ID, "login-password").send_keys(password + Keys.ENTER)


def log_out(drv):
    drv.find_element(By.ID, "logout").click()
    until(drv, lambda d: visible(d, "#login-name"), "the login page after logout")


def login_error(drv):
    return drv.find_element(By.ID, "login-error").text


def console(drv):
    drv.console += drv.get_log("browser")
    return drv.console


def alert_card(drv, pred=lambda e: True):
    return next((e for e in css(drv, "article.alert") if pred(e)), None)


def wait_alert_row(pg, alert_id, state):
    def row():
        r = pg.query("SELECT state, by_whom FROM alerts WHERE alert_id = %s", (alert_id,))
        return r and r[0][0] == state and r[0]
    return wait_until(row, what="alert %s %s in PostgreSQL" % (alert_id, state))


def fever(env, id, person, temp_c=39.2):
    publish_many(env.broker.port, [gate_event(SITE, "G01", id, card="C-0412", person=person,
                                              temp_c=temp_c, ts=now_ts())])


# ---------------------------------------------------------------- tests

def test_login(world, browser):
    _, web = world
    drv = browser
    drv.get(web.url("/"))
    until(drv, lambda d: visible(d, "#login-name"), "the login form")
    # The language follows the browser's (zh-CN), and the page says so.
    assert drv.execute_script("return document.documentElement.lang") == "zh-CN"
    assert drv.find_element(By.ID, "login-submit").text == "登录"
    log_in(drv, web, "duty")
    until(drv, lambda d: visible(d, "#logout"), "the top bar after login")
    assert "duty" in drv.find_element(By.ID, "who").text
    assert "值班员" in drv.find_element(By.ID, "who").text
    # The session cookie is HttpOnly: the page's scripts cannot read it.
    assert "cordon_session" not in drv.execute_script("return document.cookie")
    cookie = drv.get_cookie("cordon_session")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie
    until(drv, lambda d: d.execute_script("return location.hash") == "#/alerts", "#/alerts")


def test_fever_appears_without_reload(env, world, browser):
    _, web = world
    drv = browser
    go(drv, web, "alerts")
    until(drv, lambda d: "实时" in d.find_element(By.CSS_SELECTOR, ".live-state").text,
          "the live state (snapshot received)")
    drv.execute_script("window.__sameDocument = 42")
    fever(env, "F-1", "P-1")
    card = until(drv, lambda d: alert_card(d, lambda e: e.get_attribute("data-severity") == "critical"),
                 "the critical fever on the open page")
    assert drv.execute_script("return window.__sameDocument") == 42, "the page was reloaded"
    assert card.get_attribute("data-state") == "raised"
    # In the page's language: cordon-notify's Chinese words, the reading.
    assert "发热" in card.find_element(By.CSS_SELECTOR, ".label").text
    assert "39.2" in card.find_element(By.CSS_SELECTOR, ".what").text
    assert "person:P-1" in card.text
    # Unmissable: the red card, the banner, the count in the tab title, the beep.
    assert "sev-critical" in card.get_attribute("class")
    until(drv, lambda d: visible(d, "#critical-banner"), "the critical banner")
    assert "1 条严重告警未确认" in drv.find_element(By.ID, "critical-banner").text
    assert drv.title.startswith("(1) ")
    until(drv, lambda d: int(d.execute_script("return document.body.dataset.beeps || 0")) >= 1,
          "a beep")
    # Muting stops it and is remembered; unmuting brings it back.
    mute = drv.find_element(By.ID, "mute")
    mute.click()
    assert mute.get_attribute("aria-pressed") == "true" and mute.text == "声音：关"
    beeps = int(drv.execute_script("return document.body.dataset.beeps"))
    assert drv.execute_script("return localStorage.getItem('cordon.muted')") == "1"
    mute.click()
    until(drv, lambda d: int(d.execute_script("return document.body.dataset.beeps")) > beeps,
          "the beep again after unmuting")


def test_ack_from_the_page(env, world, browser):
    _, web = world
    drv = browser
    pg = env.pg
    card = until(drv, lambda d: alert_card(d, lambda e: e.get_attribute("data-state") == "raised"
                                            and e.get_attribute("data-severity") == "critical"),
                 "the raised fever")
    alert_id = card.get_attribute("data-alert-id")
    with Collector(env.broker.port, "cordon/%s/alert/#" % SITE) as topic:
        # By keyboard: Tab until the ack button has the focus.
        drv.find_element(By.TAG_NAME, "body").click()
        for _ in range(60):
            drv.switch_to.active_element.send_keys(Keys.TAB)
            focused = drv.switch_to.active_element
            if "ack" in (focused.get_attribute("class") or "").split():
                break
        else:
            pytest.fail("Tab never reached the ack button")
        focused.send_keys(Keys.ENTER)
        dialog = until(drv, lambda d: visible(d, "dialog.note-dialog"), "the note dialog")[0]
        note = drv.switch_to.active_element
        assert note.get_attribute("id") == "note-input", "the focus is not in the note field"
        # Esc closes it and does nothing.
        note.send_keys(Keys.ESCAPE)
        until(drv, lambda d: not visible(d, "dialog.note-dialog"), "the dialog closed by Esc")
        assert pg.scalar("SELECT state FROM alerts WHERE alert_id = %s", (alert_id,)) == "raised"
        # Again, with a note, Enter submits.
        card = alert_card(drv, lambda e: e.get_attribute("data-alert-id") == alert_id)
        card.find_element(By.CSS_SELECTOR, "button.ack").send_keys(Keys.ENTER)
        until(drv, lambda d: visible(d, "dialog.note-dialog"), "the note dialog again")
        drv.switch_to.active_element.send_keys("已电话联系，复测中" + Keys.ENTER)

        state, by = wait_alert_row(pg, alert_id, "acked")
        assert by == "duty"
        acks = pg.query("SELECT by_whom, action, note FROM acks WHERE alert_id = %s", (alert_id,))
        assert acks == [("duty", "ack", "已电话联系，复测中")], acks
        _, payload = topic.wait_for(lambda t, p: json.loads(p).get("alert_id") == alert_id
                                    and json.loads(p).get("transition") == "acked")
        msg = json.loads(payload)
        assert msg["state"] == "acked" and msg["by"] == "duty", msg
    # The page has it from the event stream: acked, no longer ringing.
    until(drv, lambda d: alert_card(d, lambda e: e.get_attribute("data-alert-id") == alert_id
                                    and e.get_attribute("data-state") == "acked"), "the card acked")
    until(drv, lambda d: not d.title.startswith("("), "the title without the count")
    assert not visible(drv, "#critical-banner")
    card = alert_card(drv, lambda e: e.get_attribute("data-alert-id") == alert_id)
    assert "已由 duty 确认" in card.text
    assert not card.find_elements(By.CSS_SELECTOR, "button.ack")
    # The keyboard keeps its place: the focus is on the same card (its ack
    # button gone, on its resolve button).
    focused = drv.switch_to.active_element
    assert "resolve" in focused.get_attribute("class").split(), focused.get_attribute("outerHTML")
    assert focused.find_element(By.XPATH, "ancestor::article").get_attribute("data-alert-id") \
        == alert_id


def test_viewer_cannot_ack(env, world, browser):
    _, web = world
    drv = browser
    fever(env, "F-2", "P-2", temp_c=38.9)
    log_in(drv, web, "look")
    until(drv, lambda d: visible(d, "#logout"), "the viewer logged in")
    assert "只读" in drv.find_element(By.ID, "who").text
    go(drv, web, "alerts")
    card = until(drv, lambda d: alert_card(d, lambda e: "person:P-2" in e.text
                                            and e.get_attribute("data-state") == "raised"),
                 "P-2's fever on the viewer's page")
    assert not css(drv, "article.alert button.ack") and not css(drv, "article.alert button.resolve")
    # And the server refuses a viewer's ack, whatever the page shows.
    answer = drv.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/api/me').then(r => r.json()).then(me =>
          fetch('/api/alerts/' + arguments[0] + '/ack', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},
            body: '{}'})).then(r => r.json().then(j => done([r.status, j.error])))
          .catch(e => done([0, String(e)]));""", card.get_attribute("data-alert-id"))
    assert answer == [403, "forbidden"], answer
    assert env.pg.scalar("SELECT state FROM alerts WHERE alert_id = %s",
                         (card.get_attribute("data-alert-id"),)) == "raised"
    log_out(drv)


def test_silenced_alert_shown_as_such(world, browser, ctl):
    """A silence over P-2's critical fever: the page shows it grey with
    "已静默，至 …", and it rings no more (banner, title, beep)."""
    _, web = world
    drv = browser
    log_in(drv, web, "duty")
    until(drv, lambda d: visible(d, "#logout"), "logged in")
    go(drv, web, "alerts")
    until(drv, lambda d: d.title.startswith("(1) "), "P-2's fever ringing")
    ctl("silence", "add", SITE, "--kind", "fever", "--subject", "person:P-2", "--for", "2h",
        "--reason", "rechecked by the doctor")
    drv.refresh()   # a new event stream: its snapshot says silenced
    card = until(drv, lambda d: alert_card(d, lambda e: "person:P-2" in e.text
                                            and "silenced" in e.get_attribute("class").split()),
                 "P-2's fever shown silenced")
    assert re.search(r"已静默，至 \d{4}-\d\d-\d\d \d\d:\d\d", card.text), card.text
    assert card.get_attribute("data-state") == "raised"
    # Grey, not red: the computed background of the card.
    assert card.value_of_css_property("background-color") == "rgba(229, 231, 235, 1)", \
        card.value_of_css_property("background-color")
    until(drv, lambda d: not d.title.startswith("("), "the title without a count")
    assert not visible(drv, "#critical-banner")
    # This document (since the refresh) has not beeped once.
    assert drv.execute_script("return Number(document.body.dataset.beeps || 0)") == 0


def test_wrong_password_then_lockout(world, browser):
    _, web = world
    drv = browser
    for i in range(LOCKOUT_AFTER):
        log_in(drv, web, "lock", "not-the-password")
        until(drv, lambda d: login_error(d), "the login's refusal %d" % (i + 1))
        assert login_error(drv) == "用户名或密码不对，请再试一次", login_error(drv)
        drv.execute_script("document.getElementById('login-error').textContent = ''")
    # Locked now: even the right password is refused, with the minutes to wait.
    log_in(drv, web, "lock", PASSWORD)
    until(drv, lambda d: login_error(d), "the lock-out message")
    assert re.fullmatch(r"尝试次数太多，请 [1-5] 分钟后再试", login_error(drv)), login_error(drv)
    assert not visible(drv, "#logout")


def test_household_page(env, world, browser, views, ctl):
    _, web = world
    drv = browser
    log_in(drv, web, "duty")
    until(drv, lambda d: visible(d, "#logout"), "logged in")
    go(drv, web, "household/%s/%s" % (SITE, HH))
    until(drv, lambda d: css(d, "section.hh-section[data-section=alerts] tbody tr"),
          "the household's sections")
    # The register as cordonctl prints it, and the server's answer (which
    # masks names and phone numbers for the console: docs/web.md).
    page = json.loads(ctl("household", SITE, HH, "--json").stdout)
    api = drv.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/api/households/' + arguments[0] + '/' + arguments[1]).then(r => r.json())
          .then(done, e => done(String(e)));""", SITE, HH)
    main = drv.find_element(By.ID, "main")
    text = main.text
    info = main.find_element(By.CSS_SELECTOR, ".household-info").text
    for key in ("building", "unit", "room", "size"):
        assert str(page[key]) in info, (key, page[key], info)
    shown = {}
    for sec in main.find_elements(By.CSS_SELECTOR, "section.hh-section"):
        shown[sec.get_attribute("data-section")] = sec
    for key in ("residents", "cards", "isolation_orders", "passes", "alerts"):
        items = page[key]["items"]
        assert items, "the register should hold %s" % key
        sec = shown[key]
        assert len(sec.find_elements(By.CSS_SELECTOR, "tbody tr")) == len(items), key
        assert str(page[key]["total"]) in sec.find_element(By.CSS_SELECTOR, "h2").text
    for r in page["residents"]["items"]:
        assert r["person"] in shown["residents"].text
    for r in api["residents"]["items"]:
        assert r["name"] is None or r["name"] in shown["residents"].text, r
    assert "张" in shown["residents"].text
    assert "C-0412" in shown["cards"].text
    for a in page["alerts"]["items"]:
        assert a["alert_id"] in shown["alerts"].text
    assert len(page["passes"]["items"]) == len(api["passes"]["items"])
    assert "有效" in shown["isolation_orders"].text   # an active order, in Chinese
    assert "住户" in text and "门禁卡" in text


def canvas_report(drv):
    """For each chart: [name, canvas width, height, coloured pixels]."""
    return drv.execute_script("""
        return [...document.querySelectorAll('.chart')].map(box => {
          const c = box.querySelector('canvas');
          if (!c || !c.width || !c.height) return [box.dataset.chart, 0, 0, 0];
          const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < px.length; i += 4) {
            const [r, g, b, a] = [px[i], px[i + 1], px[i + 2], px[i + 3]];
            if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
          }
          return [box.dataset.chart, c.width, c.height, n];
        });""")


def test_needs_board(env, world, browser, views):
    """A need opened on the ledger's topic: open → assign vol-07 → delivered,
    from the board, and PostgreSQL says so at each step."""
    _, web = world
    drv = browser
    publish_many(env.broker.port, [("cordon/%s/need" % SITE, json.dumps({
        "need_id": "N-1", "id": "1", "action": "open", "ts": now_ts(), "household": HH,
        "category": "medicine"}).encode())])
    wait_until(lambda: env.pg.count("needs", "site = %s AND need_id = 'N-1'", (SITE,)),
               what="need N-1 in PostgreSQL")
    go(drv, web, "needs")

    def card(column):
        return until(drv, lambda d: css(d, "section.col-%s article.need[data-need-id=N-1]" % column),
                     "N-1 in the %s column" % column)[0]
    c = card("open")
    assert "药品" in c.text and HH in c.text
    Select(c.find_element(By.TAG_NAME, "select")).select_by_value("vol-07")
    next(b for b in c.find_elements(By.TAG_NAME, "button") if b.text == "分配").click()
    wait_until(lambda: env.pg.query("SELECT status, assigned_to FROM needs WHERE site = %s"
                                    " AND need_id = 'N-1'", (SITE,)) == [("assigned", "vol-07")],
               what="N-1 assigned to vol-07")
    c = card("assigned")
    assert "vol-07" in c.text
    next(b for b in c.find_elements(By.TAG_NAME, "button") if b.text == "标记送达").click()
    wait_until(lambda: env.pg.scalar("SELECT status FROM needs WHERE site = %s AND need_id = 'N-1'",
                                     (SITE,)) == "delivered", what="N-1 delivered")
    c = card("delivered")
    assert not c.find_elements(By.TAG_NAME, "button")


def test_report_draws_its_charts(env, world, browser, views):
    """Screenshots: report-desktop.png and report-phone.png in Chinese (the
    console's language; a machine without a CJK font draws boxes for it), and
    the same in English (-en.png)."""
    _, web = world
    drv = browser
    os.makedirs(ARTIFACTS, exist_ok=True)
    shots = []
    for lang, suffix in (("zh-CN", ""), ("en", "-en")):
        if drv.execute_script("return document.documentElement.lang") != lang:
            drv.find_element(By.CSS_SELECTOR, ".tools .lang-switch").click()
            until(drv, lambda d: d.execute_script("return document.documentElement.lang") == lang, lang)
        for width, height, name in ((1280, 900, "desktop"), (375, 812, "phone")):
            drv.set_window_size(width, height)
            go(drv, web, "report")
            until(drv, lambda d: len(css(d, ".chart canvas")) == 3, "three charts")
            charts = until(drv, lambda d: (lambda r: all(n > 100 for *_, n in r) and r)(canvas_report(d)),
                           "the charts drawn (coloured pixels in each canvas)")
            assert [c[0] for c in charts] == ["hourly", "temperatures", "disinfections"], charts
            for c in charts:
                assert c[1] > 100 and c[2] > 100, c
            # No sideways scroll of the page, at either width.
            assert drv.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
            sections = [s.get_attribute("data-section") for s in css(drv, "section.report-section")]
            assert "gates" in sections and "zones" in sections, sections
            gates = drv.find_element(By.CSS_SELECTOR, "section.report-section[data-section=gates]")
            assert "G01" in gates.text
            shot = os.path.join(ARTIFACTS, "report-%s%s.png" % (name, suffix))
            assert drv.save_screenshot(shot)
            shots.append(shot)
    drv.find_element(By.CSS_SELECTOR, ".tools .lang-switch").click()
    until(drv, lambda d: d.execute_script("return document.documentElement.lang") == "zh-CN", "zh-CN")
    drv.set_window_size(1280, 900)
    print("screenshots: %s" % " ".join(shots))
    # The CSV download: the link's answer is the report as CSV.
    link = drv.find_element(By.CSS_SELECTOR, "a.csv")
    href = link.get_attribute("href")
    assert re.search(r"/api/report\.csv\?site=%s&date=\d{4}-\d\d-\d\d$" % SITE, href), href
    assert link.get_attribute("download") is not None
    got = drv.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(r => r.text().then(t => done([r.status,
          r.headers.get('Content-Type'), t]))).catch(e => done([0, '', String(e)]));""", href)
    assert got[0] == 200 and got[1].startswith("text/csv"), got[:2]
    assert "G01" in got[2], got[2][:500]


# Every text node and placeholder/title/aria-label outside data (class "d")
# and outside elements marked as another language (lang="en": the switch).
LATIN_WORDS = """
    const skip = (el) => el && el.closest('.d, [lang]:not([lang="zh-CN"]), script, style, .u-legend');
    const words = [];
    const add = (s, where) => (s.match(/[A-Za-z]{2,}/g) || []).forEach(w => words.push([w, where]));
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!skip(el) && el.getClientRects().length) add(n.textContent, el.outerHTML.slice(0, 120));
    }
    for (const el of document.querySelectorAll('[placeholder], [title], [aria-label]'))
      if (!skip(el)) for (const a of ['placeholder', 'title', 'aria-label'])
        if (el.hasAttribute(a)) add(el.getAttribute(a), a + ' of ' + el.outerHTML.slice(0, 120));
    add(document.title, 'title');
    return words;"""


def test_chinese_page_has_no_english(env, world, browser, views):
    _, web = world
    drv = browser
    assert drv.execute_script("return document.documentElement.lang") == "zh-CN"
    acked = env.pg.scalar("SELECT alert_id FROM alerts WHERE site = %s AND state = 'acked'", (SITE,))
    for page in PAGES + ["alert/" + acked]:
        go(drv, web, page)
        until(drv, lambda d: not css(d, "p.loading") and d.find_element(By.ID, "main").text,
              "page %s loaded" % page)
        until(drv, lambda d: not d.find_elements(By.CSS_SELECTOR, "main .error"), "no error on " + page)
        left = [w for w in drv.execute_script(LATIN_WORDS) if w[0] not in ALLOWED_LATIN]
        assert not left, "English on the Chinese page %s: %s" % (page, left[:10])
    # The history, searched by kind and subject: both fevers, in Chinese.
    go(drv, web, "alerts")
    Select(drv.find_element(By.ID, "h-kind")).select_by_value("fever")
    drv.find_element(By.ID, "h-subject").send_keys("person:P-" + Keys.ENTER)
    rows = until(drv, lambda d: css(d, ".history-results tbody tr"), "the history's rows")
    assert len(rows) == 2 and all("发热" in r.text for r in rows), [r.text for r in rows]
    left = [w for w in drv.execute_script(LATIN_WORDS) if w[0] not in ALLOWED_LATIN]
    assert not left, "English in the history: %s" % left
    # The open dialog, too.
    button = until(drv, lambda d: visible(d, "article.alert button.resolve"), "a resolve button")[0]
    button.click()
    until(drv, lambda d: visible(d, "dialog.note-dialog"), "the dialog")
    left = [w for w in drv.execute_script(LATIN_WORDS) if w[0] not in ALLOWED_LATIN]
    drv.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert not left, "English in the dialog: %s" % left
    # The switch turns it all to English, and back.
    drv.find_element(By.CSS_SELECTOR, ".tools .lang-switch").click()
    until(drv, lambda d: d.find_element(By.CSS_SELECTOR, "#nav a").text == "Alerts", "English")
    assert drv.execute_script("return document.documentElement.lang") == "en"
    assert any("fever" in e.text for e in css(drv, "article.alert .label"))
    drv.find_element(By.CSS_SELECTOR, ".tools .lang-switch").click()
    until(drv, lambda d: d.find_element(By.CSS_SELECTOR, "#nav a").text == "告警", "Chinese again")


def test_phone_width(world, browser, views):
    """Every page at 375 px: no sideways scroll; a screenshot of each
    (phone-<page>.png) for a person to look at."""
    _, web = world
    drv = browser
    drv.set_window_size(375, 812)
    try:
        for page in PAGES:
            go(drv, web, page)
            until(drv, lambda d: not css(d, "p.loading") and d.find_element(By.ID, "main").text,
                  "page %s loaded" % page)
            wide = drv.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            assert wide[0] <= wide[1], "page %s scrolls sideways at 375 px: %s" % (page, wide)
            drv.save_screenshot(os.path.join(ARTIFACTS, "phone-%s.png" % page.split("/")[0]))
    finally:
        drv.set_window_size(1280, 900)


def test_no_policy_violations(browser):
    """The browser's log holds no script error and no refusal of the
    Content-Security-Policy (everything comes from cordon-web itself)."""
    bad = [e for e in console(browser) if e["level"] == "SEVERE"
           and not re.search(r"status of (401|403|429)", e["message"])]
    assert not bad, bad


def test_only_its_own_origin(world, browser):
    """Every resource the page loaded came from cordon-web itself."""
    _, web = world
    drv = browser
    go(drv, web, "report")
    until(drv, lambda d: len(css(d, ".chart canvas")) == 3, "three charts")
    urls = drv.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"
                              ".concat([location.href])")
    assert urls and all(u.startswith(web.url("/")) for u in urls), urls
    assert any(u.endswith("/vendor/uPlot.iife.min.js") for u in urls), urls


def test_database_away_then_back(env, world, browser, views):
    """PostgreSQL stops: the next request says "暂时无法连接，正在重试" and
    the page keeps trying; PostgreSQL is back: the banner goes and the
    zones show, without anyone touching the page."""
    _, web = world
    drv = browser
    go(drv, web, "gates")
    until(drv, lambda d: "G01" in d.find_element(By.ID, "main").text, "the gates")
    env.pg.stop()
    try:
        go(drv, web, "zones")
        until(drv, lambda d: visible(d, "#offline-banner"), "the offline banner")
        assert drv.find_element(By.ID, "offline-banner").text == "暂时无法连接，正在重试"
        assert "暂时无法连接" in drv.find_element(By.ID, "main").text
    finally:
        env.pg.start()
    until(drv, lambda d: not visible(d, "#offline-banner") and css(d, "main td[data-col=zone]"),
          "the zones, without the banner", timeout=60)


def test_sound_waits_for_a_click(env, world, browser):
    """A browser that starts sound only after a click (Chromium's default
    autoplay policy): a page reloaded with a critical alert open says so in
    the top bar, and the first click anywhere turns the sound on."""
    _, web = world
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--lang=zh-CN", "--autoplay-policy=document-user-activation-required"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
    # chromedriver's port from the harness: selenium's own is an ephemeral
    # port it binds, closes and hands on, open to the race harness.free_port avoids.
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver", port=harness.free_port()),
                           options=opts)
    try:
        log_in(drv, web, "duty")
        until(drv, lambda d: visible(d, "#logout"), "logged in")
        fever(env, "F-4", "P-9", temp_c=39.0)
        go(drv, web, "alerts")
        until(drv, lambda d: visible(d, "#critical-banner"), "P-9's fever ringing")
        drv.refresh()   # no click on this document yet
        until(drv, lambda d: visible(d, "#critical-banner"), "the banner after the reload")
        hint = until(drv, lambda d: visible(d, "#sound-hint"), "the hint to click for sound")[0]
        assert hint.text == "点页面任意处开启声音"
        drv.find_element(By.CSS_SELECTOR, "main h1").click()
        until(drv, lambda d: not visible(d, "#sound-hint"), "the sound on after a click")
    finally:
        drv.quit()
