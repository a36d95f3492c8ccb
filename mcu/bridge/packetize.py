"""Encoded frames into RTP packets for the MCU outputs (I/O free).

A ``Packetizer`` numbers one synthetic stream (a quality rendition's composite, one listener's mix):
its own sequence numbers, a 15-bit VP8 picture id per frame. The packets carry SSRC 0 and a
placeholder payload type: they enter a ``mcu.sfu.stream.Stream`` like a publisher's packets, and
each subscriber's ``Output`` rewrites SSRC, payload type, sequence number, timestamp and picture
id on the way out (the SFU's fast path), so a rendition is packetized once for all its subscribers.
"""

from __future__ import annotations

import random
import struct

_HEAD = struct.Struct("!BBHII")
VP8_MAX_PAYLOAD = 1100  # bytes of VP8 data per packet (headers and SRTP stay under 1200)
PLACEHOLDER_PT = 96


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

    def opus(self, payload: bytes, timestamp: int, marker: bool = False) -> bytes:
        """One Opus packet (RFC 7587: one payload per packet)."""
        self.frames += 1
        return self._head(marker, timestamp) + payload
