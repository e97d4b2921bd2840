// The open alerts, live: GET /api/events (Server-Sent Events: a snapshot,
// then one event per transition). Keeps the tab title, the critical banner
// and the beep in step with them on every page.

import { t } from "./i18n.js";

export const live = { alerts: new Map(), source: null, connected: false, listeners: new Set() };

let es = null;
let beepTimer = null;
let audio = null;
let muted = localStorage.getItem("cordon.muted") === "1";
let baseTitle = "";

export function start(onClosed) {
  stop();
  es = new EventSource("/api/events");
  es.addEventListener("snapshot", (e) => {
    const j = JSON.parse(e.data);
    live.alerts.clear();
    for (const a of j.alerts || []) live.alerts.set(a.alert_id, a);
    live.source = j.source;
    live.connected = true;
    changed();
  });
  es.addEventListener("alert", (e) => {
    const a = JSON.parse(e.data);
    if (a.state === "resolved") live.alerts.delete(a.alert_id);
    else live.alerts.set(a.alert_id, Object.assign({}, live.alerts.get(a.alert_id), a));
    changed(a);
  });
  es.addEventListener("open", () => {
    live.connected = true;
    changed();
  });
  es.addEventListener("error", () => {
    live.connected = false;
    changed();
    // CLOSED: the server answered with no stream (401, 503): the browser
    // will not retry by itself.
    if (es && es.readyState === EventSource.CLOSED) onClosed();
  });
}

export function stop() {
  if (es) es.close();
  es = null;
  live.alerts.clear();
  live.connected = false;
  changed();
}

// Open alerts, critical first, then newest.
export function sorted() {
  const rank = { critical: 0, warning: 1, info: 2 };
  return [...live.alerts.values()].sort((a, b) =>
    (rank[a.severity] ?? 3) - (rank[b.severity] ?? 3) ||
    String(b.updated_at || b.raised_at).localeCompare(String(a.updated_at || a.raised_at)));
}

export function isSilenced(a) {
  return !!(a.silenced && (!a.silenced.until || new Date(a.silenced.until) > new Date()));
}

// Critical, not acknowledged, not silenced: what rings.
export function urgent() {
  return [...live.alerts.values()].filter((a) => a.severity === "critical" && a.state === "raised" && !isSilenced(a));
}

function changed(a) {
  for (const f of live.listeners) f(a);
  sync();
}

export function setBaseTitle(s) {
  baseTitle = s;
  sync();
}

export function isMuted() {
  return muted;
}

export function setMuted(m) {
  muted = m;
  localStorage.setItem("cordon.muted", m ? "1" : "0");
  sync();
}

// The tab title, the banner and the beep.
export function sync() {
  const n = urgent().length;
  document.title = (n ? `(${n}) ` : "") + baseTitle;
  const banner = document.getElementById("critical-banner");
  if (banner) {
    banner.hidden = n === 0;
    const text = document.getElementById("critical-text");
    if (text) text.textContent = t("alerts.critical_banner", { n });
  }
  const hint = document.getElementById("sound-hint");
  if (hint) hint.hidden = !(n && !muted && audio && audio.state === "suspended");
  if (n && !muted) {
    if (!beepTimer) {
      beep();
      beepTimer = setInterval(beep, 2500);
    }
  } else if (beepTimer) {
    clearInterval(beepTimer);
    beepTimer = null;
  }
}

// The audio context. A browser keeps it suspended until someone has
// clicked or typed on the page (a reload with a live session: nobody has
// yet): then a hint in the top bar says so, and the first click or key
// anywhere turns the sound on.
function ensureAudio() {
  if (!audio) {
    audio = new (window.AudioContext || window.webkitAudioContext)();
    audio.addEventListener("statechange", sync);
    const wake = () => audio.state === "suspended" && audio.resume().then(sync, sync);
    document.addEventListener("pointerdown", wake, true);
    document.addEventListener("keydown", wake, true);
    audio.resume().then(sync, sync);
    setTimeout(sync, 500);
  }
  return audio;
}

// Two short tones from WebAudio: no file to load.
function beep() {
  try {
    ensureAudio();
    const now = audio.currentTime;
    for (const [i, f] of [[0, 880], [1, 660]]) {
      const o = audio.createOscillator();
      const g = audio.createGain();
      o.frequency.value = f;
      o.type = "square";
      g.gain.setValueAtTime(0.0001, now + i * 0.25);
      g.gain.exponentialRampToValueAtTime(0.2, now + i * 0.25 + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.25 + 0.22);
      o.connect(g).connect(audio.destination);
      o.start(now + i * 0.25);
      o.stop(now + i * 0.25 + 0.24);
    }
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  } catch (e) {
    // no audio device: the banner and the title still say it
  }
}
