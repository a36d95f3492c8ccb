"""RTP payloads back into encoded frames, for the MCU pipeline (I/O free, bytes in, bytes out).

``Vp8Assembler`` rebuilds VP8 frames (RFC 7741): a frame is the payloads, stripped of their
payload descriptors, of consecutive packets sharing one RTP timestamp, from the packet that
starts partition 0 (S bit, PID 0) up to the packet with the marker bit. A frame with a missing
packet is dropped and the assembler reports that it needs a key frame (a delta after a hole
cannot be decoded); the key-frame flag comes from the VP8 payload header (P bit 0).

``H264Assembler`` rebuilds H.264 access units (RFC 6184, packetization modes 0 and 1: single NAL
units, STAP-A, FU-A) as Annex-B bytes (a 4-byte start code before each NAL unit). A frame is the
consecutive packets sharing one RTP timestamp, up to the marker bit (or, from a sender that omits
it, up to the next timestamp). Holes drop the frame and ask for a key frame, as for VP8; a key
frame is one holding an IDR slice, and the last SPS and PPS seen are put in front of an IDR that
came without them (a sender may send them once, or in the previous frame).

``opus_payload`` gives an Opus packet's payload, sequence number, timestamp and RFC 6464 level.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcu.sfu.rtp_header import SEQ_TS, audio_level, payload_bounds

MAX_FRAME_PACKETS = 400  # a 720p key frame is ~100 packets; more is garbage
START_CODE = b"\x00\x00\x00\x01"
NAL_IDR, NAL_SPS, NAL_PPS, NAL_AUD = 5, 7, 8, 9
NAL_STAP_A, NAL_FU_A = 24, 28


@dataclass(frozen=True, slots=True)
class Frame:
    payload: bytes
    keyframe: bool
    timestamp: int  # RTP timestamp (90 kHz)


def vp8_descriptor_size(data: bytes, off: int, end: int) -> int:
    """Length of the VP8 payload descriptor at ``off`` (RFC 7741 4.2); -1 if truncated."""
    if end - off < 1:
        return -1
    pos = off + 1
    if data[off] & 0x80:  # X
        if pos >= end:
            return -1
        x = data[pos]
        pos += 1
        if x & 0x80:  # I
            if pos >= end:
                return -1
            pos += 2 if data[pos] & 0x80 else 1
        if x & 0x40:  # L
            pos += 1
        if x & 0x30:  # T or K
            pos += 1
    return pos - off if pos <= end else -1


class Vp8Assembler:
    """Packets of one VP8 stream in arrival order -> complete frames."""

    def __init__(self) -> None:
        self._ts: int | None = None
        self._next_seq = 0
        self._parts: list[bytes] = []
        self._key = False
        self._broken = False
        self.need_keyframe = True  # nothing decodable until a key frame arrives
        self.frames = 0
        self.dropped = 0

    def push(self, data: bytes) -> Frame | None:
        """Feed one RTP packet; returns the frame this packet completes, if any."""
        try:
            _, _, off, end = payload_bounds(data)
        except ValueError:
            return None
        size = vp8_descriptor_size(data, off, end)
        if size < 0 or off + size >= end:
            return None
        seq, ts = SEQ_TS.unpack_from(data, 2)
        marker = bool(data[1] & 0x80)
        start = bool(data[off] & 0x10) and not (data[off] & 0x07)
        body = data[off + size : end]
        if start:
            if self._ts is not None and self._parts:
                self._drop()  # the previous frame never saw its marker
            self._ts = ts
            self._parts = [body]
            self._key = not (body[0] & 0x01)
            self._broken = False
        elif ts != self._ts or seq != self._next_seq or self._broken:
            if not self._broken:
                self._drop()  # a packet of this frame (or its start) is missing
            self._broken = True
            self._ts = ts
            self._next_seq = (seq + 1) & 0xFFFF
            return None
        else:
            self._parts.append(body)
            if len(self._parts) > MAX_FRAME_PACKETS:
                self._drop()
                self._broken = True
                return None
        self._next_seq = (seq + 1) & 0xFFFF
        if not marker:
            return None
        payload = b"".join(self._parts)
        key = self._key
        self._parts = []
        self._ts = None
        if self.need_keyframe and not key:
            self.dropped += 1
            return None
        self.need_keyframe = False
        self.frames += 1
        return Frame(payload, key, ts)

    def _drop(self) -> None:
        self.dropped += 1
        self.need_keyframe = True
        self._parts = []


class H264Assembler:
    """Packets of one H.264 stream in arrival order -> complete access units (Annex-B)."""

    def __init__(self) -> None:
        self._ts: int | None = None
        self._next_seq: int | None = None
        self._nals: list[bytes] = []
        self._fu: bytearray | None = None  # the FU-A being reassembled
        self._packets = 0
        self._broken = False
        self._ended = False  # marker seen, but the frame waits (see push)
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self.need_keyframe = True  # nothing decodable until a key frame arrives
        self.frames = 0
        self.dropped = 0

    def push(self, data: bytes) -> Frame | None:
        """Feed one RTP packet; returns the frame this packet completes, if any."""
        try:
            _, _, off, end = payload_bounds(data)
        except ValueError:
            return None
        seq, ts = SEQ_TS.unpack_from(data, 2)
        if end <= off:  # padding only (a sender's bandwidth probe): no media, but it takes a number
            done = self._finish() if self._ended else None
            if self._next_seq is not None and seq != self._next_seq:
                self._drop()  # a hole before it: the end of this frame, or a whole frame, is lost
            self._next_seq = (seq + 1) & 0xFFFF
            return done
        gap = self._next_seq is not None and seq != self._next_seq
        self._next_seq = (seq + 1) & 0xFFFF
        done = None
        if ts != self._ts:
            if self._ended or (self._pending() and not gap):
                done = self._finish()  # a sender without marker bits: the timestamp ends the frame
            elif self._pending():
                self._drop()  # the frame's last packets may be the missing ones
            self._start(ts)
        if gap and not self._broken:
            self._drop()  # a packet of this frame (or its start) is missing
        if not self._broken:
            self._packets += 1
            if self._packets > MAX_FRAME_PACKETS or not self._add(data, off, end):
                self._drop()
        if data[1] & 0x80:
            if done is None:
                return self._finish()
            self._ended = True  # one frame per call: this one goes out with the next packet
        return done

    def _pending(self) -> bool:
        return bool(self._nals) or self._fu is not None

    def _start(self, ts: int) -> None:
        self._ts = ts
        self._nals = []
        self._fu = None
        self._packets = 0
        self._broken = self._ended = False

    def _add(self, data: bytes, off: int, end: int) -> bool:
        """The NAL units of one payload; False if it is malformed or out of place."""
        kind = data[off] & 0x1F
        if 0 < kind < NAL_STAP_A:
            if self._fu is not None:
                return False  # an FU-A never finished
            self._nals.append(data[off:end])
        elif kind == NAL_STAP_A:
            pos = off + 1
            while pos < end:
                size = data[pos] << 8 | data[pos + 1] if pos + 2 <= end else 0
                if not size or pos + 2 + size > end:
                    return False
                self._nals.append(data[pos + 2 : pos + 2 + size])
                pos += 2 + size
        elif kind == NAL_FU_A and end - off > 2:
            fu = data[off + 1]
            if fu & 0x80:  # S: the NAL unit header is rebuilt from the indicator and FU header
                if self._fu is not None:
                    return False
                self._fu = bytearray(((data[off] & 0xE0) | (fu & 0x1F),))
            elif self._fu is None:
                return False  # its start is missing
            self._fu += data[off + 2 : end]
            if fu & 0x40:  # E
                self._nals.append(bytes(self._fu))
                self._fu = None
        else:
            return False  # STAP-B, MTAP, FU-B (interleaved mode, never negotiated) or reserved
        return True

    def _finish(self) -> Frame | None:
        nals, ts, broken, unfinished = self._nals, self._ts, self._broken, self._fu is not None
        self._start(-1)  # no packet has timestamp -1: the next one starts a frame
        if unfinished and not broken:
            self._drop()  # an FU-A without its end
        if broken or unfinished or not nals or ts is None:
            return None
        kinds = [n[0] & 0x1F for n in nals]
        for nal, kind in zip(nals, kinds):
            if kind == NAL_SPS:
                self._sps = nal
            elif kind == NAL_PPS:
                self._pps = nal
        key = NAL_IDR in kinds
        if key:
            nals = self._with_parameter_sets(nals, kinds)
        if self.need_keyframe and not key:
            self.dropped += 1
            return None
        self.need_keyframe = False
        self.frames += 1
        return Frame(b"".join(START_CODE + n for n in nals), key, ts)

    def _with_parameter_sets(self, nals: list[bytes], kinds: list[int]) -> list[bytes]:
        missing = [n for n, k in ((self._sps, NAL_SPS), (self._pps, NAL_PPS)) if n is not None and k not in kinds]
        if not missing:
            return nals
        at = 1 if kinds[0] == NAL_AUD else 0  # an access unit delimiter stays first
        return nals[:at] + missing + nals[at:]

    def _drop(self) -> None:
        self.dropped += 1
        self.need_keyframe = True
        self._broken = True
        self._nals = []
        self._fu = None


def opus_payload(data: bytes, level_id: int = 0) -> tuple[bytes, int, int, int | None] | None:
    """(payload, seq, timestamp, RFC 6464 level or None) of an Opus RTP packet; None if bad."""
    try:
        ext_start, ext_end, off, end = payload_bounds(data)
    except ValueError:
        return None
    if end <= off:
        return None
    seq, ts = SEQ_TS.unpack_from(data, 2)
    level = audio_level(data, ext_start, ext_end, level_id) if level_id else None
    return data[off:end], seq, ts, level
