// The views: alerts (live, history, one alert), gates, zones, isolation,
// the needs board, one household. The report is in report.js.

import { api, canAct, qs } from "./api.js";
import { askNote } from "./dialog.js";
import { append, cell, clear, d, empty, fmtTime, h, table, tn, today } from "./dom.js";
import { getLang, has, KINDS, t } from "./i18n.js";
import * as live from "./live.js";
import { reportView } from "./report.js";

// An error where the view's content goes; 503 and network errors retry.
function failed(box, e, retry) {
  clear(box);
  let key = "err.other";
  if (e.status === 0 || e.status >= 500) key = "err.offline";
  else if (e.status === 403) key = "err.forbidden";
  else if (e.status === 404) key = "err.notfound";
  else if (e.status === 401) return;
  box.append(h("p.error", { role: "alert", text: t(key) }));
  if (key === "err.offline" && retry) setTimeout(retry, 5000);
}

// Load with fn() into box now and every `ms` (5 s after a failure);
// returns the cleanup.
function poll(ctx, box, ms, fn) {
  let timer = null;
  async function run() {
    if (!ctx.alive()) return;
    let wait = ms;
    // Someone is working in the box (a volunteer chosen, a button
    // focused): not now, it would undo their choice.
    const busy = box.contains(document.activeElement) && document.activeElement !== box &&
      box.dataset.loaded === "1";
    try {
      if (!busy) await fn();
      box.dataset.loaded = "1";
    } catch (e) {
      if (ctx.alive()) failed(box, e, null);
      wait = Math.min(ms, 5000);
    }
    if (ctx.alive()) timer = setTimeout(run, wait);
  }
  run();
  return () => clearTimeout(timer);
}

function kindLabel(a) {
  const tx = a.texts && a.texts[getLang()];
  if (tx && tx.label) return tx.label;
  return has("kind." + a.kind) ? t("kind." + a.kind) : a.kind;
}

function noteTooLong(note) {
  return new TextEncoder().encode(note).length > 255 ? t("err.note_long") : null;
}

// Ack or resolve alert a after asking for a note.
async function act(a, action, status) {
  const title = t(action === "ack" ? "alerts.ack.title" : "alerts.resolve.title");
  const summary = h("p.summary", h("span.d", { text: kindLabel(a) }), " · ", d(a.subject));
  const note = await askNote(title, summary, t(action === "ack" ? "alerts.ack" : "alerts.resolve"), noteTooLong);
  if (note === null) return;
  try {
    await api(`/api/alerts/${encodeURIComponent(a.alert_id)}/${action}`, { method: "POST", body: note ? { note } : {} });
    status.textContent = t("alerts.sent");
  } catch (e) {
    status.textContent = e.status === 403 ? t("err.forbidden") : e.status === 404 ? t("err.notfound") :
      e.status === 0 || e.status >= 500 ? t("err.offline") : t("err.other");
  }
}

// One alert as a card.
function alertCard(a, tz, withLink = true) {
  const lang = getLang();
  const tx = (a.texts && a.texts[lang]) || null;
  const silenced = live.isSilenced(a);
  const status = h("p.act-status", { role: "status" });
  const card = h("article.alert", {
    class: `sev-${a.severity} state-${a.state}${silenced ? " silenced" : ""}`,
    "data-alert-id": a.alert_id, "data-state": a.state, "data-severity": a.severity,
  });
  append(card, [
    h("header",
      h("span.badge.sev", { text: has("sev." + a.severity) ? t("sev." + a.severity) : a.severity }),
      h("h3.label", h("span.d", { text: kindLabel(a) })),
      h("span.badge.state", { text: has("state." + a.state) ? t("state." + a.state) : a.state })),
    tx ? h("p.what", d(tx.what)) : h("p.what", d(a.text)),
    tx && tx.todo ? h("p.todo", h("strong", { text: t("alerts.todo") }), d(tx.todo)) : null,
    h("dl.facts",
      h("dt", { text: t("site") }), h("dd", d(a.site)),
      h("dt", { text: t("alerts.subject") }), h("dd", d(a.subject)),
      h("dt", { text: t("alerts.raised_at") }), h("dd", d(fmtTime(a.raised_at, tz))),
      h("dt", { text: t("col.count") }), h("dd", d(a.count))),
    silenced ? h("p.silenced-note", tn("alerts.silenced", { until: d(a.silenced.until ? fmtTime(a.silenced.until, tz) : "–") })) : null,
    a.state === "acked" && a.by ? h("p.acked-by", tn("alerts.acked_by", { by: d(a.by) })) : null]);
  const buttons = h("div.buttons");
  if (canAct() && a.state !== "resolved") {
    if (a.state === "raised")
      buttons.append(h("button.primary.ack", { type: "button", text: t("alerts.ack"), onclick: () => act(a, "ack", status) }));
    buttons.append(h("button.secondary.resolve", { type: "button", text: t("alerts.resolve"), onclick: () => act(a, "resolve", status) }));
  }
  if (withLink) buttons.append(h("a.details", { href: `#/alert/${encodeURIComponent(a.alert_id)}`, text: t("alerts.details") }));
  card.append(buttons, status);
  return card;
}

async function alertsView(ctx) {
  const { main } = ctx;
  const state = h("p.live-state", { role: "status" });
  const list = h("div.alert-list", { "aria-live": "polite" });
  main.append(h("h1", { text: t("alerts.open") }), state, list);

  function render() {
    state.textContent = live.live.connected ? t("alerts.live") : t("alerts.reconnecting");
    state.className = "live-state " + (live.live.connected ? "on" : "off");
    // Keep the keyboard's place across the redraw: the same button of the
    // same alert, else another of its buttons, else its card's first.
    const f = document.activeElement;
    const was = f && list.contains(f) && f.closest("article.alert");
    const focusId = was && was.dataset.alertId;
    const focusClass = was && f.className;
    clear(list);
    const shown = live.sorted().filter((a) => !ctx.site || a.site === ctx.site);
    if (!shown.length) list.append(empty(t("alerts.none")));
    for (const a of shown) list.append(alertCard(a, ctx.zone(a.site)));
    if (focusId) {
      const card = [...list.querySelectorAll("article.alert")].find((c) => c.dataset.alertId === focusId);
      const target = card && ([...card.querySelectorAll("button, a")].find((b) => b.className === focusClass) ||
        card.querySelector("button, a"));
      if (target) target.focus();
    }
  }
  render();
  live.live.listeners.add(render);

  // History and search
  const sites = h("select", { id: "h-site", name: "site" }, h("option", { value: "", text: t("site.all") }),
    ctx.sites.map((s) => h("option.d", { value: s.site, text: s.site })));
  sites.value = ctx.site || "";
  const kinds = h("select", { id: "h-kind", name: "kind" }, h("option", { value: "", text: t("alerts.kind.any") }),
    KINDS.map((k) => h("option", { value: k, text: t("kind." + k) })));
  const subject = h("input", { id: "h-subject", name: "subject", type: "search", autocomplete: "off" });
  const from = h("input", { id: "h-from", name: "from", type: "date" });
  const to = h("input", { id: "h-to", name: "to", type: "date" });
  const results = h("div.history-results");
  let offset = 0;
  const form = h("form.search",
    h("div.field", h("label", { for: "h-site", text: t("site") }), sites),
    h("div.field", h("label", { for: "h-kind", text: t("alerts.kind") }), kinds),
    h("div.field", h("label", { for: "h-subject", text: t("alerts.subject") }), subject),
    h("div.field", h("label", { for: "h-from", text: t("alerts.from") }), from),
    h("div.field", h("label", { for: "h-to", text: t("alerts.to") }), to),
    h("button.primary", { type: "submit", text: t("search") }));
  async function search(more) {
    offset = more ? offset + 50 : 0;
    try {
      const j = await api("/api/alerts" + qs({ state: "all", site: sites.value, kind: kinds.value, subject: subject.value.trim(),
        from: from.value, to: to.value, limit: 50, offset }));
      if (!more) clear(results);
      results.querySelector(".more")?.remove();
      results.querySelector(".total")?.remove();
      const rows = j.alerts || [];
      results.prepend(h("p.total", tn("total", { n: d(j.total ?? rows.length) })));
      results.append(table([
        { key: "raised_at" }, { key: "site" },
        { key: "kind", render: (a) => h("span", { text: kindLabel(a) }) },
        { key: "severity" }, { key: "state" }, { key: "subject" }, { key: "count" },
        { key: "alert_id", label: t("alerts.details"), render: (a) => h("a", { href: `#/alert/${encodeURIComponent(a.alert_id)}`, text: t("alerts.details") }) },
      ], rows, ctx.zone(), t("alerts.history")));
      if ((j.total ?? 0) > offset + rows.length)
        results.append(h("button.secondary.more", { type: "button", text: t("more"), onclick: () => search(true) }));
    } catch (e) {
      failed(results, e, null);
    }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    search(false);
  });
  main.append(h("section.history", h("h2", { text: t("alerts.history") }), form, results));
  return () => live.live.listeners.delete(render);
}

async function alertView(ctx) {
  const { main } = ctx;
  const id = ctx.args[0] || "";
  const box = h("div");
  main.append(h("p", h("a", { href: "#/alerts", text: t("alerts.back") })), box);
  async function load() {
    const j = await api(`/api/alerts/${encodeURIComponent(id)}`);
    if (!ctx.alive()) return;
    clear(box);
    const tz = ctx.zone(j.alert.site);
    box.append(alertCard(j.alert, tz, false),
      h("h2", { text: t("alerts.transitions") }),
      (j.transitions || []).length ? table([{ key: "at" }, { key: "transition" }, { key: "count" }, { key: "severity" }, { key: "by" }, { key: "reason" }],
        j.transitions, tz, t("alerts.transitions")) : empty(),
      h("h2", { text: t("alerts.acks") }),
      (j.acks || []).length ? table([{ key: "ts" }, { key: "action" }, { key: "by" }, { key: "note" }], j.acks, tz, t("alerts.acks")) : empty());
  }
  const redraw = (a) => a && a.alert_id === id && load().catch(() => {});
  live.live.listeners.add(redraw);
  try {
    await load();
  } catch (e) {
    failed(box, e, () => ctx.alive() && load().catch(() => {}));
  }
  return () => live.live.listeners.delete(redraw);
}

function gateState(g) {
  return h("span.badge", { class: "gate-" + g.state, text: t("gates.state." + (g.state === "sealed" ? "sealed" : "open")) });
}

async function gatesView(ctx) {
  const box = h("div");
  ctx.main.append(h("h1", { text: t("gates.title") }), box);
  return poll(ctx, box, 30000, async () => {
    const j = await api("/api/gates" + qs({ site: ctx.site }));
    if (!ctx.alive()) return;
    clear(box);
    const gates = j.gates || [];
    if (!gates.length) return box.append(empty());
    box.append(table([
      ...(ctx.site ? [] : [{ key: "site" }]),
      { key: "gate" }, { key: "state", render: gateState },
      { key: "status", render: (g) => g.status ? h("span", { class: "st-" + g.status, text: t("status." + g.status) }) : d(null) },
      { key: "last_heard" }, { key: "passes_today" },
      { key: "fevers_today", render: (g) => h("span.d", { class: g.fevers_today ? "warn" : "", text: String(g.fevers_today ?? 0) }) },
      { key: "active", render: (g) => g.active === false ? h("span", { text: t("inactive") }) : h("span", { text: t("val.true") }) },
    ], gates, ctx.zone(), t("gates.title")));
  });
}

async function zonesView(ctx) {
  const box = h("div");
  ctx.main.append(h("h1", { text: t("zones.title") }), box);
  return poll(ctx, box, 30000, async () => {
    const j = await api("/api/zones" + qs({ site: ctx.site, date: today(ctx.zone()) }));
    if (!ctx.alive()) return;
    clear(box);
    const zones = j.zones || [];
    if (!zones.length) return box.append(empty());
    box.append(table([
      ...(ctx.site ? [] : [{ key: "site" }]),
      { key: "zone" }, { key: "done" }, { key: "due" },
      { key: "progress", render: (z) => h("span.progress",
        h("meter", { min: "0", max: String(Math.max(1, z.due || 0)), value: String(z.done || 0), "aria-label": t("col.progress") }),
        z.due && z.done < z.due ? h("span.badge.behind", { text: t("zones.behind") }) : null) },
      { key: "per_day" }, { key: "last_at" },
    ], zones, ctx.zone(), t("zones.title")));
  });
}

function hhLink(site, hh) {
  return h("a.d", { href: `#/household/${encodeURIComponent(site)}/${encodeURIComponent(hh)}`, text: hh });
}

async function isolationView(ctx) {
  const box = h("div");
  ctx.main.append(h("h1", { text: t("isolation.title") }), box);
  return poll(ctx, box, 30000, async () => {
    const j = await api("/api/isolation" + qs({ site: ctx.site }));
    if (!ctx.alive()) return;
    clear(box);
    const rows = j.households || [];
    if (!rows.length) return box.append(empty());
    box.append(table([
      ...(ctx.site ? [] : [{ key: "site" }]),
      { key: "household", render: (r) => hhLink(r.site, r.household) },
      { key: "building" }, { key: "unit" }, { key: "room" }, { key: "persons" },
      { key: "starts" }, { key: "ends" }, { key: "checks_today" }, { key: "last_check_at" },
      { key: "last_temp_c" }, { key: "calls_today" }, { key: "reached_today" }, { key: "open_needs" },
    ], rows, ctx.zone(), t("isolation.title")));
  });
}

function needCard(n, vols, tz, refresh) {
  const status = h("p.act-status", { role: "status" });
  const card = h("article.need", { class: "need-" + n.status + (n.overdue ? " overdue" : ""), "data-need-id": n.need_id });
  card.append(
    h("header", h("strong.d", { text: n.need_id }), " ",
      h("span", { text: t("col.household") + " " }), hhLink(n.site, n.household),
      n.overdue ? h("span.badge.behind", { text: t("needs.overdue") }) : null),
    h("dl.facts",
      h("dt", { text: t("col.category") }), h("dd", cell("category", n.category)),
      h("dt", { text: t("col.opened_at") }), h("dd", d(fmtTime(n.opened_at, tz))),
      n.due ? [h("dt", { text: t("col.due") }), h("dd", d(fmtTime(n.due, tz)))] : null,
      n.assigned_to ? [h("dt", { text: t("col.assigned_to") }), h("dd", d(n.assigned_to))] : null,
      n.delivered_at ? [h("dt", { text: t("col.delivered_at") }), h("dd", d(fmtTime(n.delivered_at, tz)))] : null,
      n.note ? [h("dt", { text: t("col.note") }), h("dd", d(n.note))] : null));
  if (canAct() && (n.status === "open" || n.status === "assigned")) {
    const id = `vol-${n.site}-${n.need_id}`;
    const sel = h("select", { id }, vols.filter((v) => v.site === n.site).map((v) =>
      h("option.d", { value: v.volunteer, text: v.team ? `${v.volunteer} (${v.team})` : v.volunteer })));
    if (n.assigned_to) sel.value = n.assigned_to;
    const path = `/api/needs/${encodeURIComponent(n.site)}/${encodeURIComponent(n.need_id)}/`;
    async function post(action, body) {
      try {
        await api(path + action, { method: "POST", body });
        status.textContent = t("alerts.sent");
        setTimeout(refresh, 1500);
      } catch (e) {
        status.textContent = e.status === 403 ? t("err.forbidden") : e.status >= 500 ? t("err.offline") : t("err.other");
      }
    }
    card.append(h("div.buttons",
      h("label", { for: id, text: t("needs.volunteer") }), sel,
      h("button.secondary", { type: "button", text: t("needs.assign"), disabled: !sel.options.length,
        onclick: () => sel.value && post("assign", { volunteer: sel.value }) }),
      n.status === "assigned" ? h("button.primary", { type: "button", text: t("needs.deliver"), onclick: () => post("deliver", {}) }) : null));
  }
  card.append(status);
  return card;
}

async function needsView(ctx) {
  const box = h("div.board");
  ctx.main.append(h("h1", { text: t("needs.title") }), box);
  let load;
  const stop = poll(ctx, box, 15000, load = async () => {
    const [a, b, v] = await Promise.all([
      api("/api/needs" + qs({ site: ctx.site })),
      api("/api/needs" + qs({ site: ctx.site, status: "delivered" })),
      canAct() ? api("/api/volunteers" + qs({ site: ctx.site })) : Promise.resolve({ volunteers: [] }),
    ]);
    if (!ctx.alive()) return;
    clear(box);
    const delivered = (b.needs || []).sort((x, y) => String(y.delivered_at).localeCompare(String(x.delivered_at))).slice(0, 20);
    const seen = new Set();
    const all = [...(a.needs || []), ...delivered].filter((n) => {
      const k = n.site + "/" + n.need_id;
      return !seen.has(k) && seen.add(k);
    });
    for (const col of ["open", "assigned", "delivered"]) {
      const items = all.filter((n) => n.status === col);
      box.append(h("section.column", { class: "col-" + col },
        h("h2", t("needs.col." + col), " ", h("span.count.d", { text: String(items.length) })),
        items.length ? items.map((n) => needCard(n, v.volunteers || [], ctx.zone(n.site), () => ctx.alive() && load())) : empty()));
    }
  });
  return stop;
}

const HOUSEHOLD_SECTIONS = ["alerts", "isolation_orders", "isolation_checks", "welfare_calls", "needs",
  "dropoffs", "passes", "residents", "cards"];

async function householdView(ctx) {
  const [site, hh] = ctx.args;
  const box = h("div");
  ctx.main.append(h("h1", t("household.title"), " ", d(`${site || ""}/${hh || ""}`)), box);
  return poll(ctx, box, 30000, async () => {
    const j = await api(`/api/households/${encodeURIComponent(site || "")}/${encodeURIComponent(hh || "")}`);
    if (!ctx.alive()) return;
    clear(box);
    const tz = j.timezone || ctx.zone(site);
    const info = h("dl.facts.household-info");
    for (const k of ["building", "unit", "room", "size", "phone"])
      info.append(h("dt", { text: t("col." + k) }), h("dd", cell(k, j[k], tz)));
    box.append(h("section", h("h2", { text: t("household.info") }), info));
    for (const key of HOUSEHOLD_SECTIONS) {
      const s = j[key];
      if (!s) continue;
      const items = s.items || [];
      const head = h("h2", t("sec." + key), " ", h("span.count.d", { text: String(s.total ?? items.length) }));
      const cols = items.length ? Object.keys(items[0]).map((k) => ({ key: k })) : [];
      const sec = h("section.hh-section", { "data-section": key }, head,
        items.length < (s.total || 0) ? h("p.note", { text: t("sec.shown", { n: items.length }) }) : null,
        items.length ? table(cols, items, tz, t("sec." + key)) : empty());
      box.append(sec);
    }
  });
}

export const views = {
  alerts: alertsView,
  alert: alertView,
  gates: gatesView,
  zones: zonesView,
  isolation: isolationView,
  needs: needsView,
  household: householdView,
  report: reportView,
};
