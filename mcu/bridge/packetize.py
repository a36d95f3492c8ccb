"""Encoded frames into RTP packets for the MCU outputs (I/O free).

A ``Packetizer`` numbers one synthetic stream (a quality rendition's composite, one listener's mix):
its own sequence numbers, a 15-bit VP8 picture id per frame. Audio payloads (Opus, G.711, G.722)
go one per packet, as they come. H.264 access units (Annex-B, as
libx264 writes them) become RFC 6184 packets: in packetization mode 1, small NAL units (SPS,
PPS) travel together in a STAP-A, big ones are cut into FU-As, the others go alone; in mode 0
every NAL unit goes alone (the encoder's slice size keeps them under a packet). The packets carry SSRC 0 and a
placeholder payload type: they enter a ``mcu.sfu.stream.Stream`` like a publisher's packets, and
each subscriber's ``Output`` rewrites SSRC, payload type, sequence number, timestamp and picture
id on the way out (the SFU's fast path), so a rendition is packetized once for all its subscribers.
"""

from __future__ import annotations

import random
import struct

_HEAD = struct.Struct("!BBHII")
VP8_MAX_PAYLOAD = 1100  # bytes of VP8 data per packet (headers and SRTP stay under 1200)
H264_MAX_PAYLOAD = VP8_MAX_PAYLOAD  # bytes of RTP payload per H.264 packet
PLACEHOLDER_PT = 96
_STAP_A, _FU_A = 24, 28


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream (3- or 4-byte start codes), without start codes."""
    nals = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        pos = data.find(b"\x00\x00\x01", start)
        nal = data[start : pos if pos >= 0 else len(data)].rstrip(b"\x00")  # a NAL never ends in 0
        if nal:
            nals.append(nal)
    return nals


class Packetizer:
    def __init__(self, payload_type: int = PLACEHOLDER_PT) -> None:
        self.pt = payload_type
        self.seq = random.randrange(1 << 16)
        self.picture_id = random.randrange(1 << 15)
        self.packets = 0
        self.frames = 0

    def _head(self, marker: bool, ts: int) -> bytes:
        head = _HEAD.pack(0x80, (0x80 if marker else 0) | self.pt, self.seq, ts & 0xFFFFFFFF, 0)
        self.seq = (self.seq + 1) & 0xFFFF
        self.packets += 1
        return head

    def vp8(self, frame: bytes, timestamp: int) -> list[bytes]:
        """RFC 7741 packets of one VP8 frame: descriptor with X, I and a 15-bit picture id;
        S on the first packet, the marker bit on the last."""
        if not frame:
            return []
        pid = self.picture_id
        self.picture_id = (pid + 1) & 0x7FFF
        self.frames += 1
        n = -(-len(frame) // VP8_MAX_PAYLOAD)
        size = -(-len(frame) // n)  # equal-sized packets
        out = []
        for i in range(n):
            chunk = frame[i * size : (i + 1) * size]
            desc = bytes((0x90 if i == 0 else 0x80, 0x80, 0x80 | (pid >> 8), pid & 0xFF))
            out.append(self._head(i == n - 1, timestamp) + desc + chunk)
        return out

    def h264(self, annexb_frame: bytes, timestamp: int, mode: int = 1) -> list[bytes]:
        """RFC 6184 packets of one access unit, the marker bit on the last. Mode 0 raises
        ValueError for a NAL unit bigger than a packet."""
        payloads: list[bytes] = []
        group: list[bytes] = []  # small NAL units waiting to share a STAP-A
        for nal in split_annexb(annexb_frame):
            if mode == 0:
                if len(nal) > H264_MAX_PAYLOAD:
                    raise ValueError(f"H.264 NAL unit of {len(nal)} bytes in packetization mode 0")
                payloads.append(nal)
            elif len(nal) > H264_MAX_PAYLOAD:
                payloads += _aggregate(group) + _fragment(nal)
                group = []
            elif 1 + sum(2 + len(n) for n in group) + 2 + len(nal) > H264_MAX_PAYLOAD:
                payloads += _aggregate(group)
                group = [nal]
            else:
                group.append(nal)
        payloads += _aggregate(group)
        if not payloads:
            return []
        self.frames += 1
        last = len(payloads) - 1
        return [self._head(i == last, timestamp) + p for i, p in enumerate(payloads)]

    def audio(self, payload: bytes, timestamp: int, marker: bool = False) -> bytes:
        """One packet of a plain audio payload: Opus (RFC 7587), G.711 or G.722 (RFC 3551), one
        frame per packet, the timestamp in the codec's RTP clock."""
        self.frames += 1
        return self._head(marker, timestamp) + payload

    opus = audio


def _aggregate(nals: list[bytes]) -> list[bytes]:
    """One STAP-A of several NAL units (F: any set; NRI: the highest), or a single one alone."""
    if len(nals) < 2:
        return nals
    f_nri = max(n[0] & 0x60 for n in nals) | max(n[0] & 0x80 for n in nals)
    return [bytes((f_nri | _STAP_A,)) + b"".join(len(n).to_bytes(2, "big") + n for n in nals)]


def _fragment(nal: bytes) -> list[bytes]:
    """FU-As of one NAL unit, of equal size: its header byte split into indicator and FU header."""
    indicator, kind, body = (nal[0] & 0xE0) | _FU_A, nal[0] & 0x1F, nal[1:]
    n = -(-len(body) // (H264_MAX_PAYLOAD - 2))
    size = -(-len(body) // n)
    return [
        bytes((indicator, (0x80 if i == 0 else 0) | (0x40 if i == n - 1 else 0) | kind))
        + body[i * size : (i + 1) * size]
        for i in range(n)
    ]
