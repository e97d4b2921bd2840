// The console's page: login, the top bar, hash routing to the views.

import { api, onApi, session } from "./api.js";
import { clear, h } from "./dom.js";
import { applyStatic, getLang, setLang, t } from "./i18n.js";
import * as live from "./live.js";
import { views } from "./views.js";

const $ = (id) => document.getElementById(id);
const state = { sites: [], site: localStorage.getItem("cordon.site") || "", cleanup: null, gen: 0 };

function siteZone(site) {
  const s = state.sites.find((x) => x.site === (site || state.site)) || state.sites[0];
  return s ? s.timezone : undefined;
}

function applyLang() {
  applyStatic();
  for (const b of document.querySelectorAll(".lang-switch")) {
    b.textContent = t("lang.switch");
    b.lang = getLang() === "en" ? "zh-CN" : "en";
  }
  const m = $("mute");
  m.textContent = live.isMuted() ? t("sound.off") : t("sound.on");
  m.setAttribute("aria-pressed", live.isMuted() ? "true" : "false");
  live.setBaseTitle(t("app.title"));
  showWho();
  fillSites();
}

function showWho() {
  const who = $("who");
  clear(who);
  if (session.name) who.append(h("span.d", { text: session.name }), " · ", t("role." + session.role));
}

function fillSites() {
  const sel = $("site-select");
  clear(sel);
  if (state.sites.length !== 1) sel.append(h("option", { value: "", text: t("site.all") }));
  for (const s of state.sites) sel.append(h("option.d", { value: s.site, text: s.site }));
  if (!state.sites.some((s) => s.site === state.site)) state.site = state.sites.length === 1 ? state.sites[0].site : "";
  sel.value = state.site;
  sel.hidden = state.sites.length === 0;
}

function showLogin(message) {
  live.stop();
  session.name = session.role = session.csrf = null;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-password").value = "";
  $("login-name").focus();
}

async function enter(me) {
  Object.assign(session, me);
  $("login").hidden = true;
  $("app").hidden = false;
  try {
    state.sites = (await api("/api/sites")).sites || [];
  } catch (e) {
    state.sites = [];
  }
  applyLang();
  live.start(reconnect);
  if (!location.hash || location.hash === "#/" || location.hash === "#/login") location.hash = "#/alerts";
  else route();
}

// The event stream ended (the server refused it): find out why, then retry.
async function reconnect() {
  try {
    await api("/api/me");
  } catch (e) {
    if (e.status === 401) return; // the hook shows the login
  }
  setTimeout(() => session.name && live.start(reconnect), 3000);
}

async function login(ev) {
  ev.preventDefault();
  const name = $("login-name").value.trim();
  const password = $("login-password").value;
  const err = $("login-error");
  if (!name || !password) {
    err.textContent = t("login.empty");
    return;
  }
  $("login-submit").disabled = true;
  try {
    const me = await api("/api/login", { method: "POST", body: { name, password } });
    err.textContent = "";
    await enter(me);
  } catch (e) {
    $("login-password").value = "";
    if (e.code === "locked" || e.status === 429)
      err.textContent = t("login.locked", { m: Math.max(1, Math.ceil((e.retryAfter || 60) / 60)) });
    else if (e.status === 401) err.textContent = t("login.bad");
    else if (e.status === 0 || e.status >= 500) err.textContent = t("err.offline");
    else err.textContent = t("err.other");
    $("login-password").focus();
  } finally {
    $("login-submit").disabled = false;
  }
}

async function logout() {
  try {
    await api("/api/logout", { method: "POST", body: {} });
  } catch (e) {
    // ended anyway
  }
  showLogin();
}

// #/page/arg/arg
function route() {
  if (!session.name) return;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const name = parts[0] || "alerts";
  const view = views[name] || views.alerts;
  for (const a of document.querySelectorAll("#nav a"))
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  if (state.cleanup) state.cleanup();
  state.cleanup = null;
  const main = clear($("main"));
  main.dataset.view = name;
  const gen = ++state.gen;
  const ctx = { main, args: parts.slice(1), site: state.site, sites: state.sites, zone: siteZone,
    alive: () => gen === state.gen };
  Promise.resolve(view(ctx)).then((c) => {
    if (gen === state.gen) state.cleanup = c || null;
    else if (c) c();
  });
}

onApi({
  loginRequired: () => session.name && showLogin(),
  offline: () => ($("offline-banner").hidden = false),
  online: () => ($("offline-banner").hidden = true),
});

function init() {
  setLang(getLang());
  applyLang();
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  for (const b of document.querySelectorAll(".lang-switch"))
    b.addEventListener("click", () => {
      setLang(getLang() === "en" ? "zh-CN" : "en");
      applyLang();
      route();
    });
  $("mute").addEventListener("click", () => {
    live.setMuted(!live.isMuted());
    applyLang();
  });
  $("site-select").addEventListener("change", (e) => {
    state.site = e.target.value;
    localStorage.setItem("cordon.site", state.site);
    route();
  });
  window.addEventListener("hashchange", route);
  boot();
}

// Who is logged in: the app, or the login; while the server cannot say
// (503, no answer), the offline banner and another try in 5 s.
function boot() {
  api("/api/me", { quiet401: true }).then(enter, (e) => {
    if (e.status === 401) showLogin();
    else setTimeout(boot, 5000);
  });
}

init();
