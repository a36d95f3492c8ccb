"""Hostile RTP payloads for the depacketizers (mcu.bridge.depacketize) and the decoders behind them,
as a stranger who got a publisher's SRTP keys (its own browser, patched) can send them: H.264
STAP-A whose NAL unit sizes lie, FU-A without a start or ending twice, thousands of tiny NAL units,
reserved and interleaved-mode types; VP8 payload descriptors cut short or with every optional
field; random bytes; RTP headers whose sequence numbers jump and repeat, whose timestamps change
mid-frame or never, whose marker bits are missing or everywhere.

``sequences`` draws a list of packets (hypothesis); ``render`` makes their bytes, continuing from a
sequence number, so that the valid key frame sent afterwards follows them without a gap.
``Valid`` is a real encoder's coloured key frames (PyAV), packetized as the MCU does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import av
import numpy as np
from hypothesis import strategies as st

from mcu.bridge.packetize import Packetizer
from mcu.compose.testsrc import encode_clip

MTU_PAYLOAD = 1400  # what a publisher's packets carry at most (the Stream drops bigger ones)
H264_KINDS = [0, 1, 5, 6, 7, 8, 9, 12, 23, 24, 25, 26, 27, 28, 29, 30, 31]  # incl. reserved, STAP-B, MTAP, FU-B


@dataclass(frozen=True)
class Packet:
    seq_step: int  # 1: the next one; 0: repeated; else a jump (forwards or backwards)
    new_ts: int  # 0: the frame's timestamp; else a new one this far on
    marker: bool
    payload: bytes


def _nri(kind: int) -> st.SearchStrategy[int]:
    return st.sampled_from([0x00, 0x60, 0xE0]).map(lambda bits: bits | kind)  # F and NRI bits


nal_units = st.tuples(st.sampled_from(H264_KINDS).flatmap(_nri), st.binary(max_size=40)).map(
    lambda t: bytes((t[0],)) + t[1]
)


@st.composite
def stap_a(draw: st.DrawFn) -> bytes:
    """STAP-A whose sizes are right, zero, one too long, or anything (65535 included)."""
    out = bytearray((draw(_nri(24)),))
    for nal in draw(st.lists(nal_units, max_size=8)):
        size = draw(st.sampled_from([len(nal), len(nal), 0, len(nal) + 1, 65535]) | st.integers(0, 65535))
        out += struct.pack("!H", size) + nal
    if draw(st.booleans()):
        out += draw(st.binary(max_size=3))  # a size field cut short
    return bytes(out)


@st.composite
def many_nal_units(draw: st.DrawFn) -> bytes:
    """A full STAP-A of one-byte NAL units (~460 per packet): the count that grows lists."""
    kind = draw(st.sampled_from([1, 5, 6, 7, 8, 9]))
    return bytes((24,)) + b"".join(struct.pack("!HB", 1, kind) for _ in range((MTU_PAYLOAD - 1) // 3))


@st.composite
def fu_a(draw: st.DrawFn) -> bytes:
    """FU-A with any S/E bits (a middle without a start, start twice, S and E both), any type."""
    start, end = draw(st.booleans()), draw(st.booleans())
    header = (0x80 if start else 0) | (0x40 if end else 0) | draw(st.integers(0, 31))
    return bytes((draw(_nri(28)), header)) + draw(st.binary(max_size=draw(st.sampled_from([0, 1, 60, 1300]))))


@st.composite
def vp8_payload(draw: st.DrawFn) -> bytes:
    """A VP8 payload descriptor with any X/I/L/T/K bits and partition ids, cut anywhere."""
    b0 = draw(st.integers(0, 255))
    ext = draw(st.integers(0, 255))
    pid = draw(st.binary(min_size=0, max_size=2))
    body = draw(st.binary(max_size=draw(st.sampled_from([0, 3, 40, 1300]))))
    return (bytes((b0, ext)) + pid + b"\x00\x00" + body)[: draw(st.sampled_from([1, 2, 3, 4, 5, 10, 10_000]))]


h264_payloads = st.one_of(nal_units, stap_a(), fu_a(), many_nal_units(), st.binary(max_size=60))
vp8_payloads = st.one_of(vp8_payload(), st.binary(max_size=60))


def packets(payloads: st.SearchStrategy[bytes]) -> st.SearchStrategy[Packet]:
    return st.builds(
        Packet,
        seq_step=st.sampled_from([1, 1, 1, 1, 0, 2, -1, 0x8000]) | st.integers(0, 0xFFFF),
        new_ts=st.sampled_from([0, 0, 0, 3000]) | st.integers(0, 0xFFFFFFFF),
        marker=st.booleans(),
        payload=payloads,
    )


def sequences(payloads: st.SearchStrategy[bytes], max_size: int = 40) -> st.SearchStrategy[list[Packet]]:
    return st.lists(packets(payloads), min_size=1, max_size=max_size)


@dataclass
class Cursor:
    """Where a publisher's numbering stands: hostile packets continue it, a valid frame follows."""

    seq: int = 1000
    ts: int = 90_000
    ssrc: int = 1234
    pt: int = 102

    def render(self, sequence: list[Packet]) -> list[bytes]:
        out = []
        for p in sequence:
            self.seq = (self.seq + p.seq_step) & 0xFFFF
            self.ts = (self.ts + p.new_ts) & 0xFFFFFFFF
            head = struct.pack("!BBHII", 0x80, (0x80 if p.marker else 0) | self.pt, self.seq, self.ts, self.ssrc)
            out.append(head + p.payload)
        return out


@dataclass
class Valid:
    """Coloured frames of a real encoder (a key frame, then deltas), packetized after a cursor."""

    codec: str  # "H264" | "VP8"
    colour: tuple[int, int, int]
    width: int = 160
    height: int = 120
    frames: list[tuple[bytes, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        name = "h264" if self.codec == "H264" else "vp8"
        self.frames = encode_clip(self.colour, self.width, self.height, 3, codec=name, pattern=False)
        assert self.frames[0][1] and not self.frames[1][1]

    def packets(self, cursor: Cursor, index: int) -> list[bytes]:
        """Frame ``index`` as RTP, right after the cursor's last packet (a new timestamp)."""
        pk = Packetizer(cursor.pt)
        pk.seq = (cursor.seq + 1) & 0xFFFF
        cursor.ts = (cursor.ts + 3000) & 0xFFFFFFFF
        data, _ = self.frames[index]
        out = pk.vp8(data, cursor.ts) if self.codec == "VP8" else pk.h264(data, cursor.ts)
        cursor.seq = (pk.seq - 1) & 0xFFFF
        return [p[:8] + struct.pack("!I", cursor.ssrc) + p[12:] for p in out]


def mean_colour(picture: av.VideoFrame) -> np.ndarray:
    return picture.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)


def close_to(colour, wanted: tuple[int, int, int], tolerance: int = 25) -> bool:
    return bool(np.abs(np.asarray(colour, dtype=float) - wanted).max() <= tolerance)
