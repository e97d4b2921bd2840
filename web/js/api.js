// The HTTP API of cordon-web (docs/web.md): JSON in and out, the session's
// CSRF token on every POST, errors as ApiError. A 401 sends the page back
// to the login; a 503 or a network failure shows the offline banner.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code || "HTTP " + status);
    this.status = status;
    this.code = code || "";
    this.retryAfter = retryAfter;
  }
}

export const session = { name: null, role: null, sites: [], csrf: null };
const hooks = { loginRequired: () => {}, offline: () => {}, online: () => {} };

export function onApi(h) {
  Object.assign(hooks, h);
}

export async function api(path, { method = "GET", body, quiet401 = false } = {}) {
  const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET") {
    opts.headers["Content-Type"] = "application/json";
    if (session.csrf) opts.headers["X-CSRF-Token"] = session.csrf;
    opts.body = JSON.stringify(body || {});
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    hooks.offline();
    throw new ApiError(0, "network", String(e));
  }
  let j = null;
  if (r.status !== 204) {
    try {
      j = await r.json();
    } catch (e) {
      j = null;
    }
  }
  if (r.ok) {
    hooks.online();
    return j;
  }
  const retry = parseInt(r.headers.get("Retry-After") || "", 10);
  const err = new ApiError(r.status, j && j.error, j && j.message, isNaN(retry) ? null : retry);
  if (r.status === 401 && err.code !== "bad_login" && !quiet401) hooks.loginRequired();
  if (r.status === 503 || r.status === 502 || r.status === 504) hooks.offline();
  else hooks.online();
  throw err;
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") u.set(k, v);
  const s = u.toString();
  return s ? "?" + s : "";
}

export function canAct() {
  return session.role === "operator" || session.role === "admin";
}
