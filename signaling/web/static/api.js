// REST client for the operator console: bearer token kept in sessionStorage (per browser tab).

const KEY = "giaoban.operator";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function session() {
  try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) { return null; }
}

export function saveSession(doc) { sessionStorage.setItem(KEY, JSON.stringify(doc)); }

export function clearSession() { sessionStorage.removeItem(KEY); }

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const s = session();
  if (s && s.token) headers.Authorization = "Bearer " + s.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "network", "Mất kết nối tới máy chủ (Cannot reach the server)");
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    const e = new ApiError(resp.status, err.code || "http_" + resp.status, err.message || resp.statusText);
    if (resp.status === 401 && s) window.dispatchEvent(new CustomEvent("giaoban-logout", { detail: e }));
    throw e;
  }
  return data;
}

export const login = (username, password) => api("POST", "/api/v1/auth/login", { username, password });
