"""A light synthetic room terminal for the province load test.

It follows the production client contract over WebSocket protocol v1:

* it is given the list of signaling URLs; ``hello{token}`` then ``join{meeting_id}``; after
  ``joined`` it opens a peer connection and sends an offer;
* on WebSocket loss it reconnects to the *next* URL (same token), rejoins and offers on a new
  peer connection;
* on ``media_reset`` it closes its peer connection and offers on a new one;
* server ``offer`` (more slots) is answered on the same peer connection.

Media is cheap on purpose: aiortc negotiates ICE/DTLS, and ``sfu_fanout.hook_count`` swallows
incoming SRTP at the ICE socket (no decryption, no decoding). On top of it a second hook reads
the clear RTP header (SSRC, sequence number) of each packet, so every output the server sends
has a received count and an expected count (the span of the server's sequence numbers for it).
Only the chair and the commune holding the floor send: pre-encoded 720p VP8
(``sfu_fanout.PreencodedTrack``) and a tone (``endpoints.agent.sources.ToneTrack``).

A terminal on a thin or mobile link reports a REMB of ``REMB_BY_LINK`` once a second for its
composite output, as its real uplink would: the server's rendition controller then keeps it on its
link-class rendition (360p / 180p) instead of climbing on the clean loopback.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import types
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy

from endpoints.agent.sources import ToneTrack
from loadtests.sfu_fanout import PreencodedTrack, hook_count
from mcu.peer.negotiation import describe
from mcu.sfu.rtp_header import remb

REMB_BY_LINK = {"thin": 600_000, "mobile": 250_000}  # bit/s: holds 360p and 180p (mcu.bridge.rendition_policy)
RENDITION_BY_LINK = {"fibre": "720p", "thin": "360p", "mobile": "180p"}  # composite start renditions
RECONNECT_DELAY_S = (0.1, 0.6)  # first retry after a loss: jittered, then doubling up to 2 s


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else "?"


async def _close_quietly(pc: RTCPeerConnection) -> None:
    try:
        await asyncio.wait_for(pc.close(), 5)
    except Exception:  # a peer whose node died: aiortc teardown may complain
        pass


class Gated(MediaStreamTrack):
    """Passes a source's frames only while ``running`` is set (the floor)."""

    def __init__(self, source: MediaStreamTrack, running: asyncio.Event) -> None:
        super().__init__()
        self.kind, self.source, self.running = source.kind, source, running

    async def recv(self):
        await self.running.wait()
        return await self.source.recv()


@dataclass
class Rx:
    """One output of the server as this terminal receives it (one SSRC)."""

    role: str  # main | audio | composite | mix | other
    kind: str
    count: int = 0
    bytes: int = 0
    base: int = -1  # first sequence number
    hi: int = -1  # highest extended sequence number
    last: float = 0.0


@dataclass
class Peer:
    """One peer connection (a generation: a reset or a reconnect makes a new one)."""

    pc: RTCPeerConnection
    gen: int
    created: float
    rx: dict[int, Rx] = field(default_factory=dict)  # by SSRC
    roles: dict[str, str] = field(default_factory=dict)  # mid -> role
    own_mids: set[str] = field(default_factory=set)
    first_video: float | None = None
    video_ssrc: int | None = None  # what this terminal sends
    sent_video: int = 0
    composite_ssrc: int | None = None
    early_offer: str | None = None  # a server offer that arrived before the answer to ours


class Endpoint:
    def __init__(
        self,
        ep_id: str,
        link: str,
        rendition: str,
        token: str,
        urls: list[str],
        meeting_id: str,
        mode: str,
        frames: list | None,
        chair: bool = False,
        start_url: int = 0,
    ) -> None:
        self.id, self.link, self.rendition, self.token = ep_id, link, rendition, token
        self.urls, self.meeting_id, self.mode = urls, meeting_id, mode  # mode: sfu | mcu | both
        self.frames = frames  # pre-encoded VP8 when this terminal may send, else None
        self.chair = chair
        self.url_index = start_url
        self.sending = asyncio.Event()
        if chair:
            self.sending.set()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.peer: Peer | None = None
        self.gens = 0
        self.joined = False
        self.t_start = 0.0
        self.joined_at: float | None = None  # first join, relative to t_start
        self.first_media_at: float | None = None
        self.ws_losses: list[float] = []
        self.resets: list[float] = []
        self.reset_reasons: list[str] = []  # the media_reset's "reason", one per reset
        self.rejoins: list[float] = []
        self.errors: list[str] = []
        self.early_offers = 0  # server offers that overtook the server's answer (see _session)
        self.events: list[tuple[float, str]] = []  # (time, ws_lost|ws_open|welcome|joined|reset|offer|answer|video)
        self.floor: str | None = None
        self.stopped = False
        self.sent_video_total = 0  # over every generation
        self._closing: set[asyncio.Task] = set()

    # --- state for the report -------------------------------------------------------------------
    def media_ok(self, now: float, window: float = 1.0) -> bool:
        """In the meeting with video arriving on the current peer connection."""
        p = self.peer
        if not self.joined or p is None:
            return False
        return any(r.kind == "video" and now - r.last <= window for r in list(p.rx.values()))

    def diag(self) -> dict[str, Any]:
        """Where this terminal stands (for endpoints that did not get media back)."""
        p, now = self.peer, time.monotonic()
        return {
            "joined": self.joined,
            "url": self.url(),
            "gens": self.gens,
            "ws_losses": len(self.ws_losses),
            "resets": len(self.resets),
            "errors": self.errors[-3:],
            "early_offers": self.early_offers,
            "pc": None
            if p is None
            else {
                "state": p.pc.connectionState,
                "signaling": p.pc.signalingState,
                "age_s": round(now - p.created, 2),
                "outputs": {f"{r.role}/{ssrc}": r.count for ssrc, r in list(p.rx.items())},
            },
        }

    def url(self) -> str:
        return self.urls[self.url_index % len(self.urls)]

    # --- media hook -----------------------------------------------------------------------------
    def _install_hook(self, peer: Peer) -> None:
        holder = types.SimpleNamespace(count=0, first=None, protocols=[])
        hook_count(peer.pc, holder)  # swallows SRTP before aiortc (counted in holder.count)
        for proto in holder.protocols:
            counting = proto.datagram_received

            def per_output(data: bytes, addr: Any, counting: Any = counting) -> None:
                if 127 < data[0] < 192 and not (191 < data[1] < 209) and len(data) >= 12:
                    self._on_rtp(peer, data)
                counting(data, addr)

            proto.datagram_received = per_output

    def _on_rtp(self, peer: Peer, data: bytes) -> None:
        ssrc = int.from_bytes(data[8:12], "big")
        r = peer.rx.get(ssrc)
        if r is None:
            return  # RTX or not described yet
        now = time.monotonic()
        seq = data[2] << 8 | data[3]
        if r.hi < 0:
            r.base = r.hi = seq
        else:
            delta = (seq - (r.hi & 0xFFFF)) & 0xFFFF
            if delta < 0x8000:
                r.hi += delta
        r.count += 1
        r.bytes += len(data)
        r.last = now
        if r.kind == "video" and peer.first_video is None:
            peer.first_video = now
            self.events.append((now, "video"))
            if self.first_media_at is None:
                self.first_media_at = now - self.t_start

    def _learn_outputs(self, peer: Peer, sdp: str) -> None:
        """SSRC -> role from the server's SDP: our own m-lines are main/audio (sfu, both) or
        composite/mix (mcu); m-lines the server adds are composite then mix, then audio."""
        lines = describe(sdp)
        added_video = added_audio = 0
        for mid, line in lines.items():
            if mid not in peer.roles:
                if self.mode == "mcu" or mid in peer.own_mids:
                    mcu = self.mode == "mcu"
                    role = ("composite" if mcu else "main") if line.kind == "video" else ("mix" if mcu else "audio")
                elif line.kind == "video":
                    role = "composite" if added_video == 0 and self.mode == "both" else "other"
                else:
                    role = "mix" if added_audio == 0 and self.mode == "both" else "audio"
                peer.roles[mid] = role
            role = peer.roles[mid]
            if line.kind == "video" and mid not in peer.own_mids:
                added_video += 1
            if line.kind == "audio" and mid not in peer.own_mids:
                added_audio += 1
            if line.direction not in ("sendrecv", "sendonly"):
                continue  # the server sends nothing on it
            for ssrc in line.ssrcs:
                if ssrc not in peer.rx:
                    peer.rx[ssrc] = Rx(role, line.kind)
                if role == "composite":
                    peer.composite_ssrc = ssrc

    # --- peer connection ------------------------------------------------------------------------
    async def _new_peer(self) -> None:
        await self._close_peer()
        self.gens += 1
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        peer = Peer(pc, self.gens, time.monotonic())
        if self.frames is not None:
            video = PreencodedTrack(self.frames)
            vt = pc.addTransceiver(Gated(video, self.sending), direction="sendrecv")
            vt.setCodecPreferences(
                [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")]
            )
            video.sender = vt.sender  # a PLI makes the track jump to a key frame
            pc.addTransceiver(Gated(ToneTrack(), self.sending), direction="sendrecv")
        else:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
        self.peer = peer
        await pc.setLocalDescription(await pc.createOffer())
        peer.own_mids = {t.mid for t in pc.getTransceivers() if t.mid is not None}
        if self.frames is not None:
            self._count_sent(peer)
        self._install_hook(peer)
        await self._send("offer", sdp=pc.localDescription.sdp)
        self.events.append((time.monotonic(), "offer"))

    def _count_sent(self, peer: Peer) -> None:
        sender = peer.pc.getTransceivers()[0].sender
        peer.video_ssrc = sender._ssrc
        dtls = sender.transport
        original = dtls._send_rtp

        async def counting(data: bytes) -> None:
            if not (191 < data[1] < 209) and int.from_bytes(data[8:12], "big") == peer.video_ssrc:
                peer.sent_video += 1
                self.sent_video_total += 1
            await original(data)

        dtls._send_rtp = counting

    async def _close_peer(self, wait: bool = False) -> None:
        """Drop the current peer connection; its teardown runs in the background (tracked) so a
        new offer does not wait for it, unless ``wait`` (at the end of the run)."""
        peer, self.peer = self.peer, None
        if peer is not None:
            task = asyncio.ensure_future(_close_quietly(peer.pc))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if wait and self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

    async def send_remb(self) -> None:
        """Once a second (called by the scenario's ticker): the thin/mobile uplink's estimate."""
        p = self.peer
        rate = REMB_BY_LINK.get(self.link)
        if p is None or rate is None or p.composite_ssrc is None or p.pc.connectionState != "connected":
            return
        transceivers = p.pc.getTransceivers()
        try:
            dtls = transceivers[0].receiver.transport
            await dtls._send_rtp(remb(transceivers[0].sender._ssrc or 1, rate, [p.composite_ssrc]))
        except Exception:
            pass

    # --- signaling ------------------------------------------------------------------------------
    async def _send(self, type_: str, **fields: Any) -> None:
        ws = self.ws
        if ws is not None and not ws.closed:
            await ws.send_json({"v": 1, "type": type_, **fields})

    async def run(self, session: aiohttp.ClientSession, t_start: float, deadline: float) -> None:
        """Connect, join, keep the meeting until stopped; reconnect to the next URL on a loss."""
        self.t_start = t_start
        delay = RECONNECT_DELAY_S[0] + random.uniform(0, RECONNECT_DELAY_S[1] - RECONNECT_DELAY_S[0])
        attempts = 0
        while not self.stopped and time.monotonic() < deadline and attempts < 200:
            attempts += 1
            url = self.url().replace("http", "ws", 1) + "/ws"
            try:
                self.ws = await session.ws_connect(url, heartbeat=5, timeout=aiohttp.ClientWSTimeout(ws_close=2))
                self.events.append((time.monotonic(), "ws_open"))
                await self._session()
                reason = f"closed ({self.ws.close_code})"
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a failed negotiation: counted, then the same path as a loss
                reason = f"{type(exc).__name__}: {exc}"
                self.errors.append(f"{reason[:160]} at {_where(exc)}")
            finally:
                was_in = self.joined
                self.joined = False
                ws, self.ws = self.ws, None
                if ws is not None and not ws.closed:
                    await ws.close()
            if self.stopped:
                break
            if was_in:
                self.ws_losses.append(time.monotonic())
                self.events.append((self.ws_losses[-1], "ws_lost"))
                delay = RECONNECT_DELAY_S[0] + random.uniform(0, RECONNECT_DELAY_S[1] - RECONNECT_DELAY_S[0])
            else:
                self.errors.append(reason[:120])
            await self._close_peer()
            self.url_index += 1  # the next signaling node
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
        await self._close_peer(wait=True)

    async def _session(self) -> None:
        await self._send("hello", token=self.token)
        async for raw in self.ws:
            if raw.type != aiohttp.WSMsgType.TEXT:
                return
            msg = json.loads(raw.data)
            kind = msg.get("type")
            if kind in ("welcome", "joined", "answer", "media_reset"):
                self.events.append((time.monotonic(), "reset" if kind == "media_reset" else kind))
            if kind == "welcome":
                await self._send("join", meeting_id=self.meeting_id)
            elif kind == "joined":
                self.joined = True
                now = time.monotonic()
                if self.joined_at is None:
                    self.joined_at = now - self.t_start
                else:
                    self.rejoins.append(now)
                self.floor = msg.get("floor")
                self._apply_floor()
                await self._new_peer()
            elif kind == "answer" and self.peer is not None:
                await self.peer.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
                self._learn_outputs(self.peer, msg["sdp"])
                early, self.peer.early_offer = self.peer.early_offer, None
                if early is not None:
                    await self._answer(early)
            elif kind == "offer" and self.peer is not None:
                if self.peer.pc.signalingState == "have-local-offer":
                    # the server's offer overtook its answer to ours: answer it right after
                    self.early_offers += 1
                    self.peer.early_offer = msg["sdp"]
                else:
                    await self._answer(msg["sdp"])
            elif kind == "media_reset" and self.joined:
                self.resets.append(time.monotonic())
                self.reset_reasons.append(str(msg.get("reason", "")))
                await self._new_peer()
            elif kind == "floor":
                self.floor = msg.get("endpoint_id")
                self._apply_floor()
            elif kind == "error":
                self.errors.append(f"{msg.get('code')}: {msg.get('message', '')[:100]}")
            elif kind in ("left", "removed", "meeting_closed"):
                self.joined = False

    async def _answer(self, sdp: str) -> None:
        pc = self.peer.pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        self._learn_outputs(self.peer, sdp)
        await self._send("answer", sdp=pc.localDescription.sdp)

    def _apply_floor(self) -> None:
        if self.chair or self.frames is None:
            return
        if self.floor == self.id:
            self.sending.set()
        else:
            self.sending.clear()

    async def grant_floor(self, endpoint_id: str) -> None:
        await self._send("grant_floor", endpoint_id=endpoint_id)

    async def stop(self) -> None:
        self.stopped = True
        ws = self.ws
        if ws is not None and not ws.closed:
            await ws.close()
        await self._close_peer(wait=True)
