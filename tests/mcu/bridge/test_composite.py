"""A thin-link subscriber gets one composite picture and one N-1 audio mix (real aiortc peers)."""

import asyncio
import time

import numpy as np
import pytest

from tests.support.media_clients import PatternTrack, wait_for
from tests.mcu.bridge.helpers import MixClient, PitchTrack, tile_mean, tone_power

pytestmark = pytest.mark.integration


async def test_thin_subscriber_gets_composite_and_n_minus_1_mix(local_media_node):
    a = MixClient(
        local_media_node, "m", "a", video=PatternTrack(40), audio=PitchTrack(440), recv_video=False, recv_audio=False
    )
    b = MixClient(
        local_media_node, "m", "b", video=PatternTrack(210), audio=PitchTrack(660), recv_video=False, recv_audio=False
    )
    c = MixClient(local_media_node, "m", "c", link="thin", audio=PitchTrack(1000))
    try:
        await a.join()
        await b.join()
        await c.join()
        peer = local_media_node.meetings["m"].peers["c"]
        assert peer.media_mode == "mcu"
        assert sorted(o.role for o in peer.outputs.values()) == ["composite", "mix"]
        assert await wait_for(lambda: c.track("composite") is not None and len(c.video_frames()) >= 20, 15)
        video = c.track("composite")
        # the thin link starts on the 360p rendition: one 640x360 picture, a's tile then b's
        assert c.sizes[video.id] == (640, 360)
        pic = c.picture(video)
        assert abs(tile_mean(pic, 0, 0) - 40) < 25, tile_mean(pic, 0, 0)
        assert abs(tile_mean(pic, 1, 0) - 210) < 25, tile_mean(pic, 1, 0)
        assert local_media_node.meetings["m"].mcu.rendition_of("c") == "360p"
        # the floor holder takes the first tile; the chair may pick another layout
        await local_media_node.set_floor("m", "b")
        assert await wait_for(lambda: abs(tile_mean(c.picture(video), 0, 0) - 210) < 25, 5)
        assert abs(tile_mean(c.picture(video), 1, 0) - 40) < 25
        await local_media_node.set_layout("m", "speaker")
        assert await wait_for(lambda: abs(c.picture(video)[40:120, 200:440].mean() - 210) < 25, 5)
        await local_media_node.set_layout("m", None)
        # one mixed sound: the others' tones, not c's own voice
        mix = c.track("mix")
        assert mix is not None
        t0 = time.monotonic()
        assert await wait_for(lambda: len([x for x in c.pcm.get(mix.id, []) if x[0] > t0]) >= 50, 5)
        pcm = np.concatenate([x for t, x in c.pcm[mix.id] if t > t0][-50:])
        p440, p660, p1000 = (tone_power(pcm, hz) for hz in (440, 660, 1000))
        print(f"\nmix at c: 440 Hz {p440:.2f}, 660 Hz {p660:.2f}, own 1000 Hz {p1000:.4f}")
        assert p440 > 0.15 and p660 > 0.15
        assert p1000 < 0.01
        stats = local_media_node.meetings["m"].stats()["mcu"]
        assert stats["mix_listeners"] == 1 and "a" in stats["sources"]
        # only the rendition in use is encoded
        assert stats["frames_out"]["360p"] > 20 and "720p" not in stats["frames_out"]
    finally:
        for x in (c, b, a):
            await x.close()
    await asyncio.sleep(0)
    assert "m" not in local_media_node.meetings  # empty meeting forgotten; its pipeline stopped


async def test_fibre_default_is_sfu_and_both_adds_composite(local_media_node):
    a = MixClient(
        local_media_node, "m", "a", video=PatternTrack(90), audio=PitchTrack(440), recv_video=False, recv_audio=False
    )
    f = MixClient(local_media_node, "m", "f", link="fibre")
    g = MixClient(local_media_node, "m", "g", link="fibre", mode="both")
    try:
        await a.join()
        await f.join()
        assert local_media_node.meetings["m"].mcu is None  # no composite subscriber: no pipeline
        await g.join()
        assert await wait_for(
            lambda: (
                sorted(o.role for o in local_media_node.meetings["m"].peers["g"].outputs.values())
                == ["audio", "composite", "main", "mix"]
            ),
            10,
        )
        assert sorted(o.role for o in local_media_node.meetings["m"].peers["f"].outputs.values()) == ["audio", "main"]
        assert await wait_for(
            lambda: g.track("composite") is not None and len(g.frames[g.track("composite").id]) >= 5, 15
        )
        assert g.sizes[g.track("composite").id] == (1280, 720)
        assert await wait_for(lambda: len(g.frames[g.track("main").id]) >= 5, 5)
        # the last composite subscriber leaves: the pipeline stops, publishers are untapped
        meeting = local_media_node.meetings["m"]
        pipe = meeting.mcu
        await g.close()
        assert await wait_for(lambda: meeting.mcu is None and pipe.stopped and not meeting._tasks, 5)
        assert all(s.tap is None for s in meeting.peers["a"].streams.values())
        assert all(s.closed for s in pipe.rendition_streams.values())
        n = len(f.video_frames())
        assert await wait_for(lambda: len(f.video_frames()) >= n + 5, 5)  # SFU goes on
    finally:
        for x in (g, f, a):
            await x.close()
