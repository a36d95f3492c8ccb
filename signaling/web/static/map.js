// The live map: one tile per endpoint, grouped by district, coloured by state
// (offline < online < joined < hand raised < floor); a dot gives the link quality the media node
// measures (good / fair / poor), the tooltip what it sends, its bitrate and loss.
import { groups } from "./directory.js";

const STATE_VI = {
  offline: "ngoại tuyến (offline)", online: "trực tuyến (online)", joined: "đã vào họp (joined)",
  hand: "đang giơ tay (hand raised)", floor: "đang phát biểu (has the floor)",
};

const QUALITY_VI = { good: "tốt (good)", fair: "khá (fair)", poor: "kém (poor)" };
const WHY_VI = {
  no_media: "không nhận được tín hiệu (no media)", no_video: "không có hình (no video)",
  thin_video: "hình yếu (thin video)", loss: "mất gói (packet loss)", not_connected: "chưa kết nối media (media not connected)",
};

// One line about an endpoint's media, from GET /live "media" (see mcu/meeting/quality.py).
export function mediaText(m) {
  if (!m) return "";
  const kinds = [["audio", "tiếng"], ["video", "hình"], ["screen", "màn hình"]].filter(([k]) => m.sending[k]).map(([, v]) => v);
  const why = m.why.length ? " — " + m.why.map((w) => WHY_VI[w] || w).join(", ") : "";
  return `gửi (sending): ${kinds.length ? kinds.join(" + ") : "không (nothing)"} · ${m.bitrate_kbps} kbit/s · ` +
    `mất gói (loss) lên/xuống ${m.loss_in_pct}% / ${m.loss_out_pct}% · chất lượng ${QUALITY_VI[m.quality] || m.quality}${why}`;
}

export class LiveMap {
  constructor(container, dir, onPick) {
    this.el = container;
    this.dir = dir;
    this.tiles = new Map();
    this.counters = new Map();
    this.selected = null;
    this.el.replaceChildren(...groups(dir).map((g) => this._group(g)));
    this.el.addEventListener("click", (ev) => {
      const tile = ev.target.closest(".tile");
      if (!tile) return;
      this.select(tile.dataset.endpoint);
      onPick(tile.dataset.endpoint);
    });
  }

  _group(g) {
    const box = document.createElement("section");
    box.className = "group " + g.kind;
    box.dataset.group = g.id;
    const h = document.createElement("h3");
    const name = document.createElement("span");
    name.textContent = g.name;
    const count = document.createElement("span");
    count.className = "en";
    h.append(name, count);
    const tiles = document.createElement("div");
    tiles.className = "tiles";
    for (const ep of g.endpoints) {
      const t = document.createElement("button");
      t.type = "button";
      t.className = "tile offline " + ep.tier;
      t.dataset.endpoint = ep.id;
      t.dataset.tier = ep.tier;
      t.dataset.name = ep.name;
      t.title = ep.name;
      t.setAttribute("aria-label", ep.name);
      this.tiles.set(ep.id, t);
      tiles.append(t);
    }
    this.counters.set(g.id, { el: count, ids: g.endpoints.map((e) => e.id) });
    box.append(h, tiles);
    return box;
  }

  stateOf(id, s) {
    if (s.joined.has(id)) {  // the room keeps floor and hands of an endpoint that dropped out
      if (s.floor === id) return "floor";
      return s.hands.includes(id) ? "hand" : "joined";
    }
    if (s.online.has(id)) return "online";
    return "offline";
  }

  // s: {online: Set, joined: Set, hands: [], floor, muted: {id: {audio, video}}, invited: Set|null,
  //     media: {id: {sending, bitrate_kbps, loss_in_pct, loss_out_pct, quality, why}} (empty without a media node)}
  paint(s) {
    const totals = { offline: 0, online: 0, joined: 0, hand: 0, floor: 0, good: 0, fair: 0, poor: 0 };
    const media = s.media || {};
    for (const [id, t] of this.tiles) {
      const st = this.stateOf(id, s);
      totals[st] += 1;
      const muted = !!(s.muted[id] && s.muted[id].audio);
      const invited = !s.invited || s.invited.has(id);
      const m = s.joined.has(id) ? media[id] : null;
      if (m) totals[m.quality] += 1;
      const tx = m && (m.sending.audio || m.sending.video || m.sending.screen);
      const cls = `tile ${st} ${t.dataset.tier}${muted ? " muted" : ""}${invited ? "" : " not-invited"}` +
        (m ? ` q-${m.quality}${tx ? " tx" : ""}` : "") + (this.selected === id ? " selected" : "");
      if (t.className !== cls) t.className = cls;
      t.dataset.state = st;
      t.dataset.quality = m ? m.quality : "";
      t.title = `${t.dataset.name}: ${STATE_VI[st]}${muted ? ", đã tắt micro (muted)" : ""}${invited ? "" : ", không được mời (not invited)"}` +
        (m ? "\n" + mediaText(m) : "");
    }
    for (const { el, ids } of this.counters.values()) {
      const joined = ids.filter((id) => s.joined.has(id)).length;
      const online = ids.filter((id) => s.online.has(id) || s.joined.has(id)).length;
      el.textContent = `${joined}/${online}/${ids.length}`;
      el.title = "vào họp / trực tuyến / tổng (joined / online / total)";
    }
    return totals;
  }

  select(id) {
    if (this.selected && this.tiles.get(this.selected)) this.tiles.get(this.selected).classList.remove("selected");
    this.selected = id;
    if (id && this.tiles.get(id)) this.tiles.get(id).classList.add("selected");
  }

  describe(id, s) {
    const ep = this.dir.byId.get(id);
    const m = s.joined.has(id) && s.media ? s.media[id] : null;
    return { name: ep ? ep.name : id, state: STATE_VI[this.stateOf(id, s)], media: mediaText(m) };
  }
}
