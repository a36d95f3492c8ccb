// WebSocket signaling client, protocol v1 (signaling/protocol.py), with automatic reconnection.
// Events: "message" (detail: a server message), "status" (detail: {state, attempt, delay}),
// "fatal" (detail: {code, message}: the token was refused; no reconnect).

const FATAL_CLOSE = new Set([4401, 4403, 4409]); // unauthorized, forbidden, replaced
const PING_EVERY_MS = 10000;
const STALE_MS = 25000;

export function wsUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}

export class Signal extends EventTarget {
  constructor(token) {
    super();
    this.token = token;
    this.ws = null;
    this.seq = 0;
    this.attempt = 0;
    this.stopped = false;
    this.fatal = null;
    this.welcomed = false;
    this.lastSeen = 0;
    this.timer = null;
    this.retry = null;
    this._offline = () => this._lost("offline");
    this._online = () => { if (!this.ws && !this.stopped) this._connect(); };
  }

  start() {
    this.stopped = false;
    window.addEventListener("offline", this._offline);
    window.addEventListener("online", this._online);
    this._connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("offline", this._offline);
    window.removeEventListener("online", this._online);
    clearTimeout(this.retry);
    this._drop();
    this._status("closed");
  }

  get online() { return !!this.ws && this.ws.readyState === WebSocket.OPEN && this.welcomed; }

  send(type, fields = {}) {
    const id = "c" + (++this.seq);
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return null;
    this.ws.send(JSON.stringify({ v: 1, type, id, ...fields }));
    return id;
  }

  _status(state, extra = {}) {
    this.dispatchEvent(new CustomEvent("status", { detail: { state, attempt: this.attempt, ...extra } }));
  }

  _connect() {
    clearTimeout(this.retry);
    this._drop();
    this.welcomed = false;
    this._status(this.attempt ? "reconnecting" : "connecting");
    let ws;
    try { ws = new WebSocket(wsUrl()); } catch (e) { this._schedule(); return; }
    this.ws = ws;
    ws.onopen = () => {
      this.lastSeen = Date.now();
      ws.send(JSON.stringify({ v: 1, type: "hello", id: "hello", token: this.token }));
    };
    ws.onmessage = (ev) => this._onMessage(ev);
    ws.onclose = (ev) => this._onClose(ws, ev);
    ws.onerror = () => {};
    this.timer = setInterval(() => this._keepalive(), PING_EVERY_MS / 2);
  }

  _onMessage(ev) {
    this.lastSeen = Date.now();
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (msg.type === "welcome") {
      this.welcomed = true;
      this.attempt = 0;
      this._status("online");
    }
    if (msg.type === "error" && !this.welcomed && msg.code === "unauthorized") {
      this.fatal = { code: msg.code, message: msg.message };
    }
    this.dispatchEvent(new CustomEvent("message", { detail: msg }));
  }

  _onClose(ws, ev) {
    if (ws !== this.ws) return;
    this._drop();
    if (FATAL_CLOSE.has(ev.code) || this.fatal) {
      const detail = this.fatal || { code: String(ev.code), message: ev.reason || "connection refused" };
      detail.close = ev.code;
      this.stopped = true;
      window.removeEventListener("offline", this._offline);
      window.removeEventListener("online", this._online);
      this.dispatchEvent(new CustomEvent("fatal", { detail }));
      this._status("closed");
      return;
    }
    if (!this.stopped) this._schedule();
  }

  _keepalive() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastSeen > STALE_MS) { this._lost("stale"); return; }
    if (Date.now() - this.lastSeen > PING_EVERY_MS) this.send("ping");
  }

  _lost(why) {
    if (this.stopped || !this.ws) return;
    this._drop();
    this._schedule(why);
  }

  _schedule(why = "closed") {
    this.attempt += 1;
    const delay = Math.min(10000, 500 * 2 ** Math.min(this.attempt, 5)) * (0.8 + Math.random() * 0.4);
    this._status("reconnecting", { delay, why });
    this.retry = setTimeout(() => this._connect(), delay);
  }

  _drop() {
    clearInterval(this.timer);
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch (e) { /* already closed */ }
    }
  }
}
