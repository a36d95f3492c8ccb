"""RTP payloads back into encoded frames, for the MCU pipeline (I/O free, bytes in, bytes out).

``Vp8Assembler`` rebuilds VP8 frames (RFC 7741): a frame is the payloads, stripped of their
payload descriptors, of consecutive packets sharing one RTP timestamp, from the packet that
starts partition 0 (S bit, PID 0) up to the packet with the marker bit. A frame with a missing
packet is dropped and the assembler reports that it needs a key frame (a delta after a hole
cannot be decoded); the key-frame flag comes from the VP8 payload header (P bit 0).

``opus_payload`` gives an Opus packet's payload, sequence number, timestamp and RFC 6464 level.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcu.sfu.rtp_header import SEQ_TS, audio_level, payload_bounds

MAX_FRAME_PACKETS = 400  # a 720p key frame is ~100 packets; more is garbage


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
