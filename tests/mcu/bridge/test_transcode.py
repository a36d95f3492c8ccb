"""The shared transcodes (mcu.bridge.transcode, transcoder) and the router's codec hook, with real
PyAV codecs and synthetic RTP: a publisher encodes coloured pictures and packetizes them into a
Stream; what a converted stream would send its outputs is depacketized and decoded here, and its
colours compared with the publisher's."""

from __future__ import annotations

import asyncio
import logging
import threading
from fractions import Fraction

import av
import numpy as np
import pytest

from mcu.bridge.depacketize import H264Assembler, Vp8Assembler
from mcu.bridge.packetize import Packetizer
from mcu.bridge.transcode import TranscodeBudget, TranscodePool
from mcu.sfu.router import Router
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output
from tests.support.waiting import until

RED = (200, 40, 40)
BLUE = (30, 60, 210)
ENCODER = {"VP8": "libvpx", "H264": "libx264"}
DECODER = {"VP8": "vp8", "H264": "h264"}


class Publisher:
    """A camera as the node receives it: coloured pictures, encoded and packetized into ``stream``;
    a key frame on the stream's (merged) request, as a browser answers a PLI."""

    def __init__(self, codec: str, colour: tuple[int, int, int] = RED, width: int = 320, height: int = 240) -> None:
        self.codec, self.colour = codec, colour
        self.stream = Stream(
            stream_id=f"pub-{codec}",
            endpoint_id="ep-pub",
            kind="video",
            source="camera",
            codec=codec,
            clock_rate=90000,
            send_keyframe_request=self._keyframe_asked,
            keyframe_interval=0.05,
        )
        self.stream.ssrc = 1234
        self.resize(width, height)
        self.packetizer = Packetizer()
        self.n = 0
        self.key_asked = 0
        self._force = False

    def resize(self, width: int, height: int) -> None:
        """A new encoder of another size (a browser adapting to its CPU or bandwidth)."""
        ctx = av.CodecContext.create(ENCODER[self.codec], "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = Fraction(1, 30)
        ctx.bit_rate = 600_000
        ctx.gop_size = 1000  # key frames on request only
        ctx.options = (
            {"deadline": "realtime", "lag-in-frames": "0"}
            if self.codec == "VP8"
            else {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
        )
        self.ctx = ctx

    def _keyframe_asked(self, stream: Stream) -> None:
        self.key_asked += 1
        self._force = True

    def packets(self) -> list[bytes]:
        img = np.empty((self.ctx.height, self.ctx.width, 3), np.uint8)
        img[:] = self.colour
        img[:8, (self.n * 4) % self.ctx.width :][:, :8] = 255  # a small moving mark
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = self.n
        frame.pict_type = av.video.frame.PictureType.I if self._force else av.video.frame.PictureType.NONE
        self._force = False
        ts = self.n * 3000
        self.n += 1
        out: list[bytes] = []
        for p in self.ctx.encode(frame):
            data = bytes(p)
            out += self.packetizer.vp8(data, ts) if self.codec == "VP8" else self.packetizer.h264(data, ts)
        return [p[:8] + (1234).to_bytes(4, "big") + p[12:] for p in out]  # the publisher's SSRC

    def burst(self, frames: int) -> None:
        """Frames encoded first, then handed to the stream at once, as after a stall."""
        for packets in [self.packets() for _ in range(frames)]:
            for p in packets:
                self.stream.on_rtp(p)

    async def send(self, frames: int) -> None:
        for _ in range(frames):
            for p in self.packets():
                self.stream.on_rtp(p)
            await asyncio.sleep(0.01)


class Viewer:
    """What a converted stream hands its outputs, decoded: mean colour (below the mark) per frame."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.assembler = H264Assembler() if stream.codec == "H264" else Vp8Assembler()
        self.decoder = av.CodecContext.create(DECODER[stream.codec], "r")
        self.colours: list[tuple[int, ...]] = []
        self.sizes: list[tuple[int, int]] = []
        self.keyframes = 0
        stream.add_tap(self)

    def __call__(self, data: bytes) -> None:
        frame = self.assembler.push(data)
        if frame is None:
            return
        self.keyframes += frame.keyframe
        for picture in self.decoder.decode(av.Packet(frame.payload)):
            self.sizes.append((picture.width, picture.height))
            rgb = picture.to_ndarray(format="rgb24")[16:, :, :]
            self.colours.append(tuple(int(c) for c in rgb.reshape(-1, 3).mean(axis=0)))


def close_to(colour: tuple[int, ...], wanted: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, wanted))


def subscriber(codec: str, n: int = 0) -> Output:
    return Output(
        endpoint_id=f"sub-{codec}-{n}",
        kind="video",
        role="main",
        ssrc=5000 + n,
        payload_type=102,
        clock_rate=90000,
        codec=codec,
    )


@pytest.fixture
async def pool():
    p = TranscodePool()
    yield p
    await p.stop()


@pytest.mark.parametrize(("source_codec", "target_codec"), [("VP8", "H264"), ("H264", "VP8")])
async def test_three_subscribers_share_one_transcode_with_the_publishers_colours(pool, source_codec, target_codec):
    pub = Publisher(source_codec)
    router = Router(convert=pool.convert)
    outs = [subscriber(target_codec, i) for i in range(3)]
    for out in outs:
        assert router.route(out, pub.stream)
    converted = outs[0].source
    assert all(o.source is converted for o in outs)  # one stream for all three
    assert converted.codec == target_codec and converted.origin is pub.stream
    assert converted.endpoint_id == pub.stream.endpoint_id and converted.source == "camera"
    viewer = Viewer(converted)

    await pub.send(30)
    await until(lambda: len(viewer.colours) >= 10, what="converted frames decoded")

    assert all(close_to(c, RED) for c in viewer.colours), viewer.colours[:3]
    assert viewer.keyframes >= 1
    stats = pool.stats()
    assert stats["started"] == 1 and len(stats["transcodes"]) == 1
    (xc,) = stats["transcodes"]
    assert xc["source"] == pub.stream.stream_id and list(xc["targets"]) == [target_codec]
    assert xc["decoded"] >= 10 and xc["targets"][target_codec]["frames_out"] >= 10
    assert xc["decode_ms_per_frame"] > 0 and xc["targets"][target_codec]["encode_ms_per_frame"] > 0
    assert xc["targets"][target_codec]["outputs"] == 3


async def test_an_accepted_codec_is_forwarded_untouched_beside_a_transcode(pool):
    pub = Publisher("VP8")
    router = Router(convert=pool.convert)
    same, other = subscriber("VP8", 1), subscriber("H264", 2)
    router.route(same, pub.stream)
    router.route(other, pub.stream)
    assert same.source is pub.stream  # the publisher's own packets, no transcode for it
    assert other.source is not pub.stream and other.source.origin is pub.stream
    assert [list(x["targets"]) for x in pool.stats()["transcodes"]] == [["H264"]]
    anything = Output(endpoint_id="x", kind="video", role="main", ssrc=1, payload_type=96, clock_rate=90000)
    router.route(anything, pub.stream)
    assert anything.source is pub.stream  # "" decodes whatever comes


async def test_routing_again_keeps_the_converted_stream(pool):
    pub = Publisher("VP8")
    router = Router(convert=pool.convert)
    out = subscriber("H264")
    assert router.route(out, pub.stream)
    converted = out.source
    assert not router.route(out, pub.stream)  # the same source: no switch
    assert out.source is converted


async def test_no_converter_or_a_codec_not_encoded_here_pauses_the_output(pool):
    pub = Publisher("VP8")
    out = subscriber("H264")
    assert not Router().route(out, pub.stream)
    assert out.source is None  # an H.264-only subscriber never gets VP8 it cannot decode
    vp8_only = TranscodePool(encode_codecs=("VP8",))
    Router(convert=vp8_only.convert).route(out, pub.stream)
    assert out.source is None and not vp8_only.transcoders
    await vp8_only.stop()


async def test_a_pli_on_the_converted_stream_makes_a_key_frame_of_its_encoder(pool):
    pub = Publisher("VP8")
    out = subscriber("H264")
    Router(convert=pool.convert).route(out, pub.stream)
    viewer = Viewer(out.source)
    await pub.send(15)
    await until(lambda: viewer.keyframes >= 1 and len(viewer.colours) >= 5, what="first frames")
    first_keys, publisher_keys = viewer.keyframes, pub.key_asked
    await asyncio.sleep(0.4)  # past the merge window of the first key frame
    for _ in range(5):  # a burst of PLIs: one key frame now, the rest merged into one at the window's end
        out.source.request_keyframe()
    await pub.send(25)
    await until(lambda: viewer.keyframes > first_keys, what="a forced key frame")
    assert viewer.keyframes <= first_keys + 2
    assert pub.key_asked == publisher_keys  # the encoder answered it, not the publisher


async def test_the_transcode_stops_a_grace_after_its_last_subscriber_and_frees_its_thread(pool):
    pub = Publisher("VP8")
    router = Router(convert=pool.convert)
    outs = [subscriber("H264", i) for i in range(2)]
    for out in outs:
        router.route(out, pub.stream)
    await pub.send(5)
    xc = pool.transcoders[pub.stream.stream_id]
    converted = outs[0].source
    router.route(outs[0], None)
    pool.reap(100.0)
    pool.reap(200.0)
    assert pool.transcoders  # one subscriber is left
    router.release(outs[1])
    pool.reap(300.0)
    pool.reap(304.0)
    assert pool.transcoders  # inside the grace: a switch back would find it running
    assert router.route(outs[0], pub.stream) and outs[0].source is converted
    router.route(outs[0], None)
    pool.reap(310.0)
    pool.reap(315.0)
    assert not pool.transcoders and converted.closed
    await until(lambda: not xc._thread.is_alive(), what="the transcode's thread ended")
    assert pub.stream.tap is None  # untapped: the publisher's packets cost it nothing more
    assert not [t for t in threading.enumerate() if t.name.startswith("transcode ")]


async def test_a_closed_source_closes_its_transcodes(pool):
    pub = Publisher("H264")
    router = Router(convert=pool.convert)
    router.add_stream(pub.stream)
    out = subscriber("VP8")
    router.route(out, pub.stream)
    converted = out.source
    router.remove_stream(pub.stream.stream_id)
    assert router.route(out, pub.stream) is True and out.source is None  # nothing to convert now
    pool.reap(1.0)
    assert not pool.transcoders and converted.closed


async def test_a_muted_source_gives_its_transcode_nothing(pool):
    pub = Publisher("VP8")
    out = subscriber("H264")
    Router(convert=pool.convert).route(out, pub.stream)
    viewer = Viewer(out.source)
    pub.stream.set_muted(True)
    await pub.send(10)
    await asyncio.sleep(0.2)
    assert viewer.colours == [] and pool.stats()["transcodes"][0]["frames_in"] == 0


async def test_a_colour_change_comes_through_and_the_stream_stays_one(pool):
    pub = Publisher("H264", colour=RED)
    out = subscriber("VP8")
    Router(convert=pool.convert).route(out, pub.stream)
    viewer = Viewer(out.source)
    await pub.send(10)
    pub.colour = BLUE
    await pub.send(20)
    await until(lambda: viewer.colours and close_to(viewer.colours[-1], BLUE), what="blue arrives")
    assert any(close_to(c, RED) for c in viewer.colours)


async def test_a_publisher_changing_its_size_is_transcoded_at_the_new_size(pool):
    pub = Publisher("VP8", width=320, height=240)
    out = subscriber("H264")
    Router(convert=pool.convert).route(out, pub.stream)
    viewer = Viewer(out.source)
    await pub.send(10)
    await until(lambda: (320, 240) in viewer.sizes, what="the first size")
    pub.resize(160, 120)  # starts with a key frame
    await pub.send(15)
    await until(lambda: viewer.sizes[-1] == (160, 120), what="the new size")
    assert all(close_to(c, RED) for c in viewer.colours)
    assert len(pool.transcoders) == 1


async def test_a_transcode_behind_drops_to_the_next_key_frame_and_recovers(pool):
    pub = Publisher("H264")
    out = subscriber("VP8")
    Router(convert=pool.convert).route(out, pub.stream)
    viewer = Viewer(out.source)
    await pub.send(3)
    await asyncio.sleep(0.1)  # past the stream's merge window of the first request
    asked = pub.key_asked
    pub.burst(60)  # far more than the queue holds, faster than any decoder
    xc = pool.stats()["transcodes"][0]
    assert xc["dropped"] > 0 and pub.key_asked > asked  # resumes at a key frame asked for
    pub.colour = BLUE
    await pub.send(20)
    await until(lambda: viewer.colours and close_to(viewer.colours[-1], BLUE), what="frames after the drop")
    assert viewer.assembler.dropped == 0  # what the subscribers got stayed decodable


async def test_a_target_whose_encoder_fails_is_dropped_after_one_log_line(pool, monkeypatch, caplog):
    from mcu.bridge import transcoder

    monkeypatch.setitem(transcoder.ENCODERS, "H264", "h265")  # an encoder that cannot open (unknown codec)
    pub = Publisher("VP8")
    out = subscriber("H264")
    Router(convert=pool.convert).route(out, pub.stream)
    converted = out.source
    with caplog.at_level(logging.DEBUG, logger="mcu.bridge"):
        await pub.send(30)  # 30 frames: formerly 30 tracebacks
        await until(lambda: converted.closed, what="the failed target dropped")
        await pub.send(10)
    xc = pool.transcoders[pub.stream.stream_id]
    assert out.source is None and not xc.targets  # its subscriber paused; the next convert retries
    lines = [r for r in caplog.records if r.name.startswith("mcu.bridge")]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR
    text = lines[0].getMessage()
    assert "H264" in text and "320x240" in text and "h265" in text and not lines[0].exc_info


async def test_a_codec_the_node_may_not_encode_is_said_once_per_codec_and_counted(caplog):
    vp8_only = TranscodePool(encode_codecs=("VP8",), meeting_id="m-13")
    router = Router(convert=vp8_only.convert)
    publishers = [Publisher("VP8"), Publisher("VP8")]
    publishers[1].stream.endpoint_id = "ep-pub-2"
    with caplog.at_level(logging.WARNING, logger="mcu.bridge.transcode"):
        for i, pub in enumerate(publishers):
            for n in range(3):
                out = subscriber("H264", 10 * i + n)
                router.route(out, pub.stream)
                assert out.source is None  # paused: the node may not encode H.264
    assert [r.getMessage() for r in caplog.records] == [
        "meeting m-13: subscribers that decode only H264 get no video from ep-pub (VP8) nor any other "
        "publisher of another codec: this node may not encode H264 (setting encode_codecs = VP8)"
    ]
    assert vp8_only.stats()["not_encodable"] == {"H264": 6} and not vp8_only.transcoders
    await vp8_only.stop()


async def test_the_node_budget_caps_transcoded_sources_over_its_meetings_and_frees_a_slot_when_one_ends(caplog):
    """Two meetings share one budget of 1: the second source gets no transcode (None, logged once,
    counted) until the first one's transcode ends."""
    budget = TranscodeBudget(1)
    first, second = TranscodePool(budget=budget, meeting_id="m1"), TranscodePool(budget=budget, meeting_id="m2")
    a, b = Publisher("VP8").stream, Publisher("VP8").stream
    try:
        assert first.convert(a, "H264") is not None
        with caplog.at_level(logging.WARNING, logger="mcu.bridge.transcode"):
            assert second.convert(b, "H264") is None
            assert second.convert(b, "H264") is None
        assert second.stats()["over_budget"] == 2
        assert [r.getMessage() for r in caplog.records if "transcodes_per_node" in r.getMessage()] == [
            f"meeting m2: {b.endpoint_id} (VP8) is not transcoded to H264: this node runs 1 transcodes already "
            "(limits.transcodes_per_node); its subscribers of H264 get no video from it"
        ]
        a.close()
        first.reap(0.0)  # the source closed: its transcode ends and gives its slot back
        assert budget.used == 0 and second.convert(b, "H264") is not None and budget.used == 1
    finally:
        await first.stop()
        await second.stop()
