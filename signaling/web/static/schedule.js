// The schedule form: title, chair, invited selectors (text + tree picker, live count via
// POST /api/v1/directory/select), start in Vietnam time, duration, daily/weekly recurrence,
// the meeting's video codecs in order of preference (video_codecs).
import { api } from "./api.js";
import { loadDirectory } from "./directory.js";

const $ = (id) => document.getElementById(id);
const DAYS = [["MO", "T2"], ["TU", "T3"], ["WE", "T4"], ["TH", "T5"], ["FR", "T6"], ["SA", "T7"], ["SU", "CN"]];
const QUICK = [["all", "Tất cả (all)"], ["tier:province", "Cấp tỉnh (province)"], ["tier:district", "Cấp huyện (district)"],
  ["tier:commune", "Cấp xã (commune)"]];

// video_codecs choices (value: the list joined by commas); the meetings list edits with the same select
const CODEC_CHOICES = [["VP8,H264", "VP8, rồi H.264 (VP8 first)"], ["H264,VP8", "H.264, rồi VP8 (H.264 first)"],
  ["VP8", "Chỉ VP8 (VP8 only)"], ["H264", "Chỉ H.264 — Firefox không có H.264 sẽ không vào được (H.264 only: Firefox without H.264 cannot join)"]];

export function codecSelect(codecs, id = "") {
  const select = document.createElement("select");
  if (id) select.id = id;
  select.append(...CODEC_CHOICES.map(([v, t]) => new Option(t, v)));
  select.value = (codecs || ["VP8", "H264"]).join(",");
  return select;
}

// Vietnam wall-clock time (UTC+7, no daylight saving) as a datetime-local value, whatever the browser's zone.
export function vnNow(offsetMinutes = 0) {
  return new Date(Date.now() + (7 * 60 + offsetMinutes) * 60000).toISOString().slice(0, 16);
}

function selectors() {
  return $("f-invited").value.split(/[\n,;]+/).map((s) => s.trim()).filter(Boolean);
}

function setSelectors(list) {
  $("f-invited").value = list.join("\n");
  $("f-invited").dispatchEvent(new Event("input"));
}

function checkbox(value, text) {
  const label = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.value = value;
  label.append(box, " " + text);
  return label;
}

export class ScheduleForm {
  constructor({ notify, onCreated }) {
    this.notify = notify;
    this.onCreated = onCreated;
    this.countTimer = null;
    this.countSeq = 0;
    $("f-start").value = vnNow(60).slice(0, 14) + "00";
    $("f-days").replaceChildren(...DAYS.map(([v, t]) => checkbox(v, t)));
    $("f-codecs").replaceWith(codecSelect(null, "f-codecs"));
    $("f-repeat").addEventListener("change", () => this.repeatChanged());
    $("f-start").addEventListener("change", () => this.repeatChanged());
    $("f-invited").addEventListener("input", () => { this.syncPicker(); this.countSoon(); });
    $("f-picker").addEventListener("change", (ev) => this.picked(ev.target));
    $("schedule").addEventListener("submit", (ev) => { ev.preventDefault(); this.submit(); });
  }

  async load() {
    if (this.loaded) return;
    const dir = await loadDirectory();
    const chairs = dir.endpoints.filter((e) => e.tier !== "commune");
    $("f-chair").replaceChildren(...chairs.map((e) => new Option(`${e.name} (${e.id})`, e.id)));
    $("f-chair").value = chairs.find((e) => e.id === "hg-ubnd") ? "hg-ubnd" : chairs[0].id;
    const quick = document.createElement("div");
    quick.append(...QUICK.map(([v, t]) => checkbox(v, t)));
    const tree = dir.districts.map((d) => {
      const det = document.createElement("details");
      const sum = document.createElement("summary");
      sum.append(checkbox("tree:" + d.id, d.name));
      const kids = (dir.children.get(d.id) || []).map((c) => { const l = checkbox("ep:" + c.id, c.name); l.className = "block"; return l; });
      det.append(sum, ...kids);
      return det;
    });
    $("f-picker").replaceChildren(quick, ...tree);
    this.loaded = true;
    this.syncPicker();
  }

  picked(box) {
    if (box.type !== "checkbox") return;
    const list = selectors().filter((s) => s !== box.value);
    if (box.checked) list.push(box.value);
    setSelectors(list);
  }

  syncPicker() {
    const chosen = new Set(selectors());
    $("f-picker").querySelectorAll("input[type=checkbox]").forEach((b) => { b.checked = chosen.has(b.value); });
  }

  repeatChanged() {
    const weekly = $("f-repeat").value === "WEEKLY";
    $("f-days").classList.toggle("hidden", !weekly);
    const boxes = [...$("f-days").querySelectorAll("input")];
    if (weekly && !boxes.some((b) => b.checked) && $("f-start").value) {
      const day = (new Date($("f-start").value.slice(0, 10) + "T00:00:00Z").getUTCDay() + 6) % 7;  // Monday = 0
      boxes[day].checked = true;
    }
  }

  countSoon() {
    clearTimeout(this.countTimer);
    this.countTimer = setTimeout(() => this.count(), 250);
  }

  async count() {
    const list = selectors();
    const seq = ++this.countSeq;
    const err = $("f-count-error");
    if (!list.length) { $("f-count").textContent = "0"; err.classList.add("hidden"); return; }
    try {
      const res = await api("POST", "/api/v1/directory/select", { selectors: list });
      if (seq !== this.countSeq) return;
      $("f-count").textContent = String(res.count);
      err.classList.add("hidden");
    } catch (e) {
      if (seq !== this.countSeq) return;
      $("f-count").textContent = "?";
      err.textContent = e.message;
      err.classList.remove("hidden");
    }
  }

  rrule() {
    const freq = $("f-repeat").value;
    if (!freq) return null;
    const parts = ["FREQ=" + freq];
    if (freq === "WEEKLY") {
      const days = [...$("f-days").querySelectorAll("input:checked")].map((b) => b.value);
      if (days.length) parts.push("BYDAY=" + days.join(","));
    }
    const until = $("f-until").value;
    if (until) parts.push("UNTIL=" + until.replaceAll("-", "") + "T235959");
    return parts.join(";");
  }

  async submit() {
    const err = $("f-error");
    err.classList.add("hidden");
    const body = {
      title: $("f-title").value.trim(), chair: $("f-chair").value, invited: selectors(),
      start: $("f-start").value, duration_minutes: Number($("f-duration").value),
      video_codecs: $("f-codecs").value.split(","),
    };
    const rule = this.rrule();
    if (rule) body.recurrence = rule;
    const desc = $("f-desc").value.trim();
    if (desc) body.description = desc;
    try {
      const meeting = await api("POST", "/api/v1/meetings", body);
      this.notify(`Đã lên lịch "${meeting.title}" (Scheduled).`, "info");
      this.onCreated(meeting);
    } catch (e) {
      err.textContent = "Không lên lịch được (Cannot schedule): " + e.message;
      err.classList.remove("hidden");
    }
  }
}
