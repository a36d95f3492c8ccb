// Operator console (/console): login, meetings list (cancel, join links, video codecs), schedule form, live view.
import { api, clearSession, login, saveSession, session } from "./api.js";
import { ScheduleForm, codecSelect } from "./schedule.js";
import { LiveView } from "./live.js";
import { loadDirectory } from "./directory.js";
import { TestRooms } from "./testmode.js";
import { ClusterView } from "./cluster.js";

const $ = (id) => document.getElementById(id);
let live = null;
let form = null;
let tests = null;
let servers = null;
let meetings = [];

function notify(text, kind = "info") {
  const el = $("msg");
  el.textContent = text;
  el.className = "notice " + kind;
  clearTimeout(notify.timer);
  if (kind === "info") notify.timer = setTimeout(() => el.classList.add("hidden"), 6000);
}

function showTab(name) {
  document.querySelectorAll("nav.tabs button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
  for (const t of ["meetings", "schedule", "live", "test", "servers"]) $("tab-" + t).classList.toggle("hidden", t !== name);
  if (name === "schedule") form.load().catch((e) => notify(e.message, "error"));
  if (name === "test") tests.show().catch((e) => notify(e.message, "error"));
  else if (tests) tests.hide();
  if (name === "servers") servers.show().catch((e) => notify(e.message, "error"));
  else if (servers) servers.hide();
  if (name === "meetings") loadMeetings();
  if (name !== "live" && live) live.close();
}

function loggedOut(reason) {
  clearSession();
  if (live) live.close();
  if (tests) tests.hide();
  if (servers) servers.hide();
  $("app-view").classList.add("hidden");
  $("login-view").classList.remove("hidden");
  $("logout").classList.add("hidden");
  $("who").textContent = "";
  if (reason) {
    $("login-error").textContent = "Phiên đăng nhập đã hết, hãy đăng nhập lại. (Your session ended; log in again.) " + reason;
    $("login-error").classList.remove("hidden");
  }
}

function loggedIn(s) {
  $("login-view").classList.add("hidden");
  $("app-view").classList.remove("hidden");
  $("logout").classList.remove("hidden");
  $("who").textContent = s.operator;
  live = live || new LiveView({ notify, onAuthLost: (m) => loggedOut(m) });  // once: they bind the page's buttons
  live.token = s.token;
  form = form || new ScheduleForm({ notify, onCreated: () => showTab("meetings") });
  tests = tests || new TestRooms({ notify });
  servers = servers || new ClusterView({ notify });
  showTab("meetings");
}

function repeatText(rule) {
  if (!rule) return "–";
  const m = /BYDAY=([A-Z,]+)/.exec(rule);
  const vi = { MO: "T2", TU: "T3", WE: "T4", TH: "T5", FR: "T6", SA: "T7", SU: "CN" };
  if (rule.includes("FREQ=WEEKLY")) return "Hằng tuần (weekly)" + (m ? " " + m[1].split(",").map((d) => vi[d]).join(",") : "");
  if (rule.includes("FREQ=DAILY")) return "Hằng ngày (daily)";
  return rule;
}

function button(text, act, id, cls = "") {
  const b = document.createElement("button");
  b.innerHTML = text;
  b.dataset.act = act;
  b.dataset.id = id;
  if (cls) b.className = cls;
  return b;
}

async function loadMeetings() {
  try {
    const [doc, dir] = await Promise.all([api("GET", "/api/v1/meetings"), loadDirectory()]);
    meetings = doc.meetings;
    meetings.sort((a, b) => (a.status === b.status ? a.start.localeCompare(b.start) : a.status === "cancelled" ? 1 : -1));
    $("meetings").replaceChildren(...meetings.map((m) => {
      const tr = document.createElement("tr");
      tr.dataset.meeting = m.id;
      const chair = dir.byId.get(m.chair);
      const cells = [m.title, m.dial_number || "–", m.start.slice(0, 16).replace("T", " "), String(m.duration_minutes), repeatText(m.recurrence),
        chair ? chair.name : m.chair, m.status === "cancelled" ? "đã hủy (cancelled)" : "đã lên lịch (scheduled)"];
      for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.append(td); }
      const codecs = document.createElement("td");
      if (m.status === "cancelled") codecs.textContent = (m.video_codecs || []).join(", ");
      else {
        const select = codecSelect(m.video_codecs);
        select.className = "codecs";
        select.dataset.id = m.id;
        codecs.append(select);
      }
      tr.append(codecs);
      const td = document.createElement("td");
      if (m.status !== "cancelled") {
        td.append(button('Theo dõi <span class="en">(Live)</span>', "live", m.id, "primary"), " ",
          button('Liên kết <span class="en">(Link)</span>', "link", m.id), " ",
          button('Hủy <span class="en">(Cancel)</span>', "cancel", m.id, "danger"));
      }
      tr.append(td);
      return tr;
    }));
    if (!meetings.length) {
      const tr = document.createElement("tr");
      tr.innerHTML = '<td colspan="9">Chưa có cuộc họp nào. <span class="en">(No meetings yet.)</span></td>';
      $("meetings").replaceChildren(tr);
    }
  } catch (e) {
    notify("Không tải được danh sách (Cannot load meetings): " + e.message, "error");
  }
}

async function changeCodecs(select) {
  const m = meetings.find((x) => x.id === select.dataset.id);
  if (!m) return;
  try {
    await api("PATCH", `/api/v1/meetings/${encodeURIComponent(m.id)}`,
      { video_codecs: select.value.split(","), expected_version: m.version });
    notify(`Đã đổi chuẩn nén video của "${m.title}"; áp dụng cho điểm cầu vào họp từ bây giờ (Video codecs changed; endpoints joining from now on use them).`, "info");
  } catch (e) { notify("Không đổi được chuẩn nén video (Cannot change the video codecs): " + e.message, "error"); }
  loadMeetings();
}

async function meetingAction(act, id) {
  const m = meetings.find((x) => x.id === id);
  if (!m) return;
  if (act === "live") {
    showTab("live");
    await live.open(m);
  } else if (act === "cancel") {
    if (!confirm(`Hủy cuộc họp "${m.title}" (cả chuỗi lặp lại)? (Cancel the whole series?)`)) return;
    try {
      await api("DELETE", `/api/v1/meetings/${encodeURIComponent(id)}`);
      notify(`Đã hủy "${m.title}" (Cancelled).`, "info");
      loadMeetings();
    } catch (e) { notify(e.message, "error"); }
  } else if (act === "link") {
    const name = prompt("Tên người nhận liên kết (Name of the person who gets the link):", "Lãnh đạo");
    if (!name) return;
    try {
      const link = await api("POST", `/api/v1/meetings/${encodeURIComponent(id)}/links`, { name, role: "participant" });
      const out = $("link-out");
      out.textContent = `Liên kết cho ${name}, hết hạn ${link.expires_at.slice(0, 16).replace("T", " ")} UTC (Join link): `;
      const a = document.createElement("a");
      a.href = link.url;
      a.textContent = link.url;
      a.target = "_blank";
      a.rel = "noopener";
      out.append(a);
      out.classList.remove("hidden");
    } catch (e) { notify(e.message, "error"); }
  }
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = $("login-error");
  err.classList.add("hidden");
  try {
    const res = await login($("username").value.trim(), $("password").value);
    const s = { token: res.token, operator: res.operator, expires_at: res.expires_at };
    saveSession(s);
    $("password").value = "";
    loggedIn(s);
  } catch (e) {
    err.textContent = "Đăng nhập không thành công (Login failed): " + e.message;
    err.classList.remove("hidden");
  }
});
$("logout").addEventListener("click", () => loggedOut());
$("reload").addEventListener("click", loadMeetings);
$("meetings").addEventListener("change", (ev) => {
  if (ev.target.matches("select.codecs")) changeCodecs(ev.target);
});
$("meetings").addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-act]");
  if (b) meetingAction(b.dataset.act, b.dataset.id);
});
document.querySelectorAll("nav.tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
window.addEventListener("giaoban-logout", (ev) => loggedOut(ev.detail.message));

const s = session();
if (s && s.token && (!s.expires_at || Date.parse(s.expires_at) > Date.now())) loggedIn(s);
else loggedOut();
