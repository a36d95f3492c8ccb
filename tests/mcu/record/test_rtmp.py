"""RtmpPusher: FLV with H.264 + AAC (checked through a local file), and a refused server."""

from __future__ import annotations

import time

from mcu.record.rtmp import RtmpPusher, parameter_sets

from tests.mcu.record.media import BLUE, assert_colour, clip, decode_all, feed, peak_hz


async def test_push_writes_playable_flv(tmp_path):
    out = tmp_path / "push.flv"
    pusher = RtmpPusher(str(out))
    await pusher.start()
    feed(pusher, 3.0, codec="h264", rgb=BLUE)
    stats = await pusher.stop()
    assert await pusher.stop() == stats and stats["connects"] == 1 and stats["failures"] == 0
    video, pcm, _ = decode_all(out)
    assert abs(len(video) / 30 - 3.0) <= 0.2 and abs(pcm.size / 48000 - 3.0) <= 0.3
    assert_colour(video[-1], BLUE)
    assert abs(peak_hz(pcm) - 440) <= 5


async def test_refused_server_is_retried_without_blocking(tmp_path):
    asked = []
    pusher = RtmpPusher("rtmp://127.0.0.1:1/live/key", request_keyframe=lambda: asked.append(1), retry_s=0.2)
    await pusher.start()
    t0 = time.monotonic()
    feed(pusher, 1.0, codec="h264")
    assert time.monotonic() - t0 < 0.5  # pushing never waits for the network
    stats = await pusher.stop()
    assert stats["failures"] >= 1 and stats["sent"] <= 1 and stats["last_error"]


def test_parameter_sets_are_sps_and_pps():
    key = clip("h264")[0][0]
    ps = parameter_sets(key)
    assert [n[0] & 0x1F for n in ps.split(b"\x00\x00\x00\x01")[1:]] == [7, 8]
