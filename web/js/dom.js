// Small DOM helpers: build elements, mark data, format times, draw tables.

import { getLang, has, t } from "./i18n.js";

// h("button.primary", {type: "button", onclick: f}, "text", child, ...)
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (k === "class") el.className += (el.className ? " " : "") + v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

// Append children to el, skipping null, undefined and false (Element.append
// would write them as text).
export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// A data value (id, number, time, server text): class "d", so that the
// language test skips it.
export function d(value, cls) {
  return h("span.d" + (cls ? "." + cls : ""), { text: value === null || value === undefined ? "–" : String(value) });
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// "2026-12-01 14:32" in zone tz (the site's; the browser's when unknown).
export function fmtTime(iso, tz, withDate = true) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (isNaN(date)) return String(iso);
  let parts;
  try {
    parts = new Intl.DateTimeFormat("en-GB", {
      timeZone: tz || undefined, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(date);
  } catch (e) {
    return fmtTime(iso, null, withDate);
  }
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  const hm = `${p.hour}:${p.minute}`;
  return withDate ? `${p.year}-${p.month}-${p.day} ${hm}` : hm;
}

// Today as YYYY-MM-DD in zone tz.
export function today(tz) {
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: tz || undefined, year: "numeric", month: "2-digit", day: "2-digit",
  }).formatToParts(new Date()).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}`;
}

const TIME_KEYS = /(_at|^ts|^starts|^ends|^released|^opened|^delivered|^raised|^due|^last_heard|^at)$/;

// A cell's content: words the page knows are translated, times formatted,
// everything else shown as data.
export function cell(key, value, tz) {
  if (value === null || value === undefined || value === "") return d("–");
  if (typeof value === "boolean") return h("span", { text: t("val." + value) });
  if (typeof value === "string" && TIME_KEYS.test(key) && /^\d{4}-\d\d-\d\dT/.test(value))
    return d(fmtTime(value, tz));
  if (typeof value === "string" && has("val." + value) && !/^(need_id|household|gate|zone|card|person|name|note|item|by)$/.test(key))
    return h("span", { text: t("val." + value) });
  if (key === "kind" && has("kind." + value)) return h("span", { text: t("kind." + value) });
  if (Array.isArray(value)) return d(value.join(", "));
  if (typeof value === "object") return d(JSON.stringify(value));
  return d(value);
}

// A heading for a column key: the page's word, else the key as data.
export function colLabel(key) {
  return has("col." + key) ? h("span", { text: t("col." + key) }) : d(key);
}

// A table in a box that scrolls sideways by itself on a phone.
// columns: [{key, label?, render?(row)}]; rows: objects.
export function table(columns, rows, tz, caption) {
  const head = h("tr", columns.map((c) => h("th", { scope: "col" }, c.label ? c.label : colLabel(c.key))));
  const body = rows.map((r) => h("tr", columns.map((c) =>
    h("td", { "data-col": c.key }, c.render ? c.render(r) : cell(c.key, r[c.key], tz)))));
  return h("div.table-wrap", { tabindex: "0", role: "region", "aria-label": caption || t("none") },
    h("table", caption ? h("caption.sr-only", { text: caption }) : null,
      h("thead", head), h("tbody", body)));
}

export function empty(text) {
  return h("p.empty", { text: text || t("none") });
}

export function lang() {
  return getLang();
}

// The text of key with {name} replaced by nodes (e.g. data spans).
export function tn(key, vars) {
  return t(key).split(/(\{\w+\})/).filter((p) => p !== "").map((p) => {
    const m = /^\{(\w+)\}$/.exec(p);
    return m && m[1] in vars ? vars[m[1]] : p;
  });
}
