"""H.264 forwarding (packetization-mode 1, key frames from SPS/IDR) with real aiortc peers."""

import pytest

from mcu.node import LocalMediaNode
from tests.support.media_clients import Client, PatternTrack, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def h264_node():
    n = LocalMediaNode(ice_host="127.0.0.1")
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


async def test_h264_frames_arrive_and_decode(h264_node):
    node = h264_node
    a = Client(node, "m", "a", video=PatternTrack(180), recv_video=False, recv_audio=False)
    s = Client(node, "m", "s", publish=False, recv_audio=False)
    for client in (a, s):
        client.spec.extra["video_codecs"] = ["H264"]  # the meeting's one codec: both lines answer H.264 only
    try:
        await a.join()
        await s.join()
        assert "H264" in s.pc.remoteDescription.sdp
        assert await wait_for(lambda: len(s.video_frames()) >= 8, timeout=15)
        assert all(abs(x - 180) < 30 for _, x in s.video_frames()[-3:])
        stream = next(iter(node.meetings["m"].peers["a"].streams.values()))
        assert stream.codec == "H264" and stream.keyframes >= 1
    finally:
        await s.close()
        await a.close()
