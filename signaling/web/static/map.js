// The live map: one tile per endpoint, grouped by district, coloured by state
// (offline < online < joined < hand raised < floor).
import { groups } from "./directory.js";

const STATE_VI = {
  offline: "ngoại tuyến (offline)", online: "trực tuyến (online)", joined: "đã vào họp (joined)",
  hand: "đang giơ tay (hand raised)", floor: "đang phát biểu (has the floor)",
};

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

  // s: {online: Set, joined: Set, hands: [], floor, muted: {id: {audio, video}}, invited: Set|null}
  paint(s) {
    const totals = { offline: 0, online: 0, joined: 0, hand: 0, floor: 0 };
    for (const [id, t] of this.tiles) {
      const st = this.stateOf(id, s);
      totals[st] += 1;
      const muted = !!(s.muted[id] && s.muted[id].audio);
      const invited = !s.invited || s.invited.has(id);
      const cls = `tile ${st} ${t.dataset.tier}${muted ? " muted" : ""}${invited ? "" : " not-invited"}` +
        (this.selected === id ? " selected" : "");
      if (t.className !== cls) t.className = cls;
      t.dataset.state = st;
      t.title = `${t.dataset.name}: ${STATE_VI[st]}${muted ? ", đã tắt micro (muted)" : ""}${invited ? "" : ", không được mời (not invited)"}`;
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
    return { name: ep ? ep.name : id, state: STATE_VI[this.stateOf(id, s)] };
  }
}
