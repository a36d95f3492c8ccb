"""Hostile video from a publisher, after SRTP, into the parts that decode it (#13): the shared
transcode (mcu.bridge.transcoder: an assembler on the loop, PyAV in a worker thread, an encoder per
target codec) and the MCU compositor (mcu.compose: a decoder per source in its pool). Real PyAV
codecs throughout; the packets go into a real ``Stream`` as the peer transport hands them over.

The hostile part is seeded and bounded (tests/fuzz/rtp_payloads.py): RTP payloads that break the
depacketizer (lying STAP-A sizes, FU-A without start, thousands of NAL units, random bytes), and
frames that pass it but not the decoder: a real key frame with bytes flipped in its SPS, PPS or
slices, cut short, or with NAL units dropped or repeated. Then a real key frame in another colour.
Invariants: nothing raises, no ERROR is logged, the worker thread lives, and what a subscriber
decodes is the new colour.
"""

from __future__ import annotations

import asyncio
import logging

import av
import numpy as np
import pytest
from hypothesis import strategies as st

from mcu.bridge.depacketize import H264Assembler
from mcu.bridge.packetize import Packetizer, split_annexb
from mcu.bridge.transcode import TranscodePool
from mcu.compose import Compositor, Layout, Rendition
from mcu.compose.testsrc import encode_clip
from mcu.sfu.router import Router
from tests.fuzz.rtp_payloads import Cursor, close_to, h264_payloads, sequences, vp8_payloads
from tests.fuzz.support import SCALE, draw, record
from tests.mcu.bridge.test_transcode import BLUE, RED, Publisher, Viewer, subscriber
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(120 * max(1, SCALE))
SEQUENCES, MANGLED = 60, 60  # per test: ~10 s each on a loaded core
PAYLOADS = {"H264": h264_payloads, "VP8": vp8_payloads}


@st.composite
def mangled(draw_: st.DrawFn, frame: bytes, codec: str) -> bytes:
    """A real key frame, broken where the decoder reads: flipped bytes (often in the first NAL
    units: SPS and PPS), cut short, NAL units dropped or repeated."""
    data = bytearray(frame)
    if codec == "H264" and draw_(st.booleans()):
        nals = split_annexb(frame)
        picked = draw_(st.lists(st.integers(0, len(nals) - 1), min_size=1, max_size=len(nals) + 2))
        data = bytearray(b"".join(b"\0\0\0\1" + nals[i] for i in picked))
    head = draw_(st.sampled_from([40, 200, len(data)]))
    for at, value in draw_(st.lists(st.tuples(st.integers(0, max(0, min(head, len(data)) - 1)), st.integers(1, 255)))):
        data[at] ^= value
    return bytes(data[: draw_(st.sampled_from([len(data), len(data) // 2, 30, 9]))])


def hostile_frames(codec: str) -> list[bytes]:
    key = encode_clip(RED, 160, 120, 1, codec=codec.lower(), pattern=False)[0][0]
    return draw(mangled(key, codec), MANGLED)


def errors(caplog) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(("source", "target"), [("H264", "VP8"), ("VP8", "H264")])
async def test_a_transcode_fed_hostile_video_keeps_running_and_shows_the_next_key_frame(caplog, source, target):
    caplog.set_level(logging.INFO)
    pool = TranscodePool()
    try:
        pub = Publisher(source, RED, 160, 120)
        out = subscriber(target)
        assert Router(convert=pool.convert).route(out, pub.stream)
        viewer = Viewer(out.source)
        await pub.send(10)
        await until(lambda: len(viewer.colours) >= 3, what="the transcode before the attack")
        (xc,) = pool.transcoders.values()

        cursor = Cursor(seq=(pub.packetizer.seq - 1) & 0xFFFF, ts=pub.n * 3000)
        for sequence in draw(sequences(PAYLOADS[source]), SEQUENCES):  # the depacketizer's turn
            record(f"rtp_{source.lower()}", sequence)
            for p in cursor.render(sequence):
                pub.stream.on_rtp(p)
            await asyncio.sleep(0)
        before = (xc.frames_in, xc.decoded)
        cursor.seq = pub.stream.hi_seq  # ahead of what the stream saw: nothing below counts as late
        packetizer = Packetizer()
        for frame in hostile_frames(source):  # the decoder's: frames that pass the depacketizer
            record(f"video_{source.lower()}", frame)
            packetizer.seq = (cursor.seq + 1) & 0xFFFF
            cursor.ts = (cursor.ts + 3000) & 0xFFFFFFFF
            packets = packetizer.vp8(frame, cursor.ts) if source == "VP8" else packetizer.h264(frame, cursor.ts)
            cursor.seq = (packetizer.seq - 1) & 0xFFFF
            for p in packets:
                pub.stream.on_rtp(p[:8] + (1234).to_bytes(4, "big") + p[12:])
            await asyncio.sleep(0.005)  # the worker thread decodes meanwhile (its queue is bounded)
        await asyncio.sleep(0.2)
        queued, decoded = xc.frames_in - before[0], xc.decoded - before[1]
        assert queued > MANGLED // 3 and decoded < queued, xc.stats()  # they reached the decoder, which refused some

        assert xc._thread.is_alive() and not xc.closed, "the transcode's thread died"
        pub.colour, pub.packetizer.seq = BLUE, (cursor.seq + 1) & 0xFFFF
        pub.n = cursor.ts // 3000 + 1
        pub._force = True  # a key frame, as the transcode asks for after garbage

        async def blue() -> bool:
            await pub.send(1)
            return bool(viewer.colours) and close_to(viewer.colours[-1], BLUE)

        for _ in range(60):
            if await blue():
                break
        assert close_to(viewer.colours[-1], BLUE), viewer.colours[-3:]
        assert xc._thread.is_alive() and xc.decoded > 10
        assert not errors(caplog), errors(caplog)[:3]
    finally:
        await pool.stop()


async def test_the_compositor_fed_hostile_h264_keeps_composing_and_shows_the_next_key_frame(caplog):
    caplog.set_level(logging.INFO)
    width, height = 320, 180
    comp = Compositor(Layout.SPEAKER, width, height, renditions=[Rendition("180p", 180, 300_000, codec="h264")])
    comp.set_sources(["a"])
    sub = comp.subscribe("180p")
    decoder = av.CodecContext.create("h264", "r")
    try:
        red, blue = (encode_clip(c, 160, 120, 2, codec="h264", pattern=False) for c in (RED, BLUE))
        comp.push("a", "h264", *red[0], 0)
        await comp.compose_once()
        assembler, cursor = H264Assembler(), Cursor()
        frames = hostile_frames("H264")
        for i, sequence in enumerate(draw(sequences(h264_payloads), SEQUENCES)):
            record("rtp_h264", sequence)
            for p in cursor.render(sequence):
                if (frame := assembler.push(p)) is not None:
                    comp.push("a", "h264", frame.payload, frame.keyframe, i)
            comp.push("a", "h264", frames[i % len(frames)], True, i)  # the assembler's key-frame flag
            await comp.compose_once()
            composites(sub, decoder)  # what a composite subscriber decodes, all along
        comp.push("a", "h264", *blue[0], 1000)
        comp.push("a", "h264", *blue[1], 1001)
        await comp.compose_once()
        pictures = composites(sub, decoder)
        tile = pictures[-1].to_ndarray(format="rgb24")[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]
        assert close_to(tile.reshape(-1, 3).mean(axis=0), BLUE), tile.reshape(-1, 3).mean(axis=0)
        assert comp._sources["a"].errors > 0  # the garbage did reach the decoder
        assert not errors(caplog), errors(caplog)[:3]
    finally:
        await comp.stop()


def composites(sub, decoder: av.CodecContext) -> list[av.VideoFrame]:
    pictures = []
    while not sub._queue.empty():
        item = sub._queue.get_nowait()
        if item is not None:
            pictures += decoder.decode(av.Packet(item.data))
    return pictures


def test_mangled_frames_are_distinct():
    assert len({f for f in hostile_frames("H264")}) > MANGLED // 2
    assert np.mean([len(f) for f in hostile_frames("VP8")]) > 9
