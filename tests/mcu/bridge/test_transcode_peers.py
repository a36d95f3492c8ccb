"""Every source in a codec each subscriber accepts (issue #13), with real aiortc peers on 127.0.0.1
and the media node's shared transcodes: what the subscribers decode, and how many transcodes run."""

from __future__ import annotations

import fractions
import math
from typing import Any

import numpy as np
import pytest
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack
from av import VideoFrame

from endpoints.agent.sources import Paced
from mcu.bridge.transcode import TranscodePool
from tests.support.media_clients import VIDEO_RATE, Client
from tests.support.waiting import until

pytestmark = pytest.mark.integration

RED, BLUE = (200, 40, 40), (40, 40, 200)
TOLERANCE = 40  # per channel: two lossy codecs and their colour conversions in a row


class ColourTrack(MediaStreamTrack):
    """A camera of one colour (a small moving mark in the top rows, so frames differ)."""

    kind = "video"

    def __init__(self, colour: tuple[int, int, int], width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.colour, self.width, self.height = colour, width, height
        self.fps = fps
        self.pace = Paced(1 / fps, resync_after=math.inf)

    async def recv(self) -> VideoFrame:
        n = await self.pace.next()
        img = np.empty((self.height, self.width, 3), np.uint8)
        img[:] = self.colour
        img[:8, (n * 4) % self.width :][:, :8] = 255
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = n * (VIDEO_RATE // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        return frame


class CodecClient(Client):
    """A client whose video lines (its own and those the node offers later) take only ``codec``,
    as a browser with codec preferences, or a device that decodes nothing else."""

    def __init__(self, *args: Any, codec: str, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.codec = codec
        add, set_remote = self.pc.addTransceiver, self.pc.setRemoteDescription

        def add_with_codec(*a: Any, **k: Any) -> Any:
            transceiver = add(*a, **k)
            self._restrict()
            return transceiver

        async def set_remote_then_restrict(description: Any) -> None:
            await set_remote(description)
            self._restrict()  # before our answer: the node's new lines get the one codec too

        self.pc.addTransceiver = add_with_codec  # type: ignore[method-assign]
        self.pc.setRemoteDescription = set_remote_then_restrict  # type: ignore[method-assign]

    def _restrict(self) -> None:
        codecs = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in (f"video/{self.codec.lower()}", "video/rtx")
        ]
        for t in self.pc.getTransceivers():
            if t.kind == "video":
                t.setCodecPreferences(codecs)

    def summary(self, frame: Any) -> tuple:
        """(arrival time, mean colour below the mark)."""
        rgb = frame.to_ndarray(format="rgb24")[16:, :, :]
        return 0.0, tuple(int(c) for c in rgb.reshape(-1, 3).mean(axis=0))

    def colours(self) -> list[tuple[int, ...]]:
        return [f[1] for f in self.video_frames()]


def near(colour: tuple[int, ...], wanted: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= TOLERANCE for a, b in zip(colour, wanted))


def pool_of(node: Any, meeting: str) -> TranscodePool:
    pool = node.meetings[meeting].extension(TranscodePool)
    assert pool is not None
    return pool


def main_output(node: Any, meeting: str, endpoint: str) -> Any:
    return next(o for o in node.meetings[meeting].peers[endpoint].outputs.values() if o.role == "main")


async def test_vp8_publisher_three_h264_only_subscribers_share_one_transcode(local_media_node):
    node = local_media_node
    pub = CodecClient(node, "m", "pub", codec="VP8", video=ColourTrack(RED), recv_video=False, recv_audio=False)
    h264 = [CodecClient(node, "m", f"h{i}", codec="H264", publish=False, recv_audio=False) for i in range(3)]
    vp8 = CodecClient(node, "m", "v", codec="VP8", publish=False, recv_audio=False)
    clients = [pub, *h264, vp8]
    try:
        for c in clients:
            await c.join()
        for c in [*h264, vp8]:
            await until(lambda c=c: len(c.colours()) >= 10, 20, what=f"{c.spec.endpoint_id} decodes frames")
        for c in [*h264, vp8]:
            assert all(near(x, RED) for x in c.colours()[-5:]), (c.spec.endpoint_id, c.colours()[-5:])
        source = node.meetings["m"].peers["pub"].streams
        (camera,) = [s for s in source.values() if s.kind == "video"]
        assert main_output(node, "m", "v").source is camera  # forwarded untouched: no transcode for it
        converted = {id(main_output(node, "m", c.spec.endpoint_id).source) for c in h264}
        assert len(converted) == 1  # the three share one converted stream
        stats = pool_of(node, "m").stats()
        assert stats["started"] == 1
        (xc,) = stats["transcodes"]
        assert xc["source"] == camera.stream_id and list(xc["targets"]) == ["H264"]
        assert xc["targets"]["H264"]["outputs"] == 3
        print(
            f"\ntranscode VP8->H264 320x240: decode {xc['decode_ms_per_frame']} ms, "
            f"encode {xc['targets']['H264']['encode_ms_per_frame']} ms per frame"
        )

        pool = pool_of(node, "m")
        pool.grace = 0.3  # the node's ticker reaps it (5 s in production)
        for c in h264:
            await c.close()
        await until(lambda: not pool.transcoders, 10, what="the transcode stops after the last H.264 subscriber")
        assert len(vp8.colours()) >= 10
    finally:
        for c in clients:
            await c.close()


async def test_h264_publisher_to_a_vp8_only_subscriber(local_media_node):
    node = local_media_node
    pub = CodecClient(node, "m", "pub", codec="H264", video=ColourTrack(BLUE), recv_video=False, recv_audio=False)
    vp8 = CodecClient(node, "m", "v", codec="VP8", publish=False, recv_audio=False)
    h264 = CodecClient(node, "m", "h", codec="H264", publish=False, recv_audio=False)
    clients = [pub, vp8, h264]
    try:
        for c in clients:
            await c.join()
        for c in (vp8, h264):
            await until(lambda c=c: len(c.colours()) >= 10, 20, what=f"{c.spec.endpoint_id} decodes frames")
            assert all(near(x, BLUE) for x in c.colours()[-5:]), (c.spec.endpoint_id, c.colours()[-5:])
        (camera,) = [s for s in node.meetings["m"].peers["pub"].streams.values() if s.kind == "video"]
        assert camera.codec == "H264"
        assert main_output(node, "m", "h").source is camera
        assert main_output(node, "m", "v").source.origin is camera
        (xc,) = pool_of(node, "m").stats()["transcodes"]
        assert list(xc["targets"]) == ["VP8"]
    finally:
        for c in clients:
            await c.close()
