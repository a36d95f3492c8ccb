"""The composite in the codec each subscriber decodes (real aiortc peers on 127.0.0.1): one meeting
with a VP8 and an H.264 publisher, an H.264-only and a VP8-only MCU subscriber."""

import asyncio
import time
from typing import Any

import pytest

from mcu.sfu import rtp_header as rh
from tests.mcu.bridge.helpers import MixClient, tile_mean
from tests.support.media_clients import PatternTrack, wait_for

pytestmark = pytest.mark.integration


def video_codecs_accepted(client: MixClient) -> set[str]:
    """The video codecs (RTX aside) of the client's own last offer or answer: what it decodes."""
    sdp = client.pc.localDescription.sdp
    video = sdp[sdp.index("m=video") :].split("\nm=")[0]
    return {line.split()[1].split("/")[0].upper() for line in video.splitlines() if line.startswith("a=rtpmap:")} - {
        "RTX"
    }


def spy_keyframes(client: MixClient, track: Any) -> list[tuple[float, int]]:
    """(arrival, SSRC) of each received packet that starts an H.264 key frame (SPS or IDR)."""
    seen: list[tuple[float, int]] = []
    receiver = next(t.receiver for t in client.pc.getTransceivers() if t.receiver.track is track)
    original = receiver._handle_rtp_packet

    async def spy(packet: Any, arrival_time_ms: int) -> None:
        if rh.h264_keyframe_parts(packet.payload, 0, len(packet.payload)):
            seen.append((time.monotonic(), packet.ssrc))
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = spy
    return seen


async def test_h264_and_vp8_subscribers_each_decode_the_composite_of_vp8_and_h264_publishers(local_media_node):
    node = local_media_node
    common: dict[str, Any] = {"recv_video": False, "recv_audio": False}
    a = MixClient(node, "m", "a", video=PatternTrack(40), video_codecs=["VP8"], **common)
    b = MixClient(node, "m", "b", video=PatternTrack(210), video_codecs=["H264"], **common)
    h = MixClient(node, "m", "h", link="thin", video_codecs=["H264"], recv_audio=False)
    v = MixClient(node, "m", "v", link="thin", video_codecs=["VP8"], recv_audio=False)
    clients = (a, b, h, v)
    try:
        for c in clients:
            await c.join()
        meeting = node.meetings["m"]
        assert [s.codec for s in meeting.peers["a"].streams.values()] == ["VP8"]
        assert [s.codec for s in meeting.peers["b"].streams.values()] == ["H264"]
        assert video_codecs_accepted(h) == {"H264"} and video_codecs_accepted(v) == {"VP8"}
        for c in (h, v):
            assert await wait_for(lambda c=c: c.track("composite") is not None and len(c.video_frames()) >= 10, 15)
        outs = {c.spec.endpoint_id: meeting.peers[c.spec.endpoint_id].outputs for c in (h, v)}
        sources = {ep: [o.source.stream_id for o in o_.values() if o.role == "composite"] for ep, o_ in outs.items()}
        assert sources == {"h": ["mcu:h264:360p"], "v": ["mcu:360p"]}  # thin links start at 360p
        for c in (h, v):  # both publishers on screen: a's tile, then b's
            track = c.track("composite")
            assert c.sizes[track.id] == (640, 360)
            assert await wait_for(
                lambda c=c, t=track: (
                    abs(tile_mean(c.picture(t), 0, 0) - 40) < 25 and abs(tile_mean(c.picture(t), 1, 0) - 210) < 25
                ),
                10,
            ), (c.spec.endpoint_id, tile_mean(c.picture(track), 0, 0), tile_mean(c.picture(track), 1, 0))
        frames_out = meeting.stats()["mcu"]["frames_out"]
        assert frames_out["360p"] > 10 and frames_out["h264:360p"] > 10
        assert not {"720p", "h264:720p", "180p", "h264:180p"} & set(frames_out)  # only renditions in use

        # the H.264 subscriber loses the picture: its PLI brings an IDR of its rendition
        keyframes = spy_keyframes(h, h.track("composite"))
        assert await wait_for(lambda: len(h.video_frames()) >= 30, 10)
        await asyncio.sleep(0.6)  # past the rendition's key-frame interval
        forced = node.meetings["m"].mcu.compositor.keyframe_stats("h264:360p")["forced"]
        ssrc = next(o.ssrc for o in outs["h"].values() if o.role == "composite")
        receiver = next(t.receiver for t in h.pc.getTransceivers() if t.receiver.track is h.track("composite"))
        t_pli = time.monotonic()
        await receiver._send_rtcp_pli(ssrc)
        assert await wait_for(lambda: any(t > t_pli for t, _ in keyframes), 3), keyframes
        assert node.meetings["m"].mcu.compositor.keyframe_stats("h264:360p")["forced"] >= forced + 1
        n = len(h.video_frames())
        assert await wait_for(lambda: len(h.video_frames()) >= n + 5, 5)  # and it still decodes
    finally:
        for c in reversed(clients):
            await c.close()
