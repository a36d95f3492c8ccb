// Camera, microphone, screen sharing and the RTCPeerConnection to the meeting's media node.
// SDP and ICE travel over the signaling WebSocket: our offer -> answer; server-made offers
// (renegotiation when other publishers appear) -> our answer. Work is serialised on one chain.

// An error on our offer other than "offer_refused" is offered again: a crossed offer ("retry": the
// server's own offer was in flight, or the peer was busy) after the server's offer is answered, a
// media node unavailable or lost meanwhile after a timer; at most GLARE_TRIES times,
// GLARE_BACKOFF_MS doubling up to GLARE_BACKOFF_MAX_MS: about 40 s, long enough for a busy node or
// a cluster moving the meeting to a live media node. "offer_refused" is final and shown.
const GLARE_TRIES = 12;
const GLARE_BACKOFF_MS = 500;
const GLARE_BACKOFF_MAX_MS = 4000;

export class MediaError extends Error {
  constructor(kind, message) { super(message); this.kind = kind; }
}

function explain(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return new MediaError("denied", "Trình duyệt không cho phép dùng camera/micro. Hãy bấm biểu tượng ổ khóa trên thanh địa chỉ, cho phép camera và micro, rồi bấm Thử lại. (Camera/microphone access was denied: allow it in the address bar, then Retry.)");
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return new MediaError("missing", "Không tìm thấy camera hoặc micro. Bạn vẫn có thể xem và nghe. (No camera or microphone found; you can still watch and listen.)");
  }
  if (name === "NotReadableError") {
    return new MediaError("busy", "Camera hoặc micro đang được ứng dụng khác dùng. (The camera or microphone is in use by another application.)");
  }
  return new MediaError("other", "Không mở được camera/micro (Cannot open camera/microphone): " + (err && err.message || err));
}

function markSlides(sdp, mid) {
  const sections = sdp.split(/\r\n(?=m=)/);
  return sections.map((sec) => (sec.includes(`\r\na=mid:${mid}\r\n`) && !sec.includes("a=content:")
    ? sec.replace(`\r\na=mid:${mid}\r\n`, `\r\na=mid:${mid}\r\na=content:slides\r\n`) : sec)).join("\r\n");
}

export class Media {
  constructor({ send, onTrack, onState, onRefused, onOfferFailed }) {
    this.send = send;          // (type, fields) => request id
    this.onTrack = onTrack;    // (stream) => void, for every new remote stream
    this.onState = onState;    // (state) => void: connecting | connected | failed | closed
    this.onRefused = onRefused;  // (error message) => void: the server will not serve our offer
    this.onOfferFailed = onOfferFailed;  // (error) => void: the browser could not apply the server's offer
    this.local = null;         // MediaStream from the camera + microphone
    this.screen = null;        // MediaStreamTrack while sharing the screen
    this.pc = null;
    this.chain = Promise.resolve();
    this.heldIce = null;       // our candidates while our offer waits for its answer (it may be refused)
    this.glareTries = 0;
    this.chairMuted = { audio: false, video: false };
    this.userOff = { audio: false, video: false };
  }

  async preview() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new MediaError("insecure", "Trang này cần HTTPS để dùng camera. (This page needs HTTPS to use the camera.)");
    }
    this.stopLocal();
    try {
      this.local = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true },
        video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 25 } },
      });
    } catch (err) {
      throw explain(err);
    }
    this._applyEnabled();
    return this.local;
  }

  stopLocal() {
    if (this.local) this.local.getTracks().forEach((t) => t.stop());
    this.local = null;
  }

  track(kind) {
    return this.local ? this.local.getTracks().find((t) => t.kind === kind) || null : null;
  }

  _queue(fn) {
    this.chain = this.chain.then(fn).catch((err) => console.warn("media:", err));
    return this.chain;
  }

  // publish = false for viewers: receive only
  start(publish = true) {
    return this._queue(async () => {
      this._closePc();
      const pc = new RTCPeerConnection({ iceServers: [] });
      this.pc = pc;
      for (const kind of ["audio", "video"]) {
        const t = this.track(kind);
        if (!publish) pc.addTransceiver(kind, { direction: "recvonly" });
        else if (t) pc.addTransceiver(t, { direction: "sendrecv", streams: [this.local] });
        else pc.addTransceiver(kind, { direction: "sendrecv" });  // a slot for a later camera or screen
      }
      pc.onicecandidate = (ev) => {
        if (pc !== this.pc) return;
        const c = ev.candidate;
        const fields = c && c.candidate
          ? { candidate: c.candidate, sdp_mid: c.sdpMid, sdp_mline_index: c.sdpMLineIndex }
          : { candidate: "" };
        if (this.heldIce) this.heldIce.push(fields);
        else this.send("ice", fields);
      };
      pc.ontrack = (ev) => {
        const stream = ev.streams[0] || new MediaStream([ev.track]);
        this.onTrack(stream, ev.track);
      };
      pc.onconnectionstatechange = () => this.onState(pc.connectionState);
      if (this.screen) this.screenTx = pc.addTransceiver(this.screen, { direction: "sendonly" });
      await this._offer();
      this.onState("connecting");
    });
  }

  // Our offer (first one, or a renegotiation after adding/removing the screen share). The copy
  // sent to the server marks the screen m-line with a=content:slides (RFC 4796).
  async _offer() {
    const pc = this.pc;
    this.needOffer = false;
    this.heldIce = this.heldIce || [];  // sent once a description of the server's is applied
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    let sdp = pc.localDescription.sdp;
    if (this.screenTx && this.screenTx.mid !== null) sdp = markSlides(sdp, this.screenTx.mid);
    this.offerRef = this.send("offer", { sdp });
  }

  renegotiate() {
    return this._queue(async () => {
      if (!this.pc) return;
      if (this.pc.signalingState === "stable") await this._offer();
      else this.needOffer = true;  // after the exchange in progress
    });
  }

  // An error on our offer (true) or not ours (false). Crossed: the server's offer comes next; we
  // answer it and then offer again. Refused (or crossed too often): told through onRefused.
  onError(msg) {
    if (!msg.ref || msg.ref !== this.offerRef) return false;
    // only "offer_refused" is final: "retry", and a node unavailable or lost meanwhile (a cluster
    // moving the meeting after a media node died), are worth offering again
    if (msg.code === "offer_refused" || this.glareTries >= GLARE_TRIES) {
      this._refused(msg.message);
      return true;
    }
    const delay = Math.min(GLARE_BACKOFF_MAX_MS, GLARE_BACKOFF_MS * 2 ** this.glareTries++);
    this._queue(async () => {
      if (this.pc && this.pc.signalingState === "have-local-offer") await this.pc.setLocalDescription({ type: "rollback" });
      this.needOffer = true;
    });
    setTimeout(() => { if (this.needOffer) this.renegotiate(); }, delay);
    return true;
  }

  // A first offer refused leaves no peer on the server: the connection is closed, its candidates
  // dropped unsent. A refused renegotiation is rolled back; the connection keeps its media.
  _refused(message) {
    return this._queue(async () => {
      this.heldIce = null;
      this.needOffer = false;
      if (this.pc && !this.pc.currentRemoteDescription) this._closePc();
      else if (this.pc && this.pc.signalingState === "have-local-offer") await this.pc.setLocalDescription({ type: "rollback" });
      if (this.onRefused) this.onRefused(message);
    });
  }

  _releaseIce() {
    const held = this.heldIce || [];
    this.heldIce = null;
    for (const fields of held) this.send("ice", fields);
  }

  onAnswer(sdp) {
    return this._queue(async () => {
      if (this.pc && this.pc.signalingState === "have-local-offer") {
        await this.pc.setRemoteDescription({ type: "answer", sdp });
        this.glareTries = 0;
        this._releaseIce();
        if (this.needOffer) await this._offer();
      }
    });
  }

  onOffer(sdp) {
    return this._queue(async () => {
      if (!this.pc) return;
      if (this.pc.signalingState === "have-local-offer") await this.pc.setLocalDescription({ type: "rollback" });
      try {
        await this.pc.setRemoteDescription({ type: "offer", sdp });
      } catch (err) {  // new lines (a screen share, another speaker) will not arrive: said on the page
        if (this.onOfferFailed) this.onOfferFailed(err);
        throw err;
      }
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      this.send("answer", { sdp: this.pc.localDescription.sdp });
      this._releaseIce();
      if (this.needOffer) await this._offer();
    });
  }

  onIce(msg) {
    return this._queue(async () => {
      if (!this.pc || !msg.candidate) return;
      await this.pc.addIceCandidate({ candidate: msg.candidate, sdpMid: msg.sdp_mid, sdpMLineIndex: msg.sdp_mline_index });
    });
  }

  async shareScreen(onEnded) {
    if (!navigator.mediaDevices.getDisplayMedia) throw new MediaError("other", "Trình duyệt này không chia sẻ được màn hình. (This browser cannot share the screen.)");
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 10 } }, audio: false });
    } catch (err) {
      if (err && err.name === "NotAllowedError") return null;  // the user closed the picker
      throw explain(err);
    }
    this.screen = stream.getVideoTracks()[0];
    this.screen.contentHint = "detail";
    this.screen.onended = () => { this.stopShare(); onEnded(); };
    // the screen is a second video m-line (the "slides" the media node routes first); the camera stays on
    await this._queue(async () => {
      if (!this.pc) return;
      if (this.screenTx) {
        this.screenTx.direction = "sendonly";
        await this.screenTx.sender.replaceTrack(this.screen);
      } else {
        this.screenTx = this.pc.addTransceiver(this.screen, { direction: "sendonly" });
      }
    });
    await this.renegotiate();
    return this.screen;
  }

  async stopShare() {
    const t = this.screen;
    this.screen = null;
    if (t) { t.onended = null; t.stop(); }
    await this._queue(async () => {
      if (!this.pc || !this.screenTx) return;
      await this.screenTx.sender.replaceTrack(null);
      this.screenTx.direction = "inactive";
    });
    await this.renegotiate();
  }

  // The camera opened (or reopened) after the call started: put its tracks into the existing slots.
  attachLocal() {
    return this._queue(async () => {
      if (!this.pc || !this.local) return;
      await this._replace("audio", this.track("audio"));
      await this._replace("video", this.track("video"));
    });
  }

  async _replace(kind, track) {
    if (!this.pc) return;
    const tr = this.pc.getTransceivers().find((x) => x !== this.screenTx && x.receiver.track && x.receiver.track.kind === kind);
    if (!tr) return;
    await tr.sender.replaceTrack(track);
    if (track && this.local && tr.sender.setStreams) tr.sender.setStreams(this.local);
  }

  // user toggles (mic / camera buttons) and chair mutes both switch the local track off
  setUserOff(kind, off) { this.userOff[kind] = off; this._applyEnabled(); }
  setChairMuted(kind, muted) { this.chairMuted[kind] = muted; this._applyEnabled(); }

  _applyEnabled() {
    for (const kind of ["audio", "video"]) {
      const t = this.track(kind);
      if (t) t.enabled = !this.userOff[kind] && !this.chairMuted[kind];
    }
  }

  _closePc() {
    this.screenTx = null;
    this.needOffer = false;
    this.heldIce = null;
    if (this.pc) {
      this.pc.onicecandidate = this.pc.ontrack = this.pc.onconnectionstatechange = null;
      this.pc.close();
    }
    this.pc = null;
  }

  hangup() {
    return this._queue(async () => { this._closePc(); this.onState("closed"); });
  }
}
