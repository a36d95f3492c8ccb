// Servers tab: the live nodes of the cluster (GET /api/v1/cluster every 2 s while shown): media
// nodes with a load bar (peers / capacity), CPU and the subtrees they serve as cascade edges;
// signaling nodes with their sessions; which media node each meeting is pinned to.
import { api } from "./api.js";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function row(...cells) {
  const tr = document.createElement("tr");
  tr.append(...cells.map((c) => (c instanceof Node ? c : cell(c))));
  return tr;
}

function loadBar(peers, capacity) {
  const td = document.createElement("td");
  const bar = document.createElement("span");
  bar.className = "load";
  const fill = document.createElement("span");
  const share = Math.min(1, peers / Math.max(1, capacity));
  fill.style.width = `${Math.round(share * 100)}%`;
  if (share > 0.8) fill.className = "high";
  bar.append(fill);
  td.append(bar, `${peers} / ${capacity}`);
  return td;
}

const pct = (cpu) => `${Math.round((cpu || 0) * 100)} %`;

export class ClusterView {
  constructor({ notify }) {
    this.notify = notify;
    this.timer = null;
  }

  async show() {
    await this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh().catch((e) => this.notify(e.message, "error")), POLL_MS);
  }

  hide() { clearInterval(this.timer); this.timer = null; }

  async refresh() {
    const codecsOf = (n) => (n.encode_codecs || []).map((c) => (c === "H264" ? "H.264" : c)).join(", ") || "–";
    const [doc, list] = await Promise.all([api("GET", "/api/v1/cluster"), api("GET", "/api/v1/meetings")]);
    if (!doc.clustered) {
      const codecs = doc.encode_codecs ? ` Chuẩn nén tạo được: ${codecsOf(doc)}. (Encodes: ${codecsOf(doc)}.)` : "";
      $("c-note").textContent = `Một máy chủ (${doc.node}), kho dữ liệu nhúng. (One server, embedded store: no cluster.)` + codecs;
      for (const id of ["c-media", "c-signaling", "c-pins"]) $(id).replaceChildren();
      return;
    }
    const media = Object.entries(doc.media_nodes).sort();
    $("c-media").replaceChildren(...media.map(([id, n]) =>
      row(id, loadBar(n.peers, n.capacity), pct(n.cpu), String(n.meetings), (n.serves || []).join(", ") || "–",
        codecsOf(n))));
    const sig = Object.entries(doc.signaling_nodes).sort();
    $("c-signaling").replaceChildren(...sig.map(([id, n]) =>
      row(id, String(n.sessions ?? "–"), pct(n.cpu), new Date(n.started * 1000).toLocaleString("vi-VN"))));
    const titles = Object.fromEntries(list.meetings.map((m) => [m.id, m.title]));
    const pins = Object.entries(doc.pins).filter(([id]) => titles[id]);
    $("c-pins").replaceChildren(...pins.map(([id, p]) =>
      row(titles[id], doc.media_nodes[p.node] ? p.node : `${p.node} (mất / lost)`, p.replaces || "–")));
  }
}
