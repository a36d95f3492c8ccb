"""One chosen m-line of a SIP leg: its sockets and SRTP sessions, the room's media in, ours out.

In: a datagram that ``RtpPorts`` lets through is decrypted (RTP/SAVP) and checked against the
negotiated payload types; video goes straight into the camera ``Stream`` (forwarded, transcoded,
tapped by the composite like any publisher's), audio through ``RoomMic`` (Opus with levels),
telephone-events through ``DtmfReceiver``. Out: one ``Output`` (the composite or the mix), bound
like a WebRTC subscriber's (``Output.bind_transport``) to the line's outbound session (SDES, or
``mcu.fence.plain_rtp_session``: NULL cipher and auth, so plain RTP takes the same fast path) and
to the RTP socket; while the room holds the call, to ``DISCARD`` instead. RTCP both ways.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, cast

from pylibsrtp import Session

from mcu import fence
from mcu.rtp.ports import RtpPorts
from mcu.rtp.room_audio import DtmfReceiver, RoomMic
from mcu.rtp.rtcp import (
    Block,
    ReceptionTiming,
    receiver_report,
    sdes_cname,
    sender_report,
    sender_report_times,
    tmmbn,
    tmmbr_limits,
    tmmbr_requests,
)
from mcu.rtp.sdes import Crypto, answer_crypto, inbound_session, outbound_session
from mcu.rtp.sdp import Chosen, MediaLine
from mcu.sfu.rtp_header import FEEDBACK_RR, Feedback, fir, nack, parse_feedback, pli
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import BASELINE, H264_ENCODED, Output

COMFORT_NOISE = 13  # RFC 3389: taken and ignored


class _Discard:
    """Where a held line's packets go: nowhere (the output stays bound, so the fast path is unchanged)."""

    def __init__(self) -> None:
        self.packets = 0

    def sendto(self, data: Any, addr: Any) -> int:
        self.packets += 1
        return 0


class LegLine:
    """The state of one answered m-line (a new one when the codec or the keys change)."""

    def __init__(
        self,
        endpoint_id: str,
        chosen: Chosen,
        ports: RtpPorts,
        *,
        keyframe_interval: float,
        previous_key: Crypto | None,
        on_dtmf: Callable[[str], None],
        on_keyframe_wanted: Callable[[], None],
        on_first_video: Callable[[], None] = lambda: None,
    ) -> None:
        self.chosen = chosen
        self.kind = chosen.kind
        self.ports = ports
        self.on_dtmf = on_dtmf
        self.on_keyframe_wanted = on_keyframe_wanted
        self.on_first_video = on_first_video  # its camera is published from its first packet on
        self.camera_seen = False
        # SRTP: the room's key decrypts, ours (kept across re-INVITEs of the same suite) encrypts
        self.ours: Crypto | None = None
        self.recv: Session | None = None
        if chosen.crypto is not None:
            same = previous_key is not None and previous_key.suite == chosen.crypto.suite
            self.ours = previous_key if same and previous_key else answer_crypto(chosen.crypto)
            self.recv = inbound_session(chosen.crypto)
            self.send = outbound_session(self.ours)
        else:
            self.send = fence.plain_rtp_session()
        self.rtcp_ssrc = random.getrandbits(32)
        self.cname = f"{endpoint_id}@giaoban"
        self._fir_seq = 0
        self.discard = _Discard()
        self.sending = False
        self.remb_ceiling: int | None = None  # video: what the room's H.264 level decodes (the leg sets it)
        self.mic: RoomMic | None = None
        self.received: Stream  # the room's packets as they arrive (RTCP reception reports)
        self.dtmf = DtmfReceiver()
        fmt = chosen.format
        self.timing = ReceptionTiming(fmt.clock)  # jitter and LSR/DLSR: the room measures its RTT
        codec = chosen.codec
        if self.kind == "audio":
            self.mic = RoomMic(endpoint_id, f"{endpoint_id}/mic", codec, keyframe_interval)
            self.received = Stream(
                stream_id=f"{endpoint_id}/room-audio", endpoint_id="", kind="audio", source="mic",
                codec=codec, clock_rate=fmt.clock,
            )  # fmt: skip
            self.published = self.mic.stream
            role, h264 = "mix", None
        else:
            h264 = chosen.h264
            self.received = self.published = Stream(
                stream_id=f"{endpoint_id}/camera", endpoint_id=endpoint_id, kind="video", source="camera",
                codec=codec, clock_rate=fmt.clock, send_keyframe_request=self._ask_keyframe,
                send_nack=self._ask_retransmission, keyframe_interval=keyframe_interval,
                h264_format=h264 or H264_ENCODED,
            )  # fmt: skip
            role = "composite"
        self.output = Output(
            endpoint_id=endpoint_id,
            kind=self.kind,
            role=role,
            ssrc=random.getrandbits(32),
            payload_type=fmt.pt,
            clock_rate=fmt.clock,
            codec=codec,
            payload_types={codec: (fmt.pt, None)},
            h264_formats={(h264[0], BASELINE): (fmt.pt, None)} if h264 else None,
        )

    # -- direction and address -----------------------------------------------------------

    @property
    def receives(self) -> bool:
        return self.chosen.direction in ("sendrecv", "recvonly")

    @property
    def publishes(self) -> bool:
        """Its stream is a source of the meeting: the room sends on this line (a camera once its
        first packet came: a room with its camera off takes no composite tile)."""
        return self.receives and (self.kind == "audio" or self.camera_seen)

    def update(self, media: MediaLine, direction: str) -> None:
        """The room's (re-)offer of this line: where it receives, whether we send."""
        self.chosen = _with_direction(self.chosen, direction)
        self.ports.expect(media.address, media.port, media.rtcp_port, self.recv is not None)
        self.bind()

    def bind(self) -> None:
        """Send to where the room receives (once proven: ``RtpPorts.rtp_dest``), or nowhere while
        it holds the call or before its first valid packet."""
        out = self.output
        if out.closed:
            return
        to = self.ports.rtp_dest
        self.sending = self.chosen.direction in ("sendrecv", "sendonly") and to is not None
        sock = self.ports.rtp_sock if self.sending else self.discard
        out.bind_transport(self.send, cast(Any, sock), to or ("0.0.0.0", 9))

    # -- in ------------------------------------------------------------------------------

    def accept(self, data: bytes, rtcp: bool, on_feedback: Callable[[Output, list[Feedback]], None]) -> bool:
        """A datagram from the room (see ``RtpPorts``): True if valid and consumed."""
        if self.recv is not None:
            try:
                data = self.recv.unprotect_rtcp(data) if rtcp else self.recv.unprotect(data)
            except Exception:  # pylibsrtp.Error, ValueError: not the room's key, or replayed
                return False
        if rtcp:
            self._on_rtcp(data, on_feedback)
            return True
        if len(data) < 12:
            return False
        pt = data[1] & 0x7F
        if pt == self.chosen.format.pt:
            if not self.receives:
                return True  # it said it would not send: counted as valid, not published
            self.timing.packet(int.from_bytes(data[4:8], "big"), time.monotonic())
            if self.mic is not None:
                self.received.on_rtp(data)
                self.mic.push(data)
            else:
                ssrc = int.from_bytes(data[8:12], "big")
                if self.received.ssrc != ssrc:  # the first packet, or a room that restarted its encoder
                    self.received.ssrc = ssrc
                if not self.camera_seen:  # published before its first packet: the composite's tap reads it all
                    self.camera_seen = True
                    self.on_first_video()
                self.received.on_rtp(data)
            return True
        if self.chosen.dtmf is not None and pt == self.chosen.dtmf.pt:
            digit = self.dtmf.push(data)
            if digit is not None:
                self.on_dtmf(digit)
            return True
        return pt == COMFORT_NOISE

    def _on_rtcp(self, data: bytes, on_feedback: Callable[[Output, list[Feedback]], None]) -> None:
        out = self.output
        for ssrc, ntp_middle in sender_report_times(data):
            if ssrc == self.received.ssrc:
                self.timing.sender_report(ntp_middle, time.monotonic())
        items = []
        for item in parse_feedback(data):
            if item[1] == out.ssrc or (item[0] != FEEDBACK_RR and item[1] == 0):  # some rooms name no SSRC
                items.append(item)
        if items:
            on_feedback(out, items)
        requests = [r for r in tmmbr_requests(data) if r[1] in (out.ssrc, 0)]
        if requests:
            limits = [bitrate for ssrc, bitrate in tmmbr_limits(data) if ssrc in (out.ssrc, 0)]
            out.remb = min(limits + ([self.remb_ceiling] if self.remb_ceiling else []))
            self.send_rtcp(receiver_report(out.ssrc, []) + tmmbn(out.ssrc, requests))

    # -- out: RTCP -------------------------------------------------------------------------

    def send_reports(self, interval: float, now: float) -> None:
        """SR for our output (RR when it sends nothing), report block for the room's stream, CNAME."""
        blocks: list[Block] = []
        report = self.received.reception_report(interval)
        if report is not None and self.received.ssrc is not None:
            fraction, lost, high, _ = report
            blocks.append((self.received.ssrc, fraction, lost, high, *self.timing.block_tail(now)))
        out = self.output
        state = out.report_state(now) if self.sending else None
        if state is not None and out.source is not None:
            rtp_now, packets = state
            octets = packets * out.source.mean_payload()
            packet = sender_report(out.ssrc, fence.ntp_time(), rtp_now, packets, octets, blocks)
            ssrc = out.ssrc
        else:
            ssrc = self.rtcp_ssrc
            packet = receiver_report(ssrc, blocks)
        self.send_rtcp(packet + sdes_cname(ssrc, self.cname))

    def send_rtcp(self, packet: bytes) -> None:
        if self.recv is not None:
            try:
                packet = self.send.protect_rtcp(packet)
            except Exception:  # pylibsrtp.Error: dropped like a lost packet
                return
        self.ports.send_rtcp(packet)

    def _ask_keyframe(self, stream: Stream) -> None:
        """PLI and FIR (many rooms honour only FIR), after an RR as RTCP wants; and the SIP INFO."""
        if stream.ssrc is None:
            return
        self._fir_seq = (self._fir_seq + 1) & 0xFF
        head = receiver_report(self.rtcp_ssrc, [])
        self.send_rtcp(head + pli(self.rtcp_ssrc, stream.ssrc) + fir(self.rtcp_ssrc, stream.ssrc, self._fir_seq))
        self.on_keyframe_wanted()

    def _ask_retransmission(self, stream: Stream, seqs: list[int]) -> None:
        if stream.ssrc is not None:
            self.send_rtcp(receiver_report(self.rtcp_ssrc, []) + nack(self.rtcp_ssrc, stream.ssrc, seqs))

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "codec": self.chosen.codec,
            "direction": self.chosen.direction,
            "srtp": self.recv is not None,
            "held_packets": self.discard.packets,
            **self.ports.stats(),
        }


def _with_direction(chosen: Chosen, direction: str) -> Chosen:
    if chosen.direction == direction:
        return chosen
    return Chosen(
        chosen.index, chosen.kind, chosen.codec, chosen.format, direction, chosen.dtmf, chosen.crypto, chosen.slides
    )
