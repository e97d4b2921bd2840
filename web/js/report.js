// The daily report: charts where people would rather look than read
// (uPlot, copied into the install by build.sh), the sections as tables,
// a CSV download and a date picker.

import { api, qs } from "./api.js";
import { clear, d, empty, h, table, today } from "./dom.js";
import { has, t } from "./i18n.js";

const COLORS = { passes: "#2563eb", fevers: "#dc2626", temps: "#ea580c", done: "#16a34a", due: "#93c5fd" };

// A chart box; draws when it has a width, redraws when that changes.
function chartBox(name, title, make, keys) {
  const box = h("div.chart", { "data-chart": name, role: "img", "aria-label": title });
  let plot = null;
  const ro = new ResizeObserver(() => {
    const w = Math.floor(box.clientWidth);
    if (w < 50) return;
    if (!plot) plot = make(box, w);
    else plot.setSize({ width: w, height: 220 });
  });
  ro.observe(box);
  const fig = h("figure.chart-figure", h("figcaption", { text: title }), keys ? legend(keys) : null, box);
  fig.cleanup = () => {
    ro.disconnect();
    if (plot) plot.destroy();
  };
  return fig;
}

// Counts have whole-number ticks.
const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

function bars(opts) {
  return window.uPlot.paths.bars(opts);
}

function hourlyChart(passes, fevers) {
  const xs = [...Array(24).keys()];
  return chartBox("hourly", t("report.passes"), (el, width) => new window.uPlot({
    width, height: 220, legend: { show: false }, cursor: { show: false },
    scales: { x: { time: false, range: [-0.5, 23.5] }, f: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [
      { label: t("report.hour"), values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : "")) },
      { label: t("report.passes.s"), incrs: WHOLE },
      { scale: "f", side: 1, label: t("report.fevers"), grid: { show: false }, incrs: WHOLE },
    ],
    series: [
      {},
      { label: t("report.passes.s"), stroke: COLORS.passes, fill: COLORS.passes + "99", paths: bars({ size: [0.7, 40] }), points: { show: false } },
      { label: t("report.fevers"), scale: "f", stroke: COLORS.fevers, width: 2, points: { show: true, size: 5 } },
    ],
  }, [xs, passes.map(Number), fevers.map(Number)], el), [["report.passes.s", "passes"], ["report.fevers", "fevers"]]);
}

function tempChart(temps) {
  const sorted = [...temps].sort((a, b) => a.temp_c - b.temp_c);
  const xs = sorted.map((r) => Number(r.temp_c));
  const ys = sorted.map((r) => Number(r.n));
  const step = xs.length > 1 ? Math.min(...xs.slice(1).map((x, i) => x - xs[i]).filter((x) => x > 0), 0.1) : 0.1;
  return chartBox("temperatures", t("report.temps"), (el, width) => new window.uPlot({
    width, height: 220, legend: { show: false }, cursor: { show: false },
    scales: {
      x: { time: false, range: xs.length ? [xs[0] - step, xs[xs.length - 1] + step] : [35, 40] },
      y: { range: (u, min, max) => [0, Math.max(1, max)] },
    },
    axes: [{ label: "°C", values: (u, vals) => vals.map((v) => v.toFixed(1)) }, { label: t("report.n"), incrs: WHOLE }],
    series: [{}, { label: t("report.n"), stroke: COLORS.temps, fill: COLORS.temps + "aa", paths: bars({ size: [0.8, 30] }), points: { show: false } }],
  }, [xs, ys], el));
}

function zoneChart(rows) {
  const xs = rows.map((r, i) => i);
  return chartBox("disinfections", t("report.disinfections"), (el, width) => new window.uPlot({
    width, height: 220, legend: { show: false }, cursor: { show: false },
    scales: { x: { time: false, range: [-0.6, Math.max(0, rows.length - 1) + 0.6] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [
      { label: t("col.zone"), splits: () => xs, values: (u, vals) => vals.map((v) => (rows[v] ? rows[v].zone : "")) },
      { label: t("report.n"), incrs: WHOLE },
    ],
    series: [
      {},
      { label: t("report.done"), stroke: COLORS.done, fill: COLORS.done + "cc", paths: bars({ size: [0.35, 40], align: -1 }), points: { show: false } },
      { label: t("report.due"), stroke: COLORS.due, fill: COLORS.due + "cc", paths: bars({ size: [0.35, 40], align: 1 }), points: { show: false } },
    ],
  }, [xs, rows.map((r) => Number(r.done)), rows.map((r) => Number(r.due))], el), [["report.done", "done"], ["report.due", "due"]]);
}

function legend(items) {
  return h("ul.legend", items.map(([key, color]) => h("li", h("span.swatch", { class: "sw-" + color }), t(key))));
}

export async function reportView(ctx) {
  const { main } = ctx;
  const site = ctx.site || (ctx.sites[0] && ctx.sites[0].site) || "";
  const tz = ctx.zone(site);
  const date = h("input", { id: "report-date", type: "date", value: ctx.args[0] || today(tz) });
  const csv = h("a.button.csv", { download: "", href: "#" , text: t("report.csv") });
  const box = h("div.report-body");
  let figures = [];
  main.append(h("h1", t("report.title"), " ", d(site)),
    h("div.report-controls", h("label", { for: "report-date", text: t("report.date") }), date, csv), box);

  async function load() {
    for (const f of figures) f.cleanup();
    figures = [];
    csv.href = "/api/report.csv" + qs({ site, date: date.value });
    clear(box).append(h("p.loading", { text: t("loading") }));
    let j;
    try {
      j = await api("/api/report" + qs({ site, date: date.value }));
    } catch (e) {
      clear(box).append(h("p.error", { role: "alert", text: e.status >= 500 || e.status === 0 ? t("err.offline") : e.status === 403 ? t("err.forbidden") : t("err.other") }));
      return;
    }
    if (!ctx.alive()) return;
    clear(box);
    const c = j.charts || {};
    const charts = h("div.charts");
    figures.push(hourlyChart(c.passes_per_hour || Array(24).fill(0), c.fevers_per_hour || Array(24).fill(0)));
    figures.push(tempChart(c.temperatures || []));
    figures.push(zoneChart(c.disinfections || []));
    charts.append(...figures);
    box.append(charts);
    for (const s of j.sections || []) {
      const title = has("sec." + s.name) ? t("sec." + s.name) : s.title;
      const rows = (s.rows || []).map((r) => Object.fromEntries(s.columns.map((k, i) => [k, r[i]])));
      box.append(h("section.report-section", { "data-section": s.name },
        has("sec." + s.name) ? h("h2", { text: title }) : h("h2", d(title)),
        rows.length ? table(s.columns.map((k) => ({ key: k })), rows, j.timezone || tz, title) : empty()));
    }
  }
  date.addEventListener("change", () => {
    history.replaceState(null, "", `#/report/${date.value}`);
    load();
  });
  await load();
  return () => figures.forEach((f) => f.cleanup());
}
