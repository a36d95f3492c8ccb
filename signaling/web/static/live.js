// Live view of one meeting: the map (REST polling every 2 s + WebSocket events as operator),
// chair controls over the WebSocket, hands queue and roll call.
import { api } from "./api.js";
import { Signal } from "./ws.js";
import { districtOf, loadDirectory } from "./directory.js";
import { LiveMap } from "./map.js";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

function fmtTime(iso) { return iso ? iso.slice(11, 16) : "–"; }

export class LiveView {
  constructor({ notify, onAuthLost }) {
    this.token = null;
    this.notify = notify;
    this.onAuthLost = onAuthLost;
    this.meeting = null;
    this.map = null;
    this.signal = null;
    this.timer = null;
    this.inRoom = false;
    this.occurrence = null;
    this.people = [];
    this.room = { online: new Set(), joined: new Set(), hands: [], floor: null, muted: {}, invited: null, locked: false, media: {} };
    document.querySelectorAll("#chair button[data-act]").forEach((b) => b.addEventListener("click", () => this.act(b.dataset.act)));
    $("roll").addEventListener("click", () => this.rollCall());
    $("sip-call").addEventListener("click", () => this.sip("POST"));
    $("sip-hangup").addEventListener("click", () => this.sip("DELETE"));
    $("layout").addEventListener("change", (ev) => this.send("layout", { layout: ev.target.value }));
    $("hands").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-endpoint]");
      if (b) this.send("grant_floor", { endpoint_id: b.dataset.endpoint });
    });
  }

  async open(meeting) {
    this.close();
    this.meeting = meeting;
    $("live-title").textContent = meeting.title;
    const dir = await loadDirectory();
    this.dir = dir;
    this.map = new LiveMap($("map"), dir, (id) => this.pick(id));
    this.room = { online: new Set(), joined: new Set(), hands: [], floor: null, muted: {}, invited: null, locked: false, media: {} };
    api("GET", `/api/v1/meetings/${encodeURIComponent(meeting.id)}`)
      .then((m) => { this.room.invited = new Set(m.invited_endpoints); this.paint(); })
      .catch(() => {});
    this.signal = new Signal(this.token);
    this.signal.addEventListener("message", (ev) => this.onMessage(ev.detail));
    this.signal.addEventListener("status", (ev) => {
      const net = $("net");
      net.textContent = "Mất kết nối tới máy chủ — đang kết nối lại… (Connection lost — reconnecting…)";
      net.classList.toggle("hidden", ev.detail.state !== "reconnecting");
      if (ev.detail.state !== "online") { this.inRoom = false; this.joinAt = 0; }
    });
    this.signal.addEventListener("fatal", (ev) => this.onAuthLost(ev.detail.message));
    this.signal.start();
    this.paint();
    await this.poll();
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  close() {
    clearInterval(this.timer);
    if (this.signal) this.signal.stop();
    this.signal = null;
    this.inRoom = false;
    this.meeting = null;
    $("net").classList.add("hidden");
  }

  async poll() {
    if (!this.meeting) return;
    const id = this.meeting.id;
    try {
      const [live, presence] = await Promise.all([
        api("GET", `/api/v1/meetings/${encodeURIComponent(id)}/live`), api("GET", "/api/v1/presence")]);
      if (!this.meeting || this.meeting.id !== id) return;
      this.room.online = new Set(presence.online.map((p) => p.endpoint_id));
      const state = $("live-state");
      if (live.open) {
        this.occurrence = live.occurrence_id;
        this.setPeople(live.participants);
        Object.assign(this.room, { hands: live.hands, floor: live.floor, muted: live.muted, locked: live.locked,
          media: live.media || {}, layout: live.layout });
        state.classList.add("hidden");
        if (!this.inRoom && this.signal && this.signal.online) this.join();
      } else {
        this.setPeople([]);
        this.room.media = {};
        state.textContent = "Cuộc họp không diễn ra lúc này; bản đồ chỉ hiện điểm cầu trực tuyến. (The meeting is not open now; the map shows who is online.)";
        state.classList.remove("hidden");
      }
      this.paint();
    } catch (err) {
      this.notify(err.message, "error");
    }
  }

  join() {
    if (!this.meeting || !this.signal || Date.now() - (this.joinAt || 0) < 5000) return;  // one attempt in flight
    this.joinAt = Date.now();
    this.joinRef = this.signal.send("join", { meeting_id: this.meeting.id });
  }

  setPeople(list) {
    this.people = list || [];
    this.room.joined = new Set(this.people.filter((p) => p.role !== "operator").map((p) => p.endpoint_id));
  }

  onMessage(msg) {
    const r = this.room;
    switch (msg.type) {
      case "welcome": if (this.occurrence) this.join(); break;
      case "meeting_opened": if (this.meeting && msg.meeting_id === this.meeting.id) this.join(); break;
      case "joined":
        this.inRoom = true;
        this.joinAt = 0;
        this.occurrence = msg.occurrence_id;
        this.setPeople(msg.participants);
        Object.assign(r, { hands: msg.hands, floor: msg.floor });
        break;
      case "participants": this.setPeople(msg.participants); break;
      case "hand": r.hands = msg.hands; break;
      case "floor": r.floor = msg.endpoint_id; if (msg.hands) r.hands = msg.hands; break;
      case "mute_request": r.muted[msg.endpoint_id] = { ...(r.muted[msg.endpoint_id] || {}), [msg.kind]: msg.muted }; break;
      case "locked": r.locked = msg.locked; break;
      case "layout": r.layout = msg.layout; break;
      case "left": this.inRoom = false; break;
      case "meeting_closed": if (this.meeting && msg.meeting_id === this.meeting.id) this.notify("Cuộc họp đã kết thúc. (The meeting has ended.)", "info"); break;
      case "error":
        if (msg.ref && msg.ref === this.joinRef && msg.code === "not_found") return;  // not open yet: polling shows it
        this.notify("Máy chủ từ chối (Refused): " + msg.message, "error");
        return;
      default: return;
    }
    this.paint();
  }

  paint() {
    if (!this.map) return;
    const totals = this.map.paint(this.room);
    const guests = this.people.filter((p) => p.role !== "operator" && !this.dir.byId.has(p.endpoint_id)).length;
    const measured = totals.good + totals.fair + totals.poor;
    $("live-stats").textContent = `Vào họp (joined): ${totals.joined + totals.hand + totals.floor} · ` +
      `trực tuyến (online): ${totals.online} · ngoại tuyến (offline): ${totals.offline}` +
      (guests ? ` · khách (guests): ${guests}` : "") +
      (measured ? ` · đường truyền tốt/khá/kém (link good/fair/poor): ${totals.good}/${totals.fair}/${totals.poor}` : "");
    if (this.room.layout) $("layout").value = this.room.layout;
    const lock = $("lock");
    lock.innerHTML = this.room.locked ? 'Mở khóa <span class="en">(Unlock)</span>' : 'Khóa phòng <span class="en">(Lock)</span>';
    const hands = $("hands");
    hands.replaceChildren(...this.room.hands.map((id) => {
      const li = document.createElement("li");
      const p = this.people.find((x) => x.endpoint_id === id);
      li.textContent = (p ? p.name : (this.dir.byId.get(id) || { name: id }).name) + " ";
      const b = document.createElement("button");
      b.dataset.endpoint = id;
      b.textContent = "Cho phát biểu (Give floor)";
      li.append(b);
      return li;
    }));
    if (this.selected) this.pick(this.selected);
  }

  pick(id) {
    this.selected = id;
    const d = this.map.describe(id, this.room);
    const guest = this.people.find((p) => p.endpoint_id === id);
    $("sel-name").textContent = d.name;
    $("sel-state").textContent = d.state + (guest && guest.kind === "link" ? " · qua liên kết (via link)" : "");
    $("sel-media").textContent = d.media;
    // a SIP room system (the directory's sip block, shown to operators): call it or hang it up
    const ep = this.dir.byId.get(id);
    const inCall = this.people.some((p) => p.endpoint_id === id && p.kind === "sip");
    $("sel-sip").classList.toggle("hidden", !(ep && ep.sip && this.occurrence));
    $("sip-call").classList.toggle("hidden", inCall);
    $("sip-hangup").classList.toggle("hidden", !inCall);
    if (inCall) $("sel-state").textContent += " · qua SIP (via SIP)";
    $("sel").classList.remove("hidden");
    $("sel-none").classList.add("hidden");
  }

  async sip(method) {
    const id = this.selected;
    if (!id || !this.meeting) return;
    const name = this.map.describe(id, this.room).name;
    try {
      await api(method, `/api/v1/meetings/${encodeURIComponent(this.meeting.id)}/sip/${encodeURIComponent(id)}`);
      this.notify(method === "POST" ? `Đang gọi ${name}… (Calling…)` : `Đã gác máy ${name}. (Hung up.)`, "info");
    } catch (err) {
      this.notify(err.message, "error");
    }
  }

  send(type, fields = {}) {
    if (!this.inRoom || !this.signal) {
      this.notify("Bảng điều khiển chưa vào phòng họp (the console has not joined the meeting yet); thử lại sau giây lát.", "warn");
      return;
    }
    this.signal.send(type, fields);
  }

  act(what) {
    const id = this.selected;
    const one = { endpoint_id: id };
    const need = () => { if (!id) this.notify("Hãy chọn một điểm cầu trước. (Pick an endpoint first.)", "warn"); return !!id; };
    switch (what) {
      case "grant": if (need()) this.send("grant_floor", one); break;
      case "mute": if (need()) this.send("mute", { ...one, kind: "audio", muted: true }); break;
      case "unmute": if (need()) this.send("mute", { ...one, kind: "audio", muted: false }); break;
      case "remove":
        if (need() && confirm(`Mời ${this.map.describe(id, this.room).name} ra khỏi cuộc họp? (Remove from the meeting?)`)) this.send("remove", one);
        break;
      case "revoke": this.send("revoke_floor"); break;
      case "mute_all": this.send("mute_all", { muted: true }); break;
      case "unmute_all": this.send("mute_all", { muted: false }); break;
      case "lock": this.send("lock", { locked: !this.room.locked }); break;
    }
  }

  async rollCall() {
    if (!this.meeting || !this.occurrence) {
      this.notify("Chưa có buổi họp nào đang mở. (No occurrence is open.)", "warn");
      return;
    }
    const rec = await api("GET", `/api/v1/meetings/${encodeURIComponent(this.meeting.id)}/occurrences/${encodeURIComponent(this.occurrence)}/attendance`);
    const s = rec.summary;
    $("roll-summary").textContent = `Mời (invited) ${s.invited} · có mặt (present) ${s.present} · vắng (absent) ${s.absent} · khách (guests) ${s.guests}`;
    const rows = [...rec.endpoints, ...rec.guests].map((a) => {
      const tr = document.createElement("tr");
      const ep = this.dir.byId.get(a.endpoint_id);
      const district = districtOf(this.dir, a.endpoint_id);
      const cells = [ep ? ep.name : a.endpoint_id, district && district.id !== a.endpoint_id ? district.name : "",
        a.joined ? (a.present ? "có mặt (present)" : "đã rời (left)") : "vắng (absent)",
        fmtTime(a.first_join), `${Math.round(a.total_seconds / 60)}′`, a.joins > 1 ? `${a.joins - 1}× kết nối lại` : ""];
      for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.append(td); }
      tr.cells[2].className = a.joined ? "present" : "absent";
      tr.dataset.endpoint = a.endpoint_id;
      return tr;
    });
    $("roll-rows").replaceChildren(...rows);
  }
}
