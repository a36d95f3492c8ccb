"""A publisher's stream: the once-per-packet work and the fan-out loop.

``Stream.on_rtp`` runs once per decrypted RTP packet of a publisher track. Once per packet it
reads the header fields it needs (struct, offsets), stores the packet in the NACK cache, detects
key-frame starts (VP8, H.264) or reads the RFC 6464 audio level, and builds one header template
per *profile* (payload type, audio-level extension id) of its outputs. Per subscriber it only
copies the template into the subscriber's SRTP buffer, patches seq/timestamp/SSRC, encrypts in
place and sends (see ``subscriber.Output`` and ``srtp_out``).

Key-frame requests from subscribers (and from outputs waiting to start) are merged and rate
limited: at most one request per ``keyframe_interval`` seconds goes to the publisher; requests
inside the window are folded into one sent when the window ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from mcu.sfu.rtp_header import (
    SEQ_TS,
    U32,
    audio_level,
    h264_keyframe_parts,
    payload_bounds,
    vp8_keyframe_start,
    vp8_picture_id,
)
from mcu.sfu.srtp_out import MAX_PACKET, pack_picture_id, pack_seq_ts_ssrc, protect
from mcu.sfu.subscriber import H264_ENCODED, H264Format, Output

CACHE_SIZE = 1024  # packets; power of two (about 6 s of 720p video at 1.5 Mbit/s)
_MASK = CACHE_SIZE - 1
_ZERO10 = bytes(10)
MAX_NACK_GAP = 64  # a bigger jump is a restart, not a loss
NACK_REPEAT = 0.1  # s before the same sequence number may be NACKed again
REPLAY_MAX_AGE = 0.6  # s: a new subscriber gets the cached key frame if it is this recent
REPLAY_MAX_PACKETS = 256


class Stream:
    """One publisher track (camera, microphone or screen share)."""

    def __init__(
        self,
        *,
        stream_id: str,
        endpoint_id: str,
        kind: str,
        source: str,
        codec: str,
        clock_rate: int,
        audio_level_id: int = 0,
        send_keyframe_request: Callable[["Stream"], None] | None = None,
        send_nack: Callable[["Stream", list[int]], None] | None = None,
        keyframe_interval: float = 0.5,
        priority: int = 0,
        h264_format: H264Format = H264_ENCODED,
    ) -> None:
        self.stream_id = stream_id
        self.endpoint_id = endpoint_id  # whose media it is ("": nobody's now, never routed)
        self.via = endpoint_id  # the peer it arrives through (a cascade trunk relabels endpoint_id)
        self.origin: Stream = self  # the publisher's stream it carries (a transcode's is its source)
        self.kind = kind
        self.source = source  # "mic" | "camera" | "screen"
        self.codec = codec.upper()
        # (packetization mode, profile_idc) it is sent in, if H.264: from its line's fmtp; the
        # default is what this node encodes (mcu.sfu.subscriber.h264_covers)
        self.h264_format = h264_format
        self.clock_rate = clock_rate
        self.level_id = audio_level_id
        self.priority = priority
        self.ssrc: int | None = None
        self._send_kf = send_keyframe_request
        self._send_nack = send_nack
        self._nacked: dict[int, float] = {}
        self.pt: int | None = None  # the publisher's payload type (to restore RTX packets)
        self.keyframe_interval = keyframe_interval
        self._kf_last = -1e9
        self._kf_timer: asyncio.TimerHandle | None = None
        self.muted = False
        self.closed = False
        # readers of the decodable media besides the SFU outputs (the MCU pipeline's depacketizer,
        # a transcoder): one call per packet; add_tap/remove_tap keep it one callable for the hot path
        self.tap: Callable[[bytes], None] | None = None
        self._taps: list[Callable[[bytes], None]] = []
        self._cache: list[bytes | None] = [None] * CACHE_SIZE
        self._keyfn = None
        self.vp8 = kind == "video" and self.codec == "VP8"
        if kind == "video":
            self._keyfn = h264_keyframe_parts if self.codec == "H264" else vp8_keyframe_start
        # outputs: live ones grouped by profile, waiting ones in a list
        self._groups: dict[tuple[int, int], list[Output]] = {}
        self._glist: list[tuple[int, int, list[Output]]] = []
        self.waiting: list[Output] = []
        # state of the last packet / last forwarded packet
        self.last_seq = 0
        self.last_ts = 0
        self.fwd_time: float | None = None
        self.key_seq: int | None = None
        self.key_pid = -1
        self.last_pid = -1  # VP8 picture id of the last forwarded packet (-1: none)
        self.key_ts: int | None = None
        self.key_time = 0.0
        self.level_sum = 0
        self.level_n = 0
        self.last_level: int | None = None
        # counters
        self.packets = 0
        self.octets = 0
        self.hi_seq = 0  # highest sequence number seen, and 2^16 wrap count (RTCP RR)
        self.seq_cycles = 0
        self._rr_prev: tuple[int, int, int] | None = None  # (ext high seq, packets, octets)
        self.cumulative_lost = 0
        self.forwarded = 0  # packets x outputs sent by the fast path
        self.keyframes = 0
        self.keyframe_requests = 0
        self.malformed = 0
        self.late = 0
        self.rtx_received = 0
        self.nacks_sent = 0

    def add_tap(self, tap: Callable[[bytes], None]) -> None:
        """Also hand each forwarded packet to ``tap`` (idempotent)."""
        if tap not in self._taps:
            self._taps.append(tap)
            self._set_tap()

    def remove_tap(self, tap: Callable[[bytes], None]) -> None:
        if tap in self._taps:
            self._taps.remove(tap)
            self._set_tap()

    def _set_tap(self) -> None:
        taps = tuple(self._taps)
        if len(taps) > 1:

            def fan_out(data: bytes) -> None:
                for tap in taps:
                    tap(data)

            self.tap = fan_out
        else:
            self.tap = taps[0] if taps else None

    # -- hot path --------------------------------------------------------------------------

    def on_rtp(self, data: bytes) -> None:
        try:
            ext_start, ext_end, off, end = payload_bounds(data)
        except ValueError:
            self.malformed += 1
            return
        if end - off > MAX_PACKET - 20:  # room for our 12-byte header and 8-byte extension
            self.malformed += 1
            return
        seq, ts = SEQ_TS.unpack_from(data, 2)
        self.packets += 1
        self.octets += end - off
        gap = (seq - self.hi_seq) & 0xFFFF
        if self.packets == 1:
            self.pt = data[1] & 0x7F
        elif gap >= 0x8000:  # older than the newest: a retransmission or reordering
            self._late(data, seq)
            return
        elif gap > 1:
            self._lost(self.hi_seq, gap)
        if seq < self.hi_seq:
            self.seq_cycles += 0x10000
        self.hi_seq = seq
        self._cache[seq & _MASK] = data
        key = False
        level = None
        pid = vp8_picture_id(data, off) if self.vp8 else -1
        if self._keyfn is not None:
            if self._keyfn(data, off, end) and ts != self.key_ts:
                key = True
                self.key_pid = pid
                self.key_seq = seq
                self.key_ts = ts
                self.key_time = time.monotonic()
                self.keyframes += 1
        elif self.level_id:
            level = audio_level(data, ext_start, ext_end, self.level_id)
            if level is not None:
                self.level_sum += level
                self.level_n += 1
                self.last_level = level
        if self.muted:
            return
        if self.tap is not None:  # the MCU pipeline or a transcoder wants it too
            self.tap(data)
        if self.waiting and (key or self._keyfn is None):
            self._admit_waiting(seq, ts, pid)
        glist = self._glist
        if not glist:
            return
        self.last_seq = seq
        self.last_ts = ts
        self.last_pid = pid
        self.fwd_time = time.monotonic()
        b1 = data[1] & 0x80
        payload = data[off:end]
        for pt, level_id, outs in glist:
            if level_id and level is not None:
                tmpl = (
                    bytes((0x90, b1 | pt)) + _ZERO10 + bytes((0xBE, 0xDE, 0, 1, level_id << 4, level, 0, 0)) + payload
                )
            else:
                tmpl = bytes((0x80, b1 | pt)) + _ZERO10 + payload
            n = len(tmpl)
            for o in outs:
                mv = o.mv
                mv[0:n] = tmpl
                pack_seq_ts_ssrc(mv, 2, (seq + o.seq_off) & 0xFFFF, (ts + o.ts_off) & 0xFFFFFFFF, o.ssrc)
                if pid >= 0:  # VP8: picture ids continuous per subscriber too
                    pack_picture_id(mv, 14, 0x8000 | ((pid + o.pid_off) & 0x7FFF))
                lp = o.lenp
                lp[0] = n
                if protect(o.ctx, o.cdata, lp):
                    o.errors += 1
                    continue
                try:
                    o.sendto(mv[: lp[0]], o.addr)
                except OSError:
                    o.dropped += 1
            self.forwarded += len(outs)

    # -- losses between the publisher and the node ----------------------------------------

    def _lost(self, hi_seq: int, gap: int) -> None:
        """Packets hi_seq+1 .. hi_seq+gap-1 are missing: ask the publisher for them (NACK)."""
        if gap <= MAX_NACK_GAP:
            self.request_retransmission([(hi_seq + i) & 0xFFFF for i in range(1, gap)])

    def request_retransmission(self, seqs: list[int]) -> None:
        """NACK ``seqs`` to the publisher, each at most once per NACK_REPEAT seconds."""
        if self._send_nack is None or self.closed or not seqs:
            return
        now = time.monotonic()
        nacked = self._nacked
        fresh = [q for q in seqs if now - nacked.get(q, -1e9) >= NACK_REPEAT]
        if not fresh:
            return
        if len(nacked) > 512:
            for q in [q for q, t in nacked.items() if now - t >= NACK_REPEAT]:
                del nacked[q]
        for q in fresh:
            nacked[q] = now
        self.nacks_sent += 1
        self._send_nack(self, fresh)

    def on_rtx(self, data: bytes) -> None:
        """An RFC 4588 retransmission from the publisher: restore the original packet."""
        try:
            _, _, off, end = payload_bounds(data)
        except ValueError:
            self.malformed += 1
            return
        if end - off < 3 or self.pt is None or self.ssrc is None:
            return  # padding-only probe, or nothing to restore it into
        head = bytearray(data[:off])
        head[0] &= 0xDF  # padding removed below
        head[1] = (data[1] & 0x80) | self.pt
        head[2] = data[off]
        head[3] = data[off + 1]
        U32.pack_into(head, 8, self.ssrc)
        self.rtx_received += 1
        self.on_rtp(bytes(head) + data[off + 2 : end])

    def _late(self, data: bytes, seq: int) -> None:
        """Forward a late packet (slow path) to the outputs that were live when it was sent."""
        self.late += 1
        if (self.hi_seq - seq) & 0xFFFF >= CACHE_SIZE:
            return
        self._cache[seq & _MASK] = data
        if self.muted:
            return
        for _, _, outs in self._glist:
            for out in outs:
                if (seq - out.epoch_seq) & 0xFFFF < 0x8000:
                    out.send_plain(out.render(data))

    def cached(self, seq: int) -> bytes | None:
        data = self._cache[seq & _MASK]
        if data is None or (data[2] << 8 | data[3]) != seq:
            return None
        return data

    # -- outputs ---------------------------------------------------------------------------

    def _rebuild(self) -> None:
        self._glist = [(k[0], k[1], v) for k, v in self._groups.items() if v]

    def _go_live(self, out: Output) -> None:
        self._groups.setdefault(out.profile, []).append(out)
        self._rebuild()

    def _admit_waiting(self, seq: int, ts: int, pid: int = -1) -> None:
        now = time.monotonic()
        ready = [o for o in self.waiting if o.ready]
        if not ready:
            return
        self.waiting = [o for o in self.waiting if not o.ready]
        for out in ready:
            out.admit(seq, ts, now, pid)
            self._groups.setdefault(out.profile, []).append(out)
        self._rebuild()

    def add_output(self, out: Output) -> None:
        """Start feeding ``out`` (already frozen / detached from its previous source)."""
        out.source = self
        out.live = False
        if not self._try_replay(out):
            self.waiting.append(out)
            if self.kind == "video" and out.ready:  # else: asked for when its transport is bound
                self.request_keyframe()

    def remove_output(self, out: Output) -> None:
        if out.source is not self:
            return
        out.freeze()
        group = self._groups.get(out.profile)
        if group and out in group:
            group.remove(out)
            self._rebuild()
        if out in self.waiting:
            self.waiting.remove(out)
        out.source = None

    def outputs(self) -> list[Output]:
        live = [o for _, _, outs in self._glist for o in outs]
        return live + list(self.waiting)

    def _try_replay(self, out: Output) -> bool:
        """Give a new video output the cached latest key frame and what followed, at once."""
        if (
            self.kind != "video"
            or self.muted
            or not out.ready
            or self.key_seq is None
            or self.fwd_time is None
            or time.monotonic() - self.key_time > REPLAY_MAX_AGE
        ):
            return False
        count = ((self.last_seq - self.key_seq) & 0xFFFF) + 1
        if count > REPLAY_MAX_PACKETS:
            return False
        packets = []
        for i in range(count):
            data = self.cached((self.key_seq + i) & 0xFFFF)
            if data is None:
                return False
            packets.append(data)
        out.admit(self.key_seq, self.key_ts or 0, self.key_time, self.key_pid)
        for data in packets:
            out.send_plain(out.render(data))
        self._go_live(out)
        return True

    # -- control ---------------------------------------------------------------------------

    def set_muted(self, muted: bool) -> None:
        if muted == self.muted:
            return
        self.muted = muted
        if muted:
            live = self.outputs()
            for out in live:
                out.freeze()
            self._groups.clear()
            self._glist = []
            self.waiting = live
        elif self.waiting and self.kind == "video":
            self.request_keyframe()

    def request_keyframe(self) -> None:
        """Ask the publisher for a key frame: merged and rate limited."""
        if self.kind != "video" or self.closed or self._send_kf is None:
            return
        now = time.monotonic()
        wait = self._kf_last + self.keyframe_interval - now
        if wait <= 0:
            self._fire_keyframe_request()
        elif self._kf_timer is None:
            loop = asyncio.get_running_loop()
            self._kf_timer = loop.call_later(wait, self._fire_keyframe_request)

    def _fire_keyframe_request(self) -> None:
        self._kf_timer = None
        if self.closed or self._send_kf is None:
            return
        self._kf_last = time.monotonic()
        self.keyframe_requests += 1
        self._send_kf(self)

    def reception_report(self, interval: float) -> tuple[int, int, int, int] | None:
        """(fraction lost 0..255, cumulative lost, extended highest seq, received bit/s) since
        the previous call; None before any packet."""
        if not self.packets or self.ssrc is None:
            return None
        ext_high = self.seq_cycles + self.hi_seq
        prev = self._rr_prev
        self._rr_prev = (ext_high, self.packets, self.octets)
        if prev is None:
            return 0, self.cumulative_lost, ext_high, 0
        expected = ext_high - prev[0]
        received = self.packets - prev[1]
        lost = max(0, expected - received)
        self.cumulative_lost = min(0x7FFFFF, self.cumulative_lost + lost)
        fraction = min(255, lost * 256 // expected) if expected > 0 else 0
        rate = int((self.octets - prev[2]) * 8 / interval) if interval > 0 else 0
        return fraction, self.cumulative_lost, ext_high, rate

    def mean_payload(self) -> int:
        return self.octets // self.packets if self.packets else 0

    def take_level(self) -> float | None:
        """Mean audio level (-dBov) since the last call, or None without packets."""
        if not self.level_n:
            return None
        mean = self.level_sum / self.level_n
        self.level_sum = 0
        self.level_n = 0
        return mean

    def close(self) -> list[Output]:
        """Detach every output (they stay frozen, ready for another source); idempotent."""
        if self.closed:
            return []
        self.closed = True
        if self._kf_timer is not None:
            self._kf_timer.cancel()
            self._kf_timer = None
        outs = self.outputs()
        for out in outs:
            self.remove_output(out)
        self._cache = [None] * CACHE_SIZE
        self._send_kf = None
        self._send_nack = None
        return outs

    def stats(self) -> dict[str, Any]:
        return {
            "id": self.stream_id,
            "endpoint": self.endpoint_id,
            "kind": self.kind,
            "source": self.source,
            "packets": self.packets,
            "forwarded": self.forwarded,
            "keyframes": self.keyframes,
            "keyframe_requests": self.keyframe_requests,
            "late": self.late,
            "rtx_received": self.rtx_received,
            "nacks_sent": self.nacks_sent,
            "muted": self.muted,
            "outputs": len(self.outputs()),
        }
