// Test-session mode: check every room before the meeting. "Test rooms" schedules a 30-minute
// meeting starting now through the ordinary REST API (title TITLE, the chosen selectors, a
// provincial chair); room terminals join it by themselves like any meeting. Every 2 s the
// checklist is rebuilt from GET /live (participants + per-endpoint media from the media node)
// and GET /presence: online, joined, sending audio, sending video, loss ok -> ready.
// "End the test" cancels that meeting, which sends the terminals out again.
import { api } from "./api.js";
import { districtOf, loadDirectory } from "./directory.js";
import { vnNow } from "./schedule.js";

export const TITLE = "Kiểm tra điểm cầu";
const MINUTES = 30;
const POLL_MS = 2000;
const LOSS_OK_PCT = 3;  // same line as the "fair" grade of mcu/meeting/quality.py
const $ = (id) => document.getElementById(id);
const CHECKS = [
  ["online", "ngoại tuyến (offline)"], ["joined", "chưa vào phiên kiểm tra (not joined)"],
  ["audio", "không có tiếng (no audio)"], ["video", "không có hình (no video)"], ["loss", "mất gói nhiều (packet loss)"],
];

export class TestRooms {
  constructor({ notify }) {
    this.notify = notify;
    this.meeting = null;
    this.timer = null;
    this.loaded = false;
    $("t-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.start(); });
    $("t-stop").addEventListener("click", () => this.stop());
  }

  async show() {
    this.dir = await loadDirectory();
    if (!this.loaded) {
      const chairs = this.dir.endpoints.filter((e) => e.tier === "province" || e.tier === "central");
      $("t-chair").replaceChildren(...chairs.map((e) => new Option(`${e.name} (${e.id})`, e.id)));
      const ubnd = chairs.find((e) => e.id === "hg-ubnd") || chairs.find((e) => e.tier === "province");
      if (ubnd) $("t-chair").value = ubnd.id;
      this.loaded = true;
    }
    if (!this.meeting) await this.resume();
    if (this.meeting) this.watch();
  }

  hide() { clearInterval(this.timer); this.timer = null; }

  // A test session still open (the console was reloaded): pick it up again.
  async resume() {
    const doc = await api("GET", "/api/v1/meetings?active=true");
    const tests = doc.meetings.filter((m) => m.title === TITLE && m.status !== "cancelled")
      .sort((a, b) => b.start.localeCompare(a.start));
    for (const m of tests) {
      const live = await api("GET", `/api/v1/meetings/${encodeURIComponent(m.id)}/live`);
      if (live.open) { await this.track(m); return; }
    }
  }

  async start() {
    const err = $("t-error");
    err.classList.add("hidden");
    const invited = $("t-invited").value.split(/[\n,;]+/).map((s) => s.trim()).filter(Boolean);
    try {
      const m = await api("POST", "/api/v1/meetings", {
        title: TITLE, chair: $("t-chair").value, invited, start: vnNow(0), duration_minutes: MINUTES,
        description: "Phiên kiểm tra điểm cầu trước cuộc họp (test session)",
      });
      this.notify(`Đã mở phiên kiểm tra cho ${invited.join(", ")} (Test session opened).`, "info");
      await this.track(m);
      this.watch();
    } catch (e) {
      err.textContent = "Không mở được phiên kiểm tra (Cannot open the test session): " + e.message;
      err.classList.remove("hidden");
    }
  }

  async stop() {
    if (!this.meeting) return;
    try {
      await api("DELETE", `/api/v1/meetings/${encodeURIComponent(this.meeting.id)}`);
      this.notify("Đã kết thúc phiên kiểm tra (Test session ended).", "info");
    } catch (e) { this.notify(e.message, "error"); }
    this.hide();
    this.meeting = null;
    $("t-stop").classList.add("hidden");
    $("t-start").disabled = false;
    $("t-state").textContent = "Phiên kiểm tra đã kết thúc. (The test session has ended.)";
  }

  async track(m) {
    const full = await api("GET", `/api/v1/meetings/${encodeURIComponent(m.id)}`);
    this.meeting = m;
    this.invited = full.invited_endpoints;
    $("t-stop").classList.remove("hidden");
    $("t-start").disabled = true;
    $("t-result").classList.remove("hidden");
    $("t-state").textContent = `Đang kiểm tra từ ${m.start.slice(11, 16)} (testing since), ${this.invited.length} điểm cầu (rooms)`;
  }

  watch() {
    this.hide();
    this.poll();
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  async poll() {
    const m = this.meeting;
    if (!m) return;
    try {
      const [live, presence] = await Promise.all([
        api("GET", `/api/v1/meetings/${encodeURIComponent(m.id)}/live`), api("GET", "/api/v1/presence")]);
      if (this.meeting !== m) return;
      this.render(live, new Set(presence.online.map((p) => p.endpoint_id)));
    } catch (e) {
      this.notify(e.message, "error");
    }
  }

  check(id, live, online) {
    const joined = new Set((live.participants || []).map((p) => p.endpoint_id));
    const media = live.media ? live.media[id] : undefined;
    const loss = media ? Math.max(media.loss_in_pct, media.loss_out_pct) : null;
    const noMedia = live.media === undefined;  // the server has no media node: media cannot be checked
    return {
      online: online.has(id) || joined.has(id), joined: joined.has(id),
      audio: noMedia ? null : !!(media && media.sending.audio), video: noMedia ? null : !!(media && media.sending.video),
      loss: noMedia ? null : media !== undefined && media.connected && loss < LOSS_OK_PCT, lossPct: loss,
    };
  }

  render(live, online) {
    const rows = this.invited.map((id) => ({ id, ep: this.dir.byId.get(id), c: this.check(id, live, online) }));
    for (const r of rows) r.ready = CHECKS.every(([k]) => r.c[k] !== false);
    const ready = rows.filter((r) => r.ready).length;
    $("t-summary").textContent = `${ready}/${rows.length} sẵn sàng (ready)`;
    $("t-note").textContent = !live.open ? "Phiên kiểm tra chưa mở hoặc đã đóng. (The session is not open.)"
      : live.media === undefined ? "Máy chủ không có media node: chỉ kiểm tra kết nối. (No media node: connection checks only.)" : "";
    const problems = rows.filter((r) => !r.ready);
    $("t-problems").replaceChildren(...problems.map((r) => {
      const li = document.createElement("li");
      li.dataset.endpoint = r.id;
      // the first failed check says it all: an offline room has not joined and sends nothing either
      const [k, text] = CHECKS.find(([key]) => r.c[key] === false);
      li.textContent = `${r.ep ? r.ep.name : r.id}: ${text}` + (k === "loss" && r.c.lossPct !== null ? ` ${r.c.lossPct}%` : "");
      if (k === "audio" && r.c.video === false) li.textContent += ", không có hình (no video)";
      return li;
    }));
    if (!problems.length) {
      const li = document.createElement("li");
      li.textContent = "Không có. (None: every room is ready.)";
      $("t-problems").replaceChildren(li);
    }
    rows.sort((a, b) => Number(a.ready) - Number(b.ready));
    $("t-rows").replaceChildren(...rows.map((r) => this.row(r)));
  }

  row(r) {
    const tr = document.createElement("tr");
    tr.dataset.endpoint = r.id;
    tr.className = r.ready ? "ready" : "problem";
    const district = districtOf(this.dir, r.id);
    const cell = (text, cls = "") => { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; };
    const mark = (v) => (v === null ? cell("–") : cell(v ? "✓" : "✗", v ? "ok" : "bad"));
    tr.append(cell(r.ep ? r.ep.name : r.id), cell(district && district.id !== r.id ? district.name : ""),
      mark(r.c.online), mark(r.c.joined), mark(r.c.audio), mark(r.c.video),
      r.c.loss === null ? cell("–") : cell(r.c.lossPct === null ? "–" : `${r.c.lossPct}%`, r.c.loss ? "ok" : "bad"),
      cell(r.ready ? "sẵn sàng (ready)" : "chưa (not yet)", r.ready ? "ok" : "bad"));
    return tr;
  }
}
