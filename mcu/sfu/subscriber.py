"""Per-subscriber send slot: rewrite state and the encrypt-and-send path.

An ``Output`` is one outgoing m-line of a subscriber (its own SSRC, payload type, sequence
numbers and timestamps). Its *source* (a publisher ``Stream``) can change at any time; the
sequence numbers and timestamps it emits stay continuous across changes, and a video output
resumes only on a key frame of the new source.

Rewrite model: while live on a source, ``out_seq = src_seq + seq_off`` and
``out_ts = src_ts + ts_off`` (mod 2^16 / 2^32), so the hot loop writes nothing per packet.
When the output leaves a source (switch, mute, source gone) it is *frozen*: the next sequence
number, the next timestamp and the wall-clock time it refers to are stored, and the offsets are
recomputed from them when the first packet of the next source is admitted.

Sending: the subscriber's SRTP session (aiortc's outbound session, ``mcu.fence.srtp_sender``)
and the nominated ICE socket are bound once (``bind_transport``); the router then writes the packet
into the session's buffer, protects it in place with libsrtp and sends with a non-blocking
``sendto`` (``srtp_out``). The per-subscriber queue is the socket's kernel send buffer (bounded
by SO_SNDBUF); overflow policy: drop the packet and count it (the subscriber recovers with NACK
or PLI), never block the router, so a subscriber that stops reading cannot slow the others.
"""

from __future__ import annotations

import random
import socket
import time
from typing import Any, Protocol

from pylibsrtp import Session

from mcu.fence import new_length_cell, srtp_buffer
from mcu.sfu.rtp_header import SEQ_TS_SSRC, U16, payload_bounds, vp8_picture_id
from mcu.sfu.srtp_out import MAX_PACKET, pack_picture_id, pack_seq_ts_ssrc, protect

RESEND_INTERVAL = 0.3  # s before the same packet is resent again (receivers repeat NACK lists)

# An H.264 format: (packetization mode, profile_idc) of a stream, or of one that a line accepts.
# Levels are left out: the cameras and encodes here stay at or under 720p30 (level 3.1), which
# every receiver served (42e01f and up) decodes.
H264Format = tuple[int, int]
BASELINE = 0x42  # profile_idc of baseline and constrained baseline (read as constrained: what is sent)
# what this node encodes (composite renditions, transcodes): single NAL units, constrained
# baseline, which every H.264 receiver reads
H264_ENCODED: H264Format = (0, BASELINE)
# a decoder of a profile also decodes those ranked below it: constrained baseline < main < high
H264_PROFILE_RANK = {BASELINE: 0, 0x4D: 1, 0x64: 2}


def h264_covers(accepted: H264Format, source: H264Format) -> bool:
    """A receiver of format ``accepted`` reads a stream of format ``source`` as it is sent: mode 1
    (non-interleaved) receivers also read mode 0's single NAL units (RFC 6184 §6.3), a mode 0
    one reads no STAP-A/FU-A; a profile's decoder reads its own and the ranks below."""
    mode_ok = source[0] == 0 or source[0] == accepted[0]
    return mode_ok and H264_PROFILE_RANK.get(source[1], 99) <= H264_PROFILE_RANK.get(accepted[1], -1)


# (seq, timestamp, picture id offsets, VP8?, payload type, RTX payload type) of an earlier epoch,
# to render its packets again as they first went out (a codec switch changes the payload types)
Offsets = tuple[int, int, int, bool, int, int | None]


class Source(Protocol):
    """What an output and its users read of the output's source, a publisher
    ``mcu.sfu.stream.Stream`` (a protocol, so that this module does not import ``stream``)."""

    stream_id: str
    closed: bool
    vp8: bool
    waiting: list[Output]
    last_seq: int
    last_ts: int
    last_pid: int
    fwd_time: float | None

    def cached(self, seq: int) -> bytes | None: ...
    def request_retransmission(self, seqs: list[int]) -> None: ...
    def request_keyframe(self) -> None: ...
    def remove_output(self, out: Output) -> None: ...
    def mean_payload(self) -> int: ...


class Output:
    """One outgoing stream of one subscriber."""

    def __init__(
        self,
        *,
        endpoint_id: str,
        kind: str,
        role: str,
        ssrc: int,
        payload_type: int,
        clock_rate: int,
        rtx_ssrc: int | None = None,
        rtx_payload_type: int | None = None,
        audio_level_id: int = 0,
        priority: int = 0,
        codec: str = "",
        payload_types: dict[str, tuple[int, int | None]] | None = None,
        h264_formats: dict[H264Format, tuple[int, int | None]] | None = None,
    ) -> None:
        self.endpoint_id = endpoint_id
        self.kind = kind
        # the codec the subscriber decodes ("VP8", "H264", "OPUS"; "" = whatever the source sends):
        # a source in another codec reaches it through a transcode (mcu.sfu.router.Router.convert)
        self.codec = codec.upper()
        # every codec the subscriber's line negotiated -> (payload type, RTX payload type): a source
        # in any of them is forwarded untouched, in that codec's payload type (``use_codec``)
        self.payload_types = dict(payload_types or {})
        # the line's H.264 formats in its order -> their payload types: an H.264 source none of
        # them covers (``h264_covers``) is transcoded; empty: any H.264 (a line that said no more)
        self.h264_formats = dict(h264_formats or {})
        self.role = role  # "audio" | "main" | "slides"
        self.ssrc = ssrc
        self.pt = payload_type
        self.clock_rate = clock_rate
        self.rtx_ssrc = rtx_ssrc
        self.rtx_pt = rtx_payload_type
        self.rtx_seq = random.randrange(1 << 16)
        self.level_id = audio_level_id if kind == "audio" else 0
        self.profile = (payload_type, self.level_id)
        self.priority = priority
        # transport (bound when DTLS is up)
        self.ready = False
        self.mv: Any = None  # a memoryview of the session's buffer (Any: None until bound)
        self.cdata: Any = None
        self.ctx: Any = None
        self.lenp = new_length_cell()
        self._session: Session | None = None
        self.sendto: Any = None
        self.addr: Any = None
        # rewrite state
        self.source: Source | None = None
        self.live = False  # forwarding (False: waiting for first packet / key frame)
        self.seq_off = 0
        self.ts_off = 0
        self.epoch_seq = 0  # first source seq forwarded in the current epoch
        self.next_seq = random.randrange(1 << 16)
        self.next_ts = random.randrange(1 << 32)
        self.next_time = time.monotonic()
        self.pid_off = 0  # VP8 picture id offset (15-bit), same scheme as seq/ts
        self.next_pid = random.randrange(1 << 15)
        # the previous epoch (source, seq_off, ts_off, pid_off, first seq, last seq, pt, rtx pt):
        # NACKs for packets sent before a switch are still answered from that source's cache
        self._prev: tuple[Source, int, int, int, int, int, int, int | None] | None = None
        self._resent: dict[int, float] = {}  # out seq -> when it was last retransmitted
        # counters
        self.dropped = 0
        self.errors = 0
        self.retransmitted = 0
        self.nacked = 0  # distinct packets the subscriber reported lost (NACK)
        self.switches = 0
        self.packets_before = 0  # packets sent in earlier epochs (for sender reports)
        self.fraction_lost = 0  # last RTCP receiver report, 0..255
        self.remb: int | None = None  # last REMB estimate for this SSRC (bit/s), if any
        self.closed = False

    # -- transport -------------------------------------------------------------------------

    def bind_transport(self, session: Session, sock: socket.socket, addr: tuple[Any, ...]) -> None:
        """Bind the SRTP session and UDP socket the packets go out on.

        The output keeps a reference to ``session``: the raw libsrtp pointers below stay valid
        for as long as the output is bound, whatever happens to the DTLS transport.
        """
        self._session = session
        self.mv, self.cdata, self.ctx = srtp_buffer(session)
        self.sendto = sock.sendto
        self.addr = addr
        self.ready = True

    def unbind_transport(self) -> None:
        self.ready = False
        self.mv = None
        self.cdata = self.ctx = self.sendto = None
        self._session = None

    def send_plain(self, packet: bytes) -> bool:
        """Protect and send one already rewritten RTP packet (slow path: NACK, replay)."""
        if not self.ready:
            return False
        n = len(packet)
        if n > MAX_PACKET:
            self.errors += 1
            return False
        mv = self.mv
        mv[0:n] = packet
        lp = self.lenp
        lp[0] = n
        if protect(self.ctx, self.cdata, lp):
            self.errors += 1
            return False
        try:
            self.sendto(mv[: lp[0]], self.addr)
        except OSError:
            self.dropped += 1
            return False
        return True

    # -- codec ---------------------------------------------------------------------------

    def accepts(self, codec: str, h264: H264Format | None = None) -> bool:
        """True if the subscriber decodes ``codec`` as sent (no conversion needed); for H.264, in
        format ``h264`` (None: not said, as for what this node encodes, which every format reads)."""
        name = codec.upper()
        if self.codec and name != self.codec and name not in self.payload_types:
            return False
        return name != "H264" or h264 is None or not self.h264_formats or self._h264_pts(h264) is not None

    def _h264_pts(self, h264: H264Format) -> tuple[int, int | None] | None:
        """The payload types of the line's first H.264 format that reads ``h264``."""
        return next((pts for fmt, pts in self.h264_formats.items() if h264_covers(fmt, h264)), None)

    def use_codec(self, codec: str, h264: H264Format | None = None) -> None:
        """Send the payload types the line negotiated for ``codec`` (for H.264: of a format that
        reads ``h264``) from the next source on. Only while detached: a source groups its live
        outputs by ``profile``."""
        name = codec.upper()
        pts = self._h264_pts(h264) if name == "H264" and h264 is not None else None
        pts = pts or self.payload_types.get(name)
        if pts is None or self.source is not None:
            return
        self.pt, self.rtx_pt = pts
        self.profile = (self.pt, self.level_id)

    # -- rewrite state ---------------------------------------------------------------------

    def freeze(self) -> None:
        """Remember where the output stands so the next source continues seamlessly."""
        src = self.source
        if self.live and src is not None and src.fwd_time is not None:
            epoch = (self.seq_off, self.ts_off, self.pid_off, self.epoch_seq, src.last_seq)
            self._prev = (src, *epoch, self.pt, self.rtx_pt)
            self.packets_before += ((src.last_seq - self.epoch_seq) & 0xFFFF) + 1
            self.next_seq = (src.last_seq + self.seq_off + 1) & 0xFFFF
            self.next_ts = (src.last_ts + self.ts_off + 1) & 0xFFFFFFFF
            self.next_time = src.fwd_time
            if src.last_pid >= 0:
                self.next_pid = (src.last_pid + self.pid_off + 1) & 0x7FFF
        self.live = False

    def admit(self, seq: int, ts: int, now: float, pid: int = -1) -> None:
        """Compute offsets so that source packet (seq, ts[, VP8 picture id]) continues the
        output."""
        if pid >= 0:
            self.pid_off = (self.next_pid - pid) & 0x7FFF
        elapsed = max(0.0, now - self.next_time)
        out_ts = (self.next_ts + int(elapsed * self.clock_rate)) & 0xFFFFFFFF
        self.seq_off = (self.next_seq - seq) & 0xFFFF
        self.ts_off = (out_ts - ts) & 0xFFFFFFFF
        self.epoch_seq = seq
        self.live = True
        self.switches += 1

    def render(self, data: bytes, level: int | None = None, offs: Offsets | None = None) -> bytes:
        """Rewrite one source packet for this output (slow path; the router inlines this).
        ``offs``: the ``Offsets`` of an earlier epoch."""
        seq_off, ts_off, pid_off, vp8, pt, _ = offs or (
            self.seq_off,
            self.ts_off,
            self.pid_off,
            self.source is not None and self.source.vp8,
            self.pt,
            self.rtx_pt,
        )
        ext_start, ext_end, off, end = payload_bounds(data)
        seq = U16.unpack_from(data, 2)[0]
        ts = SEQ_TS_SSRC.unpack_from(data, 2)[1]
        head = bytearray(12)
        head[0] = 0x80
        head[1] = (data[1] & 0x80) | pt
        ext = b""
        if self.level_id and level is not None:
            head[0] = 0x90
            ext = bytes((0xBE, 0xDE, 0, 1, self.level_id << 4, level & 0x7F, 0, 0))
        pack_seq_ts_ssrc(head, 2, (seq + seq_off) & 0xFFFF, (ts + ts_off) & 0xFFFFFFFF, self.ssrc)
        payload = data[off:end]
        if vp8:
            pid = vp8_picture_id(data, off)
            if pid >= 0:
                patched = bytearray(payload)
                pack_picture_id(patched, 2, 0x8000 | ((pid + pid_off) & 0x7FFF))
                payload = bytes(patched)
        return bytes(head) + ext + payload

    def render_rtx(self, data: bytes, offs: Offsets | None = None) -> bytes:
        """RFC 4588 retransmission packet for source packet ``data``."""
        plain = self.render(data, offs=offs)
        head = bytearray(plain[:12])
        head[0] = 0x80
        rtx_pt = offs[5] if offs else self.rtx_pt
        head[1] = (plain[1] & 0x80) | (rtx_pt or 0)
        ts = SEQ_TS_SSRC.unpack_from(plain, 2)[1]
        pack_seq_ts_ssrc(head, 2, self.rtx_seq, ts, self.rtx_ssrc or 0)
        self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
        osn = plain[2:4]
        return bytes(head) + osn + plain[12:]

    def retransmit(self, lost: list[int]) -> int:
        """Answer a NACK from the source's packet cache; returns packets resent."""
        if not self.ready:
            return 0
        src = self.source if self.live else None
        sent = 0
        missing = []
        now = time.monotonic()
        resent = self._resent
        if len(resent) > 512:
            for q in [q for q, t in resent.items() if now - t >= RESEND_INTERVAL]:
                del resent[q]
        for out_seq in lost[:64]:
            last = resent.get(out_seq)
            if last is None:
                self.nacked += 1
            elif now - last < RESEND_INTERVAL:
                continue  # resent a moment ago: the copy may still be on its way
            # asked again: the first copy was lost too; send two, unless the link is congested
            copies = 2 if last is not None and self.fraction_lost < 26 else 1
            resent[out_seq] = now
            offs = None
            src_seq = (out_seq - self.seq_off) & 0xFFFF
            if src is not None and (src_seq - self.epoch_seq) & 0xFFFF < 0x8000:
                data = src.cached(src_seq)
                if data is None:
                    missing.append(src_seq)  # lost on the way in: ask the publisher
                    continue
            else:  # sent before this epoch started (a switch), or while waiting
                data, offs = self._previous(out_seq)
                if data is None:
                    continue
            if (offs[5] if offs else self.rtx_pt) and self.rtx_ssrc:
                packet = self.render_rtx(data, offs)
            else:
                packet = self.render(data, offs=offs)
            for _ in range(copies):
                if self.send_plain(packet):
                    sent += 1
        self.retransmitted += sent
        if missing and src is not None:
            src.request_retransmission(missing)
        return sent

    def _previous(self, out_seq: int) -> tuple[bytes | None, Offsets | None]:
        """The cached packet of the previous epoch that went out as ``out_seq``."""
        prev = self._prev
        if prev is None or prev[0].closed:
            return None, None
        src, seq_off, ts_off, pid_off, first, last, pt, rtx_pt = prev
        src_seq = (out_seq - seq_off) & 0xFFFF
        if (src_seq - first) & 0xFFFF > (last - first) & 0xFFFF:
            return None, None
        return src.cached(src_seq), (seq_off, ts_off, pid_off, src.vp8, pt, rtx_pt)

    def report_state(self, now: float) -> tuple[int, int] | None:
        """(RTP timestamp for wall-clock ``now``, packets sent) for an RTCP sender report."""
        src = self.source
        if not self.live or src is None or src.fwd_time is None:
            return None
        last_ts = (src.last_ts + self.ts_off) & 0xFFFFFFFF
        rtp_now = (last_ts + int((now - src.fwd_time) * self.clock_rate)) & 0xFFFFFFFF
        sent = self.packets_before + ((src.last_seq - self.epoch_seq) & 0xFFFF) + 1
        return rtp_now, sent

    def stats(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint_id,
            "role": self.role,
            "ssrc": self.ssrc,
            "source": self.source.stream_id if self.source else None,
            "live": self.live,
            "dropped": self.dropped,
            "retransmitted": self.retransmitted,
            "switches": self.switches,
        }
