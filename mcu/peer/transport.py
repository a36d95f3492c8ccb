"""A peer's bundled transport as the router sees it.

aiortc's ``RTCDtlsTransport`` decrypts each SRTP packet and then hands it to its own receivers.
``PeerTransport.attach`` has it hand them to ``on_rtp_data`` / ``on_rtcp_data`` instead
(``mcu.fence.intercept_srtp``: a scoped interception, only this peer's transport, undone by
nothing because the transport dies with the peer):

* RTP goes straight to the publisher ``Stream`` found by SSRC. An SSRC the SDP did not announce
  is learnt once, from the MID header extension or, when the packet has none, from its payload
  type if exactly one of the peer's publisher streams not yet bound has it (RFC 8843 §9.2; an
  offer made before media flows may carry no ``a=ssrc``, as GStreamer's webrtcbin's do). No
  ``RtpPacket`` objects, no jitter buffer, no decoder.
* RTCP feedback for the peer's outputs (PLI, FIR, NACK, receiver reports) goes to the router.

As the DTLS client it also offers the ECDHE-RSA suites (``mcu.fence.offer_rsa_suites``).
When DTLS is connected it binds the transport's SRTP session and the nominated ICE
socket to every output of the peer (see ``mcu.sfu.subscriber.Output.bind_transport``).
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import Any, Callable

from mcu.fence import offer_rsa_suites, intercept_srtp, nominated_pair, srtp_sender
from mcu.sfu.rtp_header import U32, Feedback, find_extension, nack, parse_feedback, payload_bounds, pli
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output
from mcu.peer.udp_guard import send_socket

log = logging.getLogger("mcu.peer.transport")

# aiortc's receive loop takes queued datagrams one after another without yielding; a 4 Mbit/s
# key frame (~220 packets) fanned out to 100 subscribers held the event loop ~0.3-0.6 s under
# uvloop (which queues 32 datagrams per read). The transport yields once it has worked this long,
# so that other sockets are read and timers run (loadtests/README.md, "Ingress").
YIELD_AFTER_S = 0.005


class PeerTransport:
    def __init__(
        self,
        name: str,
        on_up: Callable[[], None],
        on_down: Callable[[], None],
        on_feedback: Callable[[Output, list[Feedback]], None],
    ) -> None:
        self.name = name
        self._on_up = on_up
        self._on_down = on_down
        self._on_feedback = on_feedback
        self.by_ssrc: dict[int, Any] = {}  # Stream, or _Rtx for a stream's RTX SSRC
        self.out_by_ssrc: dict[int, Output] = {}
        self._mid_ext_ids: set[int] = set()
        self._by_mid_value: dict[bytes, Stream] = {}
        self._by_pt: dict[int, list[Stream]] = {}  # payload type -> streams that may send it
        self._by_rtx_pt: dict[int, list[Stream]] = {}
        self._rtx_bound: set[str] = set()  # stream ids whose RTX SSRC is known
        self.outputs: list[Output] = []
        self.dtls: Any = None
        self.binding: tuple[Any, Any, Any] | None = None
        self._owned_sock: Any = None  # a socket duplicate this transport must close (uvloop)
        self._resumed = 0.0  # perf_counter() when the receive loop last got the event loop
        self.rtcp_ssrc = 0
        self.unknown_packets = 0
        self.errors = 0
        self.closed = False

    # -- registries ------------------------------------------------------------------------

    def add_stream(
        self,
        stream: Stream,
        mid: str,
        ssrcs: list[int],
        rtx_ssrcs: list[int],
        mid_ext_id: int,
        payload_type: int | None = None,
        rtx_payload_type: int | None = None,
    ) -> None:
        """Route the stream's SSRCs; its MID and payload types find the SSRCs the SDP left out."""
        for ssrc in ssrcs:
            stream.ssrc = ssrc
            self.by_ssrc[ssrc] = stream
        for ssrc in rtx_ssrcs:
            self.by_ssrc[ssrc] = _Rtx(stream)  # publisher retransmissions: restored
            self._rtx_bound.add(stream.stream_id)
        if mid_ext_id:
            self._mid_ext_ids.add(mid_ext_id)
            self._by_mid_value[mid.encode()] = stream
        if payload_type is not None:
            self._by_pt.setdefault(payload_type, []).append(stream)
        if rtx_payload_type is not None:
            self._by_rtx_pt.setdefault(rtx_payload_type, []).append(stream)

    def remove_stream(self, stream: Stream) -> None:
        """Forget a stream the peer no longer publishes: its SSRCs, MID and payload types route
        nothing more to it, and a stream added later for the same line can learn its SSRC again."""
        for ssrc, target in list(self.by_ssrc.items()):
            if target is stream or (isinstance(target, _Rtx) and target.on_rtp == stream.on_rtx):
                del self.by_ssrc[ssrc]
        for mid, target in list(self._by_mid_value.items()):
            if target is stream:
                del self._by_mid_value[mid]
        for by_pt in (self._by_pt, self._by_rtx_pt):
            for pt, streams in list(by_pt.items()):
                kept = [s for s in streams if s is not stream]
                if kept:
                    by_pt[pt] = kept
                else:
                    del by_pt[pt]
        self._rtx_bound.discard(stream.stream_id)

    def add_output(self, out: Output) -> None:
        self.outputs.append(out)
        self.out_by_ssrc[out.ssrc] = out
        if out.rtx_ssrc:
            self.out_by_ssrc[out.rtx_ssrc] = out
        if self.binding is not None:
            out.bind_transport(*self.binding)

    # -- transport -------------------------------------------------------------------------

    def attach(self, dtls: Any, rtcp_ssrc: int) -> None:
        self.rtcp_ssrc = rtcp_ssrc
        if dtls is self.dtls or self.closed:
            return
        self.dtls = dtls
        intercept_srtp(dtls, self.on_rtp_data, self.on_rtcp_data)
        offer_rsa_suites(dtls)  # we answer a=setup:active: a peer with an RSA certificate serves
        dtls.on("statechange", self._on_dtls_state)
        if dtls.state == "connected":
            self._bind()

    def _on_dtls_state(self) -> None:
        if self.dtls is None or self.closed:
            return
        if self.dtls.state == "connected":
            self._bind()
        elif self.dtls.state in ("closed", "failed"):
            self._on_down()

    def _bind(self) -> None:
        session = srtp_sender(self.dtls)
        pair = nominated_pair(self.dtls)
        if session is None or pair is None:
            return
        self._close_owned()
        # the same fast send path and buffer sizes under asyncio and uvloop (mcu.peer.udp_guard)
        sock, self._owned_sock = send_socket(pair.protocol.transport)
        self.binding = (session, sock, pair.remote_addr)
        for out in self.outputs:
            out.bind_transport(*self.binding)
        self._on_up()

    async def on_rtp_data(self, data: bytes, arrival_time_ms: int = 0) -> None:
        """One decrypted RTP packet: to its publisher stream, or learnt by its MID."""
        if len(data) < 12:
            return
        stream = self.by_ssrc.get(U32.unpack_from(data, 8)[0], False)
        try:
            if stream:
                stream.on_rtp(data)
            elif stream is False:
                self._learn_ssrc(data)
        except Exception:  # one bad packet must not end aiortc's receive loop
            self.errors += 1
            if self.errors == 1:
                log.exception("RTP from %s not routed", self.name)
        if perf_counter() - self._resumed > YIELD_AFTER_S:
            await asyncio.sleep(0)
            self._resumed = perf_counter()

    def _learn_ssrc(self, data: bytes) -> None:
        """Map an SSRC that the SDP did not announce, by its MID header extension, else by its
        payload type."""
        self.unknown_packets += 1
        try:
            ext_start, ext_end, _, _ = payload_bounds(data)
        except ValueError:
            return
        ssrc = U32.unpack_from(data, 8)[0]
        for ext_id in self._mid_ext_ids:
            value = find_extension(data, ext_start, ext_end, ext_id)
            if value:  # the MID decides; a bound line's second SSRC or an unknown mid is dropped
                stream = self._by_mid_value.get(bytes(value))
                if stream is not None and stream.ssrc is None:
                    self._bind_ssrc(ssrc, stream, data)
                return
        self._learn_by_payload_type(ssrc, data)

    def _learn_by_payload_type(self, ssrc: int, data: bytes) -> None:
        pt = data[1] & 0x7F
        media = [s for s in self._by_pt.get(pt, ()) if s.ssrc is None]
        if len(media) == 1:
            self._bind_ssrc(ssrc, media[0], data)
            return
        rtx = [s for s in self._by_rtx_pt.get(pt, ()) if s.stream_id not in self._rtx_bound]
        if len(rtx) == 1:
            self._rtx_bound.add(rtx[0].stream_id)
            self.by_ssrc[ssrc] = _Rtx(rtx[0])
            rtx[0].on_rtx(data)

    def _bind_ssrc(self, ssrc: int, stream: Stream, data: bytes) -> None:
        stream.ssrc = ssrc
        self.by_ssrc[ssrc] = stream
        stream.on_rtp(data)

    async def on_rtcp_data(self, data: bytes) -> None:
        """One decrypted RTCP packet: the feedback about this peer's outputs to ``on_feedback``."""
        try:
            items = parse_feedback(data)
        except Exception:  # malformed RTCP from the network
            return
        for item in items:
            out = self.out_by_ssrc.get(item[1])
            if out is None:
                continue
            try:
                self._on_feedback(out, [item])
            except Exception:
                self.errors += 1
                if self.errors == 1:
                    log.exception("RTCP from %s not handled", self.name)

    def send_keyframe_request(self, stream: Stream) -> None:
        if stream.ssrc:
            self.send_rtcp(pli(self.rtcp_ssrc, stream.ssrc))

    def send_nack(self, stream: Stream, seqs: list[int]) -> None:
        if stream.ssrc:
            self.send_rtcp(nack(self.rtcp_ssrc, stream.ssrc, seqs))

    def send_rtcp(self, packet: bytes) -> None:
        if not packet or self.binding is None or self.closed:
            return
        session, sock, addr = self.binding
        try:
            sock.sendto(session.protect_rtcp(packet), addr)
        except Exception as exc:  # pylibsrtp.Error or OSError: drop, like a lost packet
            log.debug("RTCP to %s dropped: %s", self.name, exc)

    def _close_owned(self) -> None:
        # outputs still bound to it count their sends as dropped (closed socket: OSError)
        if self._owned_sock is not None:
            self._owned_sock.close()
            self._owned_sock = None

    def close(self) -> None:
        """Forget the transport; idempotent."""
        self.closed = True
        self.binding = None
        self._close_owned()
        if self.dtls is not None:
            self.dtls.remove_all_listeners()
        self.outputs = []
        self.out_by_ssrc.clear()
        self.by_ssrc.clear()
        self._by_pt.clear()
        self._by_rtx_pt.clear()


class _Rtx:
    """Routes a publisher's RTX SSRC to ``Stream.on_rtx``."""

    __slots__ = ("on_rtp",)

    def __init__(self, stream: Stream) -> None:
        self.on_rtp = stream.on_rtx
