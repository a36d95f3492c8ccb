"""H.264 over RTP (RFC 6184) with real libx264 frames: Packetizer.h264 -> H264Assembler -> FFmpeg's
decoder, pictures compared by colour; loss, mode 0, senders without marker bits, garbage."""

import random
from fractions import Fraction

import av
import numpy as np
import pytest

from mcu.bridge.depacketize import H264Assembler
from mcu.bridge.packetize import H264_MAX_PAYLOAD, Packetizer, split_annexb
from mcu.sfu import rtp_header as rh

W, H = 320, 240
BLOCK = 64
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (200, 40, 200), (40, 200, 200)]


def picture(i: int, moving: bool) -> np.ndarray:
    """A block of COLOURS[i] (what the receiver checks) on noise (big NAL units), the same noise
    in every picture (small deltas) or new noise in each (big deltas too)."""
    img = np.random.default_rng(i if moving else 0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    img[:BLOCK, :BLOCK] = COLOURS[i % len(COLOURS)]
    return img


def h264_frames(
    n: int, keys: tuple[int, ...] = (0,), slice_max: int = 0, moving: bool = False
) -> list[tuple[bytes, bool]]:
    """(Annex-B access unit, keyframe) of n pictures, libx264 baseline zerolatency as the MCU encodes."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = W, H, "yuv420p"
    ctx.time_base, ctx.framerate, ctx.bit_rate = Fraction(1, 30), Fraction(30), 3_000_000
    ctx.gop_size, ctx.thread_count = 1000, 1
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
    if slice_max:
        ctx.options = {**ctx.options, "x264-params": f"slice-max-size={slice_max}"}
    out = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(picture(i, moving), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.pict_type = av.video.frame.PictureType.I if i in keys else av.video.frame.PictureType.NONE
        out += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(frame)]
    assert len(out) == n
    return out


def top_colour(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")[8 : BLOCK - 8, 8 : BLOCK - 8].reshape(-1, 3).mean(axis=0)


def decode(frames, decoder=None) -> list[np.ndarray]:
    decoder = decoder or av.CodecContext.create("h264", "r")
    return [top_colour(f) for fr in frames for f in decoder.decode(av.Packet(fr.payload))]


def assemble(packets: list[bytes], asm: H264Assembler | None = None) -> list:
    asm = asm or H264Assembler()
    return [f for f in map(asm.push, packets) if f is not None]


def nal_kinds(payload: bytes) -> int:
    """The packetization of one RTP payload: 24 (STAP-A), 28 (FU-A) or the single NAL's type."""
    return payload[12] & 0x1F


def test_mode1_round_trip_takes_every_path_and_decodes_the_colours():
    frames = h264_frames(6, keys=(0, 3))
    pk = Packetizer()
    packets, per_frame = [], []
    for i, (data, key) in enumerate(frames):
        ps = pk.h264(data, i * 3000)
        assert [p[1] >> 7 for p in ps] == [0] * (len(ps) - 1) + [1]  # marker on the last
        assert all(len(p) - 12 <= H264_MAX_PAYLOAD for p in ps)
        assert {p[4:8] for p in ps} == {(i * 3000).to_bytes(4, "big")}
        per_frame.append(ps)
        packets += ps
    kinds = {nal_kinds(p) for p in packets}
    assert {24, 28} <= kinds and kinds & {1, 5}  # STAP-A (SPS+PPS+SEI), FU-A, single NAL units
    got = assemble(packets)
    assert [(f.keyframe, f.timestamp) for f in got] == [(k, i * 3000) for i, (_, k) in enumerate(frames)]
    assert [f.payload for f in got] == [b"".join(b"\0\0\0\1" + n for n in split_annexb(d)) for d, _ in frames]
    colours = decode(got)
    assert len(colours) == 6
    for i, c in enumerate(colours):
        assert np.abs(c - COLOURS[i]).max() < 20, (i, c)


def test_sfu_keyframe_detection_agrees_with_the_assembler():
    """The SFU starts an output on the first packet h264_keyframe_parts flags: it must be the
    first packet of a frame the assembler calls a key frame, and deltas are never flagged."""
    for mode, slice_max in ((1, 0), (0, 1000)):
        frames = h264_frames(5, keys=(0, 3), slice_max=slice_max)
        pk, asm = Packetizer(), H264Assembler()
        for i, (data, key) in enumerate(frames):
            ps = pk.h264(data, i * 3000, mode=mode)
            flagged = [rh.h264_keyframe_parts(p, 12, len(p)) for p in ps]
            assert flagged[0] == key and any(flagged) == key, (mode, i)
            (frame,) = assemble(ps, asm)
            assert frame.keyframe == key


def test_a_lost_packet_drops_frames_until_the_next_idr_without_corrupt_pictures():
    frames = h264_frames(6, keys=(0, 4), moving=True)
    pk = Packetizer()
    per_frame = [pk.h264(d, i * 3000) for i, (d, _) in enumerate(frames)]
    assert len(per_frame[1]) > 2  # the noise makes deltas several FU-As long
    asm, decoder, seen = H264Assembler(), av.CodecContext.create("h264", "r"), []
    for i, ps in enumerate(per_frame):
        if i == 1:
            ps = ps[:1] + ps[2:]  # the middle of a delta's FU-A is lost
        for p in ps:
            f = asm.push(p)
            if f is not None:
                seen.append((i, f.keyframe))
                colours = decode([f], decoder)
                assert len(colours) == 1 and np.abs(colours[0] - COLOURS[i]).max() < 20
        if i in (1, 2, 3):
            assert asm.need_keyframe
    assert seen == [(0, True), (4, True), (5, False)]
    assert asm.dropped == 3 and asm.frames == 3


def test_a_whole_lost_frame_is_noticed_at_the_next_one():
    frames = h264_frames(4)
    pk = Packetizer()
    per_frame = [pk.h264(d, i * 3000) for i, (d, _) in enumerate(frames)]
    got = assemble(per_frame[0] + per_frame[2] + per_frame[3])
    assert [f.timestamp for f in got] == [0]


def test_an_idr_without_parameter_sets_gets_the_last_ones():
    frames = h264_frames(3, keys=(0, 2))
    pk, asm = Packetizer(), H264Assembler()
    assemble(pk.h264(frames[0][0], 0) + pk.h264(frames[1][0], 3000), asm)
    bare_idr = b"".join(b"\0\0\0\1" + n for n in split_annexb(frames[2][0]) if n[0] & 0x1F not in (7, 8))
    (frame,) = assemble(pk.h264(bare_idr, 6000), asm)
    assert frame.keyframe and [n[0] & 0x1F for n in split_annexb(frame.payload)][:2] == [7, 8]
    (colour,) = decode([frame])  # a fresh decoder: the parameter sets are in the frame
    assert np.abs(colour - COLOURS[2]).max() < 20


def test_mode0_single_nal_units_only():
    frames = h264_frames(4, keys=(0, 2), slice_max=1000)
    pk = Packetizer()
    packets = [p for i, (d, _) in enumerate(frames) for p in pk.h264(d, i * 3000, mode=0)]
    assert {nal_kinds(p) for p in packets} <= {1, 5, 6, 7, 8}
    got = assemble(packets)
    assert [f.keyframe for f in got] == [True, False, True, False]
    for i, c in enumerate(decode(got)):
        assert np.abs(c - COLOURS[i]).max() < 20
    with pytest.raises(ValueError, match="mode 0"):
        Packetizer().h264(h264_frames(1)[0][0], 0, mode=0)  # one slice per picture: too big


def test_a_sender_without_marker_bits_ends_frames_at_the_timestamp():
    frames = h264_frames(4)
    pk = Packetizer()
    packets = [bytes((p[0], p[1] & 0x7F)) + p[2:] for i, (d, _) in enumerate(frames) for p in pk.h264(d, i * 3000)]
    got = assemble(packets)
    assert [f.timestamp for f in got] == [0, 3000, 6000]  # the last one waits for a next timestamp
    assert len(decode(got)) == 3


def test_garbage_never_raises_nor_grows():
    rng = random.Random(7)
    asm = H264Assembler()
    pk = Packetizer()
    pk.seq = 20000  # the good frame follows the garbage without a gap
    good = pk.h264(h264_frames(1)[0][0], 0)
    for i in range(20000):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        ts = (1 + i // 50).to_bytes(4, "big")
        head = bytes((0x80, rng.choice((0x60, 0xE0)))) + i.to_bytes(2, "big") + ts + bytes(4)
        frame = asm.push(head + body)
        assert frame is None or len(frame.payload) < 400 * 1500
    assert asm._packets <= 401
    assert [f.keyframe for f in assemble(good, asm)] == [True]  # it recovers on a key frame
