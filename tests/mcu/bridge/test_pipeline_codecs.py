"""McuPipeline in both codecs, without a network: a VP8 and an H.264 publisher stream in, the
composite's rendition streams out in VP8 and H.264, read back through the depacketizers and
decoded; composite outputs routed by the codec their subscriber decodes."""

import asyncio
import logging
from dataclasses import dataclass, field

import av
import numpy as np

from mcu.api import PeerSpec
from mcu.bridge.depacketize import H264Assembler, Vp8Assembler
from mcu.bridge.packetize import Packetizer
from mcu.bridge.pipeline import McuPipeline
from mcu.compose.testsrc import encode_clip
from mcu.sfu.router import Router
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output

RED, BLUE = (220, 40, 40), (40, 60, 220)


@dataclass
class Peer:
    endpoint_id: str
    spec: PeerSpec
    closed: bool = False
    outputs: dict[str, Output] = field(default_factory=dict)


def composite_subscriber(ep: str, codec: str, also: tuple[str, ...] = ()) -> tuple[Peer, Output]:
    """A thin-link subscriber whose composite line decodes ``codec`` (and ``also``)."""
    pts = {c: (96 + i, None) for i, c in enumerate((codec, *also)) if c}
    out = Output(
        endpoint_id=ep,
        kind="video",
        role="composite",
        ssrc=1000 + len(ep),
        payload_type=96,
        clock_rate=90000,
        codec=codec,
        payload_types=pts,
    )
    peer = Peer(ep, PeerSpec("m", ep, ep, "participant", "thin", True, {}))
    peer.outputs["composite"] = out
    return peer, out


def source_of(out: Output) -> str | None:
    return out.source.stream_id if out.source is not None else None


async def test_outputs_get_the_rendition_in_their_codec_and_keep_it_when_switching():
    pipe = McuPipeline(Router())
    try:
        subs = {ep: composite_subscriber(ep, codec) for ep, codec in (("v", "VP8"), ("h", "H264"), ("any", ""))}
        for peer, out in subs.values():
            pipe.attach(peer, out, now=0.0)
        assert {ep: source_of(out) for ep, (_, out) in subs.items()} == {
            "v": "mcu:360p",
            "h": "mcu:h264:360p",
            "any": "mcu:360p",
        }
        assert pipe.compositor._active == {"360p", "h264:360p"}  # only renditions with outputs are encoded
        h = subs["h"][1]
        h.fraction_lost = 100  # a loaded thin link: down one rendition, in the same codec
        for now in (3.5, 4.6):
            pipe.tick(now)
        assert source_of(h) == "mcu:h264:180p" and pipe.rendition_of("h") == "180p"
        assert pipe.compositor._active == {"360p", "h264:180p"}
    finally:
        await pipe.stop()


async def test_a_codec_the_node_may_not_encode_gets_nothing_and_is_logged_once(caplog):
    pipe = McuPipeline(Router(), codecs=("VP8",))
    try:
        assert list(pipe.rendition_streams) == ["720p", "360p", "180p"]
        caplog.set_level(logging.WARNING, "mcu.bridge.pipeline")
        for ep in ("h1", "h2"):
            pipe.attach(*composite_subscriber(ep, "H264"))
        assert [r.getMessage() for r in caplog.records] == [
            "no composite for h1: it decodes H264, this node encodes only ['VP8'] (logged once per codec)"
        ]
        assert not pipe.subs and pipe.compositor._active == frozenset()
        peer, both = composite_subscriber("b", "H264", also=("VP8",))  # its line takes VP8 too
        pipe.attach(peer, both)
        assert source_of(both) == "mcu:360p" and both.pt == 97  # VP8's payload type on that line
    finally:
        await pipe.stop()


def decoded(codec: str, frames: list) -> list[np.ndarray]:
    ctx = av.CodecContext.create(codec, "r")
    return [p.to_ndarray(format="rgb24") for f in frames for p in ctx.decode(av.Packet(f.payload))]


def tile_colour(picture: np.ndarray, col: int) -> np.ndarray:
    """Mean colour of the upper middle of a 2x2 grid's top tile (labels sit at the bottom)."""
    h, w = picture.shape[:2]
    return picture[h // 16 : h // 4, col * w // 2 + w // 16 : (col + 1) * w // 2 - w // 16].reshape(-1, 3).mean(0)


async def test_vp8_and_h264_publishers_in_the_composite_in_both_codecs():
    pipe = McuPipeline(Router(), workers=1)
    publishers = {}
    for ep, codec, colour in (("v", "VP8", RED), ("h", "H264", BLUE)):
        stream = Stream(
            stream_id=f"{ep}:cam", endpoint_id=ep, kind="video", source="camera", codec=codec, clock_rate=90000
        )
        clip = encode_clip(colour, 320, 180, 6, codec=codec.lower(), pattern=False)
        packetize = Packetizer().vp8 if codec == "VP8" else Packetizer().h264
        publishers[ep] = (stream, [packetize(data, i * 3000) for i, (data, _) in enumerate(clip)])
    got: dict[str, list] = {"360p": [], "h264:360p": []}
    kinds: set[int] = set()  # H.264 payload types: single NAL units only (packetization mode 0)
    pipe.rendition_streams["h264:360p"].add_tap(lambda p: kinds.add(p[12] & 0x1F))
    for name, assembler in (("360p", Vp8Assembler()), ("h264:360p", H264Assembler())):
        pipe.rendition_streams[name].add_tap(lambda p, a=assembler, n=name: got[n].append(a.push(p)))
    try:
        pipe.refresh([s for s, _ in publishers.values()], [], [], [], {"v": "V", "h": "H"})
        assert sorted(tap.codec for tap in pipe.taps.values()) == ["h264", "vp8"]
        for ep, codec in (("v", "VP8"), ("h", "H264")):
            pipe.attach(*composite_subscriber(ep, codec))
        for i in range(6):
            for stream, frames in publishers.values():
                for packet in frames[i]:
                    stream.on_rtp(packet)
            await pipe.compositor.compose_once()
        for name, codec in (("360p", "vp8"), ("h264:360p", "h264")):
            frames = [f for f in got[name] if f is not None]
            assert len(frames) == 6 and frames[0].keyframe and not any(f.keyframe for f in frames[1:])
            picture = decoded(codec, frames)[-1]
            assert picture.shape == (360, 640, 3)
            assert np.abs(tile_colour(picture, 0) - RED).max() < 30, (name, tile_colour(picture, 0))
            assert np.abs(tile_colour(picture, 1) - BLUE).max() < 30, (name, tile_colour(picture, 1))
        assert kinds == {1, 5, 6, 7, 8}  # slices, SEI, SPS, PPS: no STAP-A or FU-A
        # a PLI of the H.264 subscribers: an IDR through the rendition's merged, rate-limited gate
        await asyncio.sleep(0.55)  # the gate's interval since the first key frame
        got["h264:360p"].clear()
        pipe.rendition_streams["h264:360p"].request_keyframe()
        await pipe.compositor.compose_once()
        (idr,) = [f for f in got["h264:360p"] if f is not None]
        assert idr.keyframe and b"\x00\x00\x00\x01\x65" in idr.payload  # an IDR slice (NAL type 5)
        assert pipe.compositor.keyframe_stats("360p")["requests"] == 0  # VP8 untouched
    finally:
        await pipe.stop()
