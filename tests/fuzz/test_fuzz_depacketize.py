"""Fuzz the depacketizers a publisher's RTP payloads reach (#13): ``H264Assembler`` (single NAL,
STAP-A, FU-A) and ``Vp8Assembler``, each followed by a real PyAV decoder as in the transcoder and
the compositor. Seeded, bounded hostile sequences (tests/fuzz/rtp_payloads.py); for each one:

* nothing raises (the assembler; the decoder may refuse a frame with ``av.FFmpegError`` only);
* memory stays bounded: a frame, and what waits for its end, is at most ``MAX_FRAME_PACKETS``
  packets' worth, however many NAL units or fragments arrive;
* then a real encoder's key frame and a delta, sent right after, come out of the same assembler
  and decode, in the same decoder, to the colour that was encoded.

Pure computation (no socket, no thread): marked unit, though it lives with the fuzz layer.
"""

from __future__ import annotations

import struct
import tracemalloc

import av
import pytest

from mcu.bridge.depacketize import MAX_FRAME_PACKETS, H264Assembler, Vp8Assembler
from tests.fuzz.rtp_payloads import (
    MTU_PAYLOAD,
    Cursor,
    Valid,
    close_to,
    h264_payloads,
    mean_colour,
    sequences,
    vp8_payloads,
)
from tests.fuzz.support import Failures, draw, record

pytestmark = pytest.mark.unit
SEQUENCES = 150  # per codec: ~3 s each on a loaded core
FRAME_BOUND = MAX_FRAME_PACKETS * 2 * MTU_PAYLOAD  # a 1-byte NAL unit grows to 5 bytes in Annex-B
CODECS = {
    "H264": (H264Assembler, "h264", h264_payloads, (40, 200, 60)),
    "VP8": (Vp8Assembler, "vp8", vp8_payloads, (220, 60, 200)),
}


def bounded(asm: H264Assembler | Vp8Assembler) -> None:
    if isinstance(asm, H264Assembler):
        assert asm._packets <= MAX_FRAME_PACKETS + 1, asm._packets
        assert sum(map(len, asm._nals)) + len(asm._fu or b"") <= MAX_FRAME_PACKETS * MTU_PAYLOAD
    else:
        assert len(asm._parts) <= MAX_FRAME_PACKETS + 1, len(asm._parts)


def decode(decoder: av.CodecContext, payload: bytes) -> list[av.VideoFrame]:
    try:
        return list(decoder.decode(av.Packet(payload)))
    except av.FFmpegError:
        return []  # refused: the caller asks for a key frame


def recovers(asm, decoder: av.CodecContext, cursor: Cursor, valid: Valid) -> None:
    """The key frame and a delta right after the garbage: out of the assembler, decoded, coloured."""
    frames = [f for i in (0, 1) for p in valid.packets(cursor, i) if (f := asm.push(p)) is not None]
    frames += [f for p in valid.packets(cursor, 2) if (f := asm.push(p)) is not None]
    keys = [i for i, f in enumerate(frames) if f.keyframe]
    assert keys, f"no key frame came out ({len(frames)} frames)"
    pictures = [pic for f in frames[keys[0] :] for pic in decode(decoder, f.payload)]
    assert pictures, "the key frame did not decode"
    assert close_to(mean_colour(pictures[-1]), valid.colour), mean_colour(pictures[-1])


@pytest.mark.parametrize("codec", list(CODECS))
def test_hostile_sequences_never_raise_stay_bounded_and_a_key_frame_recovers(codec: str):
    make, decoder_name, payloads, colour = CODECS[codec]
    valid = Valid(codec, colour)
    with Failures() as failures:
        for sequence in draw(sequences(payloads), SEQUENCES):
            record(f"rtp_{codec.lower()}", sequence)
            with failures.on([p.payload[:40] for p in sequence[:6]]):
                asm, decoder, cursor = make(), av.CodecContext.create(decoder_name, "r"), Cursor()
                for packet in cursor.render(sequence):
                    frame = asm.push(packet)
                    bounded(asm)
                    if frame is not None:
                        assert len(frame.payload) <= FRAME_BOUND
                        decode(decoder, frame.payload)
                recovers(asm, decoder, cursor, valid)


def _rtp(seq: int, ts: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 102, seq & 0xFFFF, ts, 1234) + payload


@pytest.mark.parametrize(
    "payload",
    [
        bytes((24,)) + struct.pack("!HB", 1, 6) * ((MTU_PAYLOAD - 1) // 3),  # 466 NAL units a packet
        bytes((28, 0x85)) + bytes(MTU_PAYLOAD - 2),  # an FU-A start, then its middles forever
        bytes((28, 0x05)) + bytes(MTU_PAYLOAD - 2),  # FU-A middles without a start
        bytes((0x65,)) + bytes(MTU_PAYLOAD - 1),  # single IDR NAL units, never a marker
    ],
    ids=["stap-a-466-nals", "fu-a-never-ends", "fu-a-no-start", "single-nal-no-marker"],
)
def test_one_endless_h264_frame_holds_at_most_its_packet_bound(payload: bytes):
    """5000 packets of one timestamp without a marker (7 MB sent): the assembler gives up on the
    frame at MAX_FRAME_PACKETS and holds nothing more, then the next key frame decodes."""
    asm, cursor = H264Assembler(), Cursor()
    first = payload[:2] if payload[0] == 28 else b""
    tracemalloc.start()
    try:
        for i in range(5000):
            body = payload if i == 0 or not first else bytes((28, payload[1] & 0x3F)) + payload[2:]
            assert asm.push(_rtp(cursor.seq + i, cursor.ts, body)) is None
            bounded(asm)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_FRAME_PACKETS * MTU_PAYLOAD, f"{peak / 1e6:.1f} MB held"
    assert asm.need_keyframe and asm._packets <= MAX_FRAME_PACKETS + 1
    cursor.seq += 4999
    record("rtp_h264", payload)
    recovers(asm, av.CodecContext.create("h264", "r"), cursor, Valid("H264", (200, 200, 40)))


def test_padding_between_h264_frames_is_no_hole_but_a_hole_before_it_is():
    """Found by the fuzz above: a padding-only packet (a sender's bandwidth probe, on the media SSRC
    when no RTX is negotiated) takes a sequence number. It used to leave the assembler's count
    behind, so the next frame, key frame included, was dropped as if a packet were lost."""
    valid = Valid("H264", (40, 200, 60))
    for lost_before, wanted in ((False, [True, False]), (True, [True])):
        asm, cursor = H264Assembler(), Cursor()
        got = [f for p in valid.packets(cursor, 0) if (f := asm.push(p)) is not None]
        cursor.seq += 1 + lost_before  # a lost packet (a whole delta frame) before the padding
        padding = bytes((0xA0, 102)) + struct.pack("!HII", cursor.seq, cursor.ts, 1234) + bytes(254) + b"\xff"
        assert asm.push(padding) is None
        got += [f for p in valid.packets(cursor, 1) if (f := asm.push(p)) is not None]
        assert [f.keyframe for f in got] == wanted, lost_before
        assert asm.need_keyframe == lost_before
