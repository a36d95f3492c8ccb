"""One endpoint's peer connection on the media node (implements signaling.media.MediaPeer).

aiortc negotiates (ICE, DTLS, SDP with standard codecs and SSRCs); the media itself bypasses
aiortc's RTP objects:

* incoming: the peer replaces ``_handle_rtp_data`` / ``_handle_rtcp_data`` on its
  ``RTCDtlsTransport`` (aiortc awaits these per decrypted packet). RTP goes straight to the
  publisher ``Stream`` found by SSRC; RTCP feedback (PLI, FIR, NACK, RR) for the peer's outputs
  goes to the router.
* outgoing: every send m-line is an ``Output`` bound to the transport's SRTP session and ICE
  socket; aiortc's sender only sends RTCP sender reports for it (its track is idle).

Every SDP operation runs in the peer's single owner task, fed by a bounded queue (overflow
policy: reject the new operation with ``PeerBusy``), so negotiations never interleave. The
server makes an offer when the meeting needs more send m-lines (another speaker's audio, a
screen share); the client answers with ``handle_answer``. While a server offer is outstanding a
client offer is refused (``Glare``): the client is the polite side and must answer first.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, clock
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import candidate_from_sdp

from .negotiation import MLine, NegotiationError, describe, receives, sends, set_codec
from .rtp_header import U32, find_extension, parse_feedback, pli, payload_bounds
from .stream import Stream
from .subscriber import Output
from .tracks import IdleTrack

if TYPE_CHECKING:
    from signaling.media import PeerSpec

    from .meeting import Meeting

log = logging.getLogger("mcu.peer")

OPS_QUEUE_SIZE = 32
# Kernel buffers of a peer's UDP socket. Receive: a 720p key frame arrives as a burst of ~100
# packets; the default 208 KiB (about 90 packets of real memory) overflows. Send: this is the
# per-subscriber queue; when full, packets are dropped (see subscriber.Output).
SOCKET_RCVBUF = 1 << 20
SOCKET_SNDBUF = 512 << 10


class PeerError(RuntimeError):
    """A request on a media peer that cannot be served (maps to a client error)."""


class PeerBusy(PeerError):
    pass


class Glare(PeerError):
    pass


class PeerClosed(PeerError):
    pass


class LocalPeer:
    def __init__(
        self,
        meeting: "Meeting",
        spec: "PeerSpec",
        events: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        video_codec: str = "VP8",
        audio_codec: str = "opus",
        keyframe_interval: float = 0.5,
    ) -> None:
        self.meeting = meeting
        self.spec = spec
        self.endpoint_id = spec.endpoint_id
        self.events = events
        # WHIP/WHEP clients cannot take server offers: spec.extra["renegotiate"] = False keeps
        # the peer to the m-lines of its own offer
        self.renegotiate = bool(spec.extra.get("renegotiate", True))
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        self.keyframe_interval = keyframe_interval
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.streams: dict[str, Stream] = {}  # by mid
        self.outputs: dict[str, Output] = {}  # by mid
        self.pending_roles: list[str] = []  # roles of offered, not yet answered m-lines
        self._roles: dict[str, str] = {}  # mid -> output role
        self._by_ssrc: dict[int, Stream | None] = {}
        self._mid_ext: dict[int, int] = {}
        self._by_mid_value: dict[bytes, Stream] = {}
        self._out_by_ssrc: dict[int, Output] = {}
        self._dtls: Any = None
        self._link: tuple[Any, Any, Any] | None = None
        self._rtcp_ssrc = 0
        self._offer_outstanding = False
        self._want_offer = False
        self._answered_once = False
        self._ops: asyncio.Queue = asyncio.Queue(OPS_QUEUE_SIZE)
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.closed = False
        self.congested = False  # set by the meeting from RTCP receiver reports
        self._close_task: asyncio.Task | None = None
        self.unknown_packets = 0

    # -- MediaPeer API ---------------------------------------------------------------------

    async def handle_offer(self, sdp: str) -> str:
        return await self._submit(lambda: self._apply_offer(sdp))

    async def handle_answer(self, sdp: str) -> None:
        await self._submit(lambda: self._apply_answer(sdp))

    async def add_ice_candidate(self, candidate: dict[str, Any] | None) -> None:
        await self._submit(lambda: self._add_candidate(candidate))

    async def set_muted(self, kind: str, muted: bool) -> None:
        for stream in list(self.streams.values()):
            if stream.kind == kind:
                stream.set_muted(muted)

    async def close(self) -> None:
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._close_task)

    # -- owner task ------------------------------------------------------------------------

    async def _submit(self, op: Callable[[], Awaitable[Any]]) -> Any:
        if self.closed:
            raise PeerClosed(f"peer {self.endpoint_id} is closed")
        fut = asyncio.get_running_loop().create_future()
        try:
            self._ops.put_nowait((op, fut))
        except asyncio.QueueFull:
            raise PeerBusy(f"peer {self.endpoint_id}: too many pending operations") from None
        return await fut

    def post(self, op: Callable[[], Awaitable[Any]]) -> None:
        """Queue an operation nobody waits for (renegotiation, notifications)."""
        if self.closed:
            return
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        try:
            self._ops.put_nowait((op, fut))
        except asyncio.QueueFull:
            fut.set_exception(PeerBusy("operation queue full"))

    async def _run(self) -> None:
        while True:
            op, fut = await self._ops.get()
            if fut.done():
                continue
            try:
                result = await op()
            except asyncio.CancelledError:
                fut.cancel()
                raise
            except Exception as exc:  # handed to the caller
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(result)

    # -- negotiation -----------------------------------------------------------------------

    async def _apply_offer(self, sdp: str) -> str:
        if self._offer_outstanding:
            raise Glare("answer the server's offer before making a new one")
        remote = describe(sdp)
        known = {t.mid for t in self.pc.getTransceivers() if t.mid is not None}
        for line in remote.values():
            if line.mid in known:
                continue
            codec = self.video_codec if line.kind == "video" else self.audio_codec
            direction = "sendrecv" if receives(line.direction) else "recvonly"
            if not (self.spec.publish and sends(line.direction)):
                direction = "sendonly" if receives(line.direction) else "inactive"
            track = IdleTrack(line.kind) if receives(line.direction) else None
            t = self.pc.addTransceiver(track or line.kind, direction=direction)
            set_codec(t, line.kind, codec)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:
            raise NegotiationError(f"cannot apply offer: {exc}") from exc
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        local = describe(self.pc.localDescription.sdp)
        self._install_hooks()
        for mid, line in local.items():
            rline = remote.get(mid)
            if rline is None:
                continue
            if self.spec.publish and sends(rline.direction) and mid not in self.streams:
                self._add_stream(mid, line, rline)
            if receives(rline.direction) and mid not in self.outputs:
                self._add_output(mid, line, self._role_for_client_mline(line))
        self._answered_once = True
        self.meeting.peer_changed(self)
        return self.pc.localDescription.sdp

    async def _apply_answer(self, sdp: str) -> None:
        if not self._offer_outstanding:
            raise NegotiationError("no server offer is waiting for an answer")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:
            raise NegotiationError(f"cannot apply answer: {exc}") from exc
        self._offer_outstanding = False
        remote = describe(sdp)
        for mid, role in list(self._roles.items()):
            line = remote.get(mid)
            if mid not in self.outputs and line is not None and receives(line.direction):
                self._add_output(mid, line, role)
        self.pending_roles = []
        self._install_hooks()
        self.meeting.peer_changed(self)
        if self._want_offer:
            self._want_offer = False
            await self._make_offer()

    async def _add_candidate(self, candidate: dict[str, Any] | None) -> None:
        if candidate is None or not candidate.get("candidate"):
            await self.pc.addIceCandidate(None)
            return
        text = candidate["candidate"]
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        c = candidate_from_sdp(text)
        c.sdpMid = candidate.get("sdpMid")
        c.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self.pc.addIceCandidate(c)

    def request_slots(self, roles: list[str]) -> None:
        """The meeting wants more send m-lines for this peer: offer them (in the owner task)."""
        if self.closed or not roles or not self.renegotiate:
            return
        self.post(lambda: self._offer_slots(roles))

    async def _offer_slots(self, roles: list[str]) -> None:
        missing = self.meeting.missing_roles(self)
        if not missing:
            return
        if self._offer_outstanding or not self._answered_once:
            self._want_offer = True
            return
        await self._make_offer()

    async def _make_offer(self) -> None:
        missing = self.meeting.missing_roles(self)
        if not missing or self.closed:
            return
        for role in missing:
            kind = "audio" if role == "audio" else "video"
            t = self.pc.addTransceiver(IdleTrack(kind), direction="sendonly")
            set_codec(t, kind, self.audio_codec if kind == "audio" else self.video_codec)
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        new_mids = [t.mid for t in self.pc.getTransceivers()[-len(missing) :]]
        for mid, role in zip(new_mids, missing):
            self._roles[mid] = role
        self.pending_roles = list(missing)
        self._offer_outstanding = True
        await self.events({"type": "offer", "sdp": self.pc.localDescription.sdp})

    def _role_for_client_mline(self, line: MLine) -> str:
        if line.kind == "audio":
            return "audio"
        if line.content == "slides":
            return "slides"
        roles = list(self._roles.values())
        if "main" not in roles:
            return "main"
        return "slides" if "slides" not in roles else "extra"

    def _add_stream(self, mid: str, local: MLine, remote: MLine) -> None:
        if local.kind == "audio":
            source = "mic"
        elif remote.content == "slides" or any(s.source == "camera" for s in self.streams.values()):
            source = "screen"
        else:
            source = "camera"
        stream = Stream(
            stream_id=f"{self.endpoint_id}/{mid}",
            endpoint_id=self.endpoint_id,
            kind=local.kind,
            source=source,
            codec=local.codec,
            clock_rate=local.clock_rate,
            audio_level_id=local.audio_level_id,
            send_keyframe_request=self._send_keyframe_request,
            keyframe_interval=self.keyframe_interval,
            priority=1 if source == "screen" else 0,
        )
        for ssrc in remote.ssrcs:
            stream.ssrc = ssrc
            self._by_ssrc[ssrc] = stream
        for ssrc in remote.rtx_ssrcs:
            self._by_ssrc[ssrc] = None  # publisher RTX: not forwarded
        if local.mid_ext_id:
            self._mid_ext[local.mid_ext_id] = 1
            self._by_mid_value[mid.encode()] = stream
        self.streams[mid] = stream
        self.meeting.router.add_stream(stream)

    def _add_output(self, mid: str, line: MLine, role: str) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.mid == mid)
        sender = transceiver.sender
        out = Output(
            endpoint_id=self.endpoint_id,
            kind=line.kind,
            role=role,
            ssrc=sender._ssrc,
            payload_type=line.payload_type or 0,
            clock_rate=line.clock_rate,
            rtx_ssrc=sender._rtx_ssrc if line.rtx_payload_type else None,
            rtx_payload_type=line.rtx_payload_type,
            audio_level_id=line.audio_level_id,
            priority=1 if role == "slides" else 0,
        )
        self._roles[mid] = role
        self.outputs[mid] = out
        self._out_by_ssrc[out.ssrc] = out
        if out.rtx_ssrc:
            self._out_by_ssrc[out.rtx_ssrc] = out
        if self._link is not None:
            out.bind_link(*self._link)

    # -- transport hooks -------------------------------------------------------------------

    def _install_hooks(self) -> None:
        transceivers = self.pc.getTransceivers()
        if not transceivers:
            return
        dtls = transceivers[0].receiver.transport
        self._rtcp_ssrc = transceivers[0].sender._ssrc
        if dtls is self._dtls:
            return
        self._dtls = dtls
        dtls._handle_rtp_data = self._on_rtp_data
        dtls._handle_rtcp_data = self._on_rtcp_data
        dtls.on("statechange", self._on_dtls_state)
        if dtls.state == "connected":
            self._bind()

    def _on_dtls_state(self) -> None:
        if self._dtls is None:
            return
        if self._dtls.state == "connected":
            self._bind()
        elif self._dtls.state in ("closed", "failed"):
            self._schedule_close()

    def _bind(self) -> None:
        dtls = self._dtls
        session = dtls._tx_srtp
        pair = dtls.transport._connection._nominated.get(1)
        if session is None or pair is None:
            return
        transport = pair.protocol.transport
        sock = getattr(transport, "_sock", None)
        if sock is None:  # pragma: no cover - other event loop implementations
            sock = _TransportSender(transport)
        else:
            _size_buffers(sock)
        self._link = (session, sock, pair.remote_addr)
        for out in self.outputs.values():
            out.bind_link(*self._link)
        for out in self.outputs.values():
            src = out.source
            if src is not None and not out.live and out in src.waiting:
                src.waiting.remove(out)
                out.source = None  # re-added below: replay of the cached key frame or a PLI
        self.meeting.peer_changed(self)

    async def _on_rtp_data(self, data: bytes, arrival_time_ms: int = 0) -> None:
        if len(data) < 12:
            return
        stream = self._by_ssrc.get(U32.unpack_from(data, 8)[0], False)
        if stream:
            stream.on_rtp(data)
        elif stream is False:
            self._learn_ssrc(data)

    def _learn_ssrc(self, data: bytes) -> None:
        """Map an SSRC that the SDP did not announce, by its MID header extension."""
        self.unknown_packets += 1
        try:
            ext_start, ext_end, _, _ = payload_bounds(data)
        except ValueError:
            return
        for ext_id in self._mid_ext:
            value = find_extension(data, ext_start, ext_end, ext_id)
            stream = self._by_mid_value.get(bytes(value)) if value else None
            if stream is not None and stream.ssrc is None:
                ssrc = U32.unpack_from(data, 8)[0]
                stream.ssrc = ssrc
                self._by_ssrc[ssrc] = stream
                stream.on_rtp(data)
                return

    async def _on_rtcp_data(self, data: bytes) -> None:
        try:
            items = parse_feedback(data)
        except Exception:  # malformed RTCP from the network
            return
        router = self.meeting.router
        for item in items:
            out = self._out_by_ssrc.get(item[1])
            if out is not None:
                router.on_feedback(out, [item])

    def _send_keyframe_request(self, stream: Stream) -> None:
        self.send_rtcp(pli(self._rtcp_ssrc, stream.ssrc or 0) if stream.ssrc else b"")

    def send_rtcp(self, packet: bytes) -> None:
        if not packet or self._link is None or self.closed:
            return
        session, sock, addr = self._link
        try:
            sock.sendto(session.protect_rtcp(packet), addr)
        except Exception as exc:  # pylibsrtp.Error or OSError: drop, like a lost packet
            log.debug("RTCP to %s dropped: %s", self.endpoint_id, exc)

    # -- shutdown --------------------------------------------------------------------------

    def _on_connection_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._schedule_close()

    def _schedule_close(self) -> None:
        if self._close_task is None and not self.closed:
            self._close_task = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        self.closed = True
        self.meeting.remove_peer(self)
        for out in self.outputs.values():
            self.meeting.router.release(out)
        for mid in list(self.streams):
            self.meeting.router.remove_stream(self.streams[mid].stream_id)
        self._link = None
        self._task.cancel()
        try:
            await self._task
        except BaseException:
            pass
        while not self._ops.empty():
            _, fut = self._ops.get_nowait()
            if not fut.done():
                fut.set_exception(PeerClosed("peer closed"))
        try:
            await self.pc.close()
        except Exception as exc:  # pragma: no cover - aiortc teardown quirks
            log.debug("pc.close(%s): %s", self.endpoint_id, exc)
        if self._dtls is not None:
            self._dtls.remove_all_listeners()
        self.pc.remove_all_listeners()
        self.meeting.node._forget_peer(self)

    def update_sender_reports(self) -> None:
        """Give aiortc's senders the NTP/RTP pair and counts of what the router sent, so that
        their RTCP sender reports (A/V sync, RTT) describe the forwarded streams."""
        if self._link is None:
            return
        now = time.monotonic()
        ntp = clock.current_ntp_time()
        for t in self.pc.getTransceivers():
            out = self.outputs.get(t.mid) if t.mid is not None else None
            state = out.report_state(now) if out is not None else None
            if state is None:
                continue
            sender = t.sender
            rtp_now, packets = state
            sender._RTCRtpSender__ntp_timestamp = ntp
            sender._RTCRtpSender__rtp_timestamp = rtp_now
            sender._RTCRtpSender__packet_count = packets
            sender._RTCRtpSender__octet_count = packets * out.source.mean_payload()

    def stats(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint_id,
            "streams": [s.stats() for s in self.streams.values()],
            "outputs": [o.stats() for o in self.outputs.values()],
            "unknown_packets": self.unknown_packets,
        }


class _TransportSender:
    """Fallback when the datagram transport exposes no socket: asyncio's sendto."""

    def __init__(self, transport: Any) -> None:
        self.sendto = transport.sendto


def _size_buffers(sock: Any) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_RCVBUF)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SNDBUF)
    except OSError as exc:  # pragma: no cover - restricted environments
        log.debug("cannot size socket buffers: %s", exc)


def _consume(fut: asyncio.Future) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("media peer operation failed: %s", fut.exception())
