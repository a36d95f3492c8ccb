// Laptop join page (/join?token=<signed join link>): preview, join, media, hand, participants.
import { Signal } from "./ws.js";
import { Media } from "./media.js";

const $ = (id) => document.getElementById(id);
const ROLE = { chair: "chủ trì (chair)", operator: "điều hành (operator)", participant: "", viewer: "chỉ xem (viewer)" };
const RETRY_JOIN_MS = 15000;

const state = {
  me: null, name: "", meetingId: null, wantJoin: false, joinRef: null, inRoom: false, media: false,
  participants: [], hands: [], floor: null, speaker: null, handUp: false, retryTimer: null,
};

function show(el, on = true) { el.classList.toggle("hidden", !on); }

function say(el, text, kind) {
  el.textContent = text;
  if (kind) el.className = "notice " + kind;
  show(el, !!text);
}

function fatal(text) {
  say($("fatal"), text);
  show($("lobby"), false);
  show($("room"), false);
  show($("net"), false);
  media.hangup();
  media.stopLocal();
}

// The link's own expiry (claims are signed, not secret: gb1.<base64url JSON>.<mac>); only used
// to word the message after the server refused the link.
function linkExpired() {
  try {
    const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    return JSON.parse(json).exp * 1000 < Date.now();
  } catch (e) {
    return false;
  }
}

function explainAuth(message) {
  if (/expired/i.test(message || "") || linkExpired()) {
    return "Liên kết tham gia đã hết hạn. Hãy liên hệ cán bộ điều hành để nhận liên kết mới. (This join link has expired. Ask the operator for a new link.)";
  }
  return "Liên kết tham gia không hợp lệ (This join link is not valid): " + (message || "");
}

// --- signaling -----------------------------------------------------------------------------
const token = new URLSearchParams(location.search).get("token");
const signal = new Signal(token || "");
const media = new Media({
  send: (type, fields) => signal.send(type, fields),
  onTrack: addRemote,
  onState: (s) => {
    if (s === "failed") say($("media-notice"), "Kết nối hình/tiếng bị lỗi; đang thử lại… (Media connection failed; retrying…)", "warn");
    // a fresh join gives a fresh peer on the media node (the old one is closed by the server)
    if (s === "failed" && state.inRoom) setTimeout(() => state.inRoom && sendJoin(), 2000);
    if (s === "connected") show($("media-notice"), false);
  },
  onRefused: (reason) => say($("media-notice"), "Không kết nối được hình/tiếng: máy chủ từ chối" + refusedWhy(reason) +
    " (The server refused audio/video) — " + reason, "error"),
  onOfferFailed: (err) => say($("media-notice"), "Không nhận được hình chia sẻ hoặc hình/tiếng mới: trình duyệt không áp dụng được đề nghị kết nối của máy chủ. Hãy tải lại trang và báo cán bộ điều hành. (Cannot receive the shared screen or new audio/video: the browser could not apply the server's offer. Reload the page and tell the operator.) — " + ((err && err.message) || err), "error"),
});

signal.addEventListener("status", (ev) => {
  const { state: st, attempt } = ev.detail;
  const net = $("net");
  if (st === "reconnecting") {
    net.textContent = `Mất kết nối mạng — đang kết nối lại (lần ${attempt})… (Connection lost — reconnecting, attempt ${attempt}…)`;
    show(net, true);
  } else if (st === "online") {
    show(net, false);
  }
});

signal.addEventListener("fatal", (ev) => {
  const d = ev.detail;
  if (d.close === 4403 || d.code === "forbidden") fatal("Bạn không được phép vào cuộc họp này (Not allowed): " + d.message);
  else fatal(explainAuth(d.message));
});

signal.addEventListener("message", (ev) => {
  const msg = ev.detail;
  const handler = handlers[msg.type];
  if (handler) handler(msg);
});

const handlers = {
  welcome(msg) {
    const id = msg.identity;
    state.me = id.endpoint ? id.endpoint.id : id.id;
    state.name = id.name;
    state.meetingId = id.meeting_id || state.meetingId;
    $("who").textContent = id.name + (id.role && ROLE[id.role] ? " · " + ROLE[id.role] : "");
    $("greeting").textContent = `Xin chào ${id.name}. Kiểm tra hình và tiếng rồi bấm Tham gia. (Check your picture and sound, then Join.)`;
    $("join").disabled = false;
    if (state.wantJoin) sendJoin();  // reconnected: go back into the meeting by itself
  },
  meeting_opened(msg) { if (state.wantJoin && !state.inRoom && msg.meeting_id === state.meetingId) sendJoin(); },
  joined(msg) {
    clearTimeout(state.retryTimer);
    state.inRoom = true;
    state.media = !!msg.media;
    state.floor = msg.floor;
    state.hands = msg.hands || [];
    state.participants = msg.participants || [];
    state.handUp = state.hands.includes(state.me);
    state.role = msg.role;
    for (const id of ["hand", "mic", "cam", "share"]) show($(id), msg.role !== "viewer");
    show($("lobby"), false);
    show($("room"), true);
    show($("info"), false);
    $("title").textContent = msg.title;
    for (const kind of ["audio", "video"]) media.setChairMuted(kind, !!(msg.muted || {})[kind]);
    if (state.media) {
      clearRemote();  // a rejoin after a reconnect starts a new peer connection
      media.start(msg.role !== "viewer");
    } else {
      say($("media-notice"), "Máy chủ này chưa có dịch vụ hình/tiếng: bạn vẫn thấy danh sách người tham gia và giơ tay được. (This server has no media node: audio and video are not available, but the participant list and raise hand work.)", "warn");
    }
    render();
  },
  participants(msg) { state.participants = msg.participants || []; render(); },
  hand(msg) {
    state.hands = msg.hands || [];
    if (msg.endpoint_id === state.me) state.handUp = msg.raised;
    render();
  },
  floor(msg) {
    state.floor = msg.endpoint_id;
    if (msg.hands) state.hands = msg.hands;
    if (msg.endpoint_id === state.me) {
      state.handUp = false;
      media.setChairMuted("audio", false);
      say($("info"), "Bạn được mời phát biểu. (You have the floor.)", "info");
    }
    render();
  },
  mute_request(msg) {
    media.setChairMuted(msg.kind, msg.muted);
    const what = msg.kind === "video" ? "camera" : "micro";
    say($("info"), msg.muted
      ? `Chủ trì đã tắt ${what} của bạn (The chair turned your ${msg.kind === "video" ? "camera" : "microphone"} off).`
      : `Chủ trì đã bật lại ${what} của bạn (The chair turned your ${msg.kind === "video" ? "camera" : "microphone"} back on).`, "info");
    render();
  },
  locked(msg) { say($("info"), msg.locked ? "Chủ trì đã khóa cuộc họp. (The chair locked the meeting.)" : "Cuộc họp đã mở khóa. (The meeting is unlocked.)", "info"); },
  removed() {
    state.wantJoin = false;
    signal.stop();
    fatal("Chủ trì đã mời bạn ra khỏi cuộc họp. (The chair removed you from the meeting.)");
  },
  meeting_closed(msg) {
    if (msg.meeting_id !== state.meetingId) return;
    state.wantJoin = false;
    leaveRoom("Cuộc họp đã kết thúc. Cảm ơn bạn đã tham gia. (The meeting has ended. Thank you.)");
  },
  media_reset(msg) {
    // the server moved our media to another node: a new peer connection, same meeting
    if (!state.inRoom || !state.media || msg.meeting_id !== state.meetingId) return;
    say($("media-notice"), "Đang chuyển sang máy chủ hình/tiếng khác… (Moving to another media server…)", "warn");
    clearRemote();
    media.start(state.role !== "viewer");
  },
  offer(msg) { media.onOffer(msg.sdp); },
  answer(msg) { media.onAnswer(msg.sdp); },
  ice(msg) { media.onIce(msg); },
  speaker(msg) { state.speaker = msg.endpoint; labelVideos(); },
  error(msg) {
    if (msg.ref && msg.ref === state.joinRef) return joinFailed(msg);
    if (media.onError(msg)) return;  // our offer's error: offered again (crossed) or shown (refused)
    if (msg.code === "unavailable") {
      say($("media-notice"), "Không có dịch vụ hình/tiếng (No media service): " + msg.message, "warn");
      return;
    }
    say($("info"), "Máy chủ báo lỗi (Server error): " + msg.message, "warn");
  },
};

function sendJoin() {
  if (!state.meetingId) {
    fatal("Liên kết này không gắn với cuộc họp nào. (This link is not for a meeting.)");
    return;
  }
  state.joinRef = signal.send("join", { meeting_id: state.meetingId });
}

function joinFailed(msg) {
  if (msg.code === "not_found" && /not open/.test(msg.message)) {
    say($("info"), "Cuộc họp chưa bắt đầu; trang sẽ tự vào khi cuộc họp mở. (The meeting is not open yet; this page joins by itself when it opens.)", "info");
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(() => state.wantJoin && !state.inRoom && sendJoin(), RETRY_JOIN_MS);
    return;
  }
  state.wantJoin = false;
  $("join").disabled = false;
  say($("info"), "Không vào được cuộc họp (Cannot join): " + msg.message, "error");
}

function leaveRoom(text) {
  state.inRoom = false;
  media.hangup();
  clearRemote();
  show($("room"), false);
  show($("lobby"), true);
  $("join").disabled = false;
  say($("info"), text, "info");
}

// --- rendering -----------------------------------------------------------------------------
function render() {
  const list = $("people");
  const people = [...state.participants].sort((a, b) => (a.name || "").localeCompare(b.name || "", "vi"));
  list.replaceChildren(...people.map((p) => {
    const li = document.createElement("li");
    li.dataset.endpoint = p.endpoint_id;
    const name = document.createElement("span");
    name.textContent = p.name + (p.endpoint_id === state.me ? " (bạn / you)" : "");
    li.append(name);
    const tags = [];
    if (ROLE[p.role]) tags.push([ROLE[p.role], ""]);
    if (state.hands.includes(p.endpoint_id)) tags.push(["giơ tay (hand)", "hand"]);
    if (state.floor === p.endpoint_id) tags.push(["phát biểu (floor)", "floor"]);
    for (const [text, cls] of tags) {
      const t = document.createElement("span");
      t.className = "tag " + cls;
      t.textContent = text;
      li.append(t);
    }
    if (state.role === "chair" && p.endpoint_id !== state.me && state.floor !== p.endpoint_id) {
      const b = document.createElement("button");
      b.className = "grant";
      b.dataset.endpoint = p.endpoint_id;
      b.textContent = "Mời phát biểu (Give floor)";
      li.append(b);
    }
    return li;
  }));
  $("count").textContent = String(people.length);
  const holder = state.participants.find((p) => p.endpoint_id === state.floor);
  $("floor").textContent = holder ? `Đang phát biểu (Floor): ${holder.name}` : "";
  show($("floor"), !!holder);
  labelVideos();
  const hand = $("hand");
  hand.setAttribute("aria-pressed", String(state.handUp));
  hand.classList.toggle("on", state.handUp);
  hand.innerHTML = state.handUp ? 'Hạ tay <span class="en">(Lower hand)</span>' : 'Giơ tay <span class="en">(Raise hand)</span>';
  const micOff = media.userOff.audio || media.chairMuted.audio;
  $("mic").innerHTML = micOff ? 'Bật micro <span class="en">(Unmute)</span>' : 'Tắt micro <span class="en">(Mute)</span>';
  $("mic").setAttribute("aria-pressed", String(!micOff));
  const camOff = media.userOff.video || media.chairMuted.video;
  $("cam").innerHTML = camOff ? 'Bật camera <span class="en">(Camera on)</span>' : 'Tắt camera <span class="en">(Camera off)</span>';
}

// One element per remote track: video tiles (muted) and hidden audio elements. The node's
// video slots carry changing publishers ("main": floor holder, else the active speaker).
function addRemote(stream, track) {
  const id = "remote-" + track.id;
  if (document.getElementById(id)) return;
  let el;
  if (track.kind === "audio") {
    el = document.createElement("audio");
    el.autoplay = true;
    el.id = id;
    el.srcObject = new MediaStream([track]);
    document.body.append(el);
  } else {
    el = document.createElement("div");
    el.className = "video remote";
    el.id = id;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    video.srcObject = new MediaStream([track]);
    const label = document.createElement("span");
    label.className = "name";
    el.append(video, label);
    $("videos").append(el);
    labelVideos();
  }
  track.addEventListener("ended", () => { el.remove(); labelVideos(); });
}

function clearRemote() {
  document.querySelectorAll(".video.remote, audio[id^=remote-]").forEach((el) => el.remove());
}

function nameOf(id) {
  const p = state.participants.find((x) => x.endpoint_id === id);
  return p ? p.name : "";
}

function labelVideos() {
  const main = nameOf(state.floor) || nameOf(state.speaker);
  document.querySelectorAll(".video.remote .name").forEach((label, i) => {
    label.textContent = i === 0 ? "Hình chính (Main)" + (main ? ": " + main : "") : "Trình chiếu (Slides)";
  });
}

// --- camera preview and buttons --------------------------------------------------------------
async function openCamera() {
  show($("retry-camera"), false);
  try {
    const stream = await media.preview();
    $("preview").srcObject = stream;
    if (!media.screen) $("self").srcObject = stream;
    media.attachLocal();  // joined before the camera was ready, or retried after a denial
    say($("camera"), `Camera và micro sẵn sàng (${stream.getTracks().length} nguồn). (Camera and microphone ready.)`, "info");
  } catch (err) {
    say($("camera"), err.message + " Bạn vẫn có thể tham gia để xem và nghe. (You can still join to watch and listen.)", "error");
    show($("retry-camera"), true);
  }
}

$("join").addEventListener("click", () => {
  state.wantJoin = true;
  $("join").disabled = true;
  sendJoin();
});
$("retry-camera").addEventListener("click", openCamera);
$("people").addEventListener("click", (ev) => {  // chair links only
  const b = ev.target.closest("button.grant");
  if (b) signal.send("grant_floor", { endpoint_id: b.dataset.endpoint });
});
$("hand").addEventListener("click", () => signal.send(state.handUp ? "lower_hand" : "raise_hand"));
$("mic").addEventListener("click", () => {
  if (media.chairMuted.audio && !state.handUp) { signal.send("raise_hand"); return; }  // ask the chair instead
  media.setUserOff("audio", !media.userOff.audio);
  render();
});
$("cam").addEventListener("click", () => { media.setUserOff("video", !media.userOff.video); render(); });
$("share").addEventListener("click", async () => {
  const btn = $("share");
  const reset = () => { btn.innerHTML = 'Chia sẻ màn hình <span class="en">(Share screen)</span>'; $("self").srcObject = media.local; };
  try {
    if (media.screen) { await media.stopShare(); reset(); return; }
    const t = await media.shareScreen(reset);
    if (t) {
      btn.innerHTML = 'Dừng chia sẻ <span class="en">(Stop sharing)</span>';
      $("self").srcObject = new MediaStream([t]);
    }
  } catch (err) {
    say($("info"), err.message, "error");
  }
});
$("leave").addEventListener("click", () => {
  state.wantJoin = false;
  signal.send("leave");
  leaveRoom("Bạn đã rời cuộc họp. (You left the meeting.)");
});
window.addEventListener("beforeunload", () => signal.stop());
window.giaobanJoin = { state, media, signal };  // for diagnostics from the browser console and tests

if (!token) {
  fatal("Liên kết không đầy đủ: thiếu mã tham gia. Hãy mở đúng liên kết được gửi cho bạn. (The link is incomplete: it has no join token.)");
} else {
  signal.start();
  openCamera();
}

// the refusal the officials meet most (a browser without the meeting's video codec), said in Vietnamese
function refusedWhy(reason) {
  const codecs = /the offer's video codecs are (.*); this meeting takes ([A-Z0-9, ]+)/.exec(reason || "");
  if (!codecs) return ".";
  return `. Trình duyệt này gửi hình bằng ${codecs[1]}, cuộc họp chỉ nhận ${codecs[2].trim()}: ` +
    "hãy dùng Chromium hoặc Chrome, hoặc báo cán bộ kỹ thuật đổi chuẩn nén video của cuộc họp.";
}

