"""Key-frame requests of one rendition's subscribers are merged (real aiortc peers)."""

import asyncio

import pytest

from tests.support.media_clients import PatternTrack, wait_for
from tests.mcu.bridge.helpers import MixClient

pytestmark = pytest.mark.integration


async def test_plis_of_one_rendition_are_merged(local_media_node):
    a = MixClient(local_media_node, "m", "a", video=PatternTrack(90), recv_video=False, recv_audio=False)
    subs = [MixClient(local_media_node, "m", f"s{i}", link="thin", publish=False) for i in range(3)]
    try:
        await a.join()
        for s in subs:
            await s.join()
        assert await wait_for(
            lambda: all(s.track("composite") is not None and len(s.video_frames()) >= 5 for s in subs), 15
        )
        mcu = local_media_node.meetings["m"].mcu
        assert {mcu.rendition_of(s.spec.endpoint_id) for s in subs} == {"360p"}
        await asyncio.sleep(0.7)
        before = mcu.compositor.keyframe_stats("360p")["forced"]
        others = {t: mcu.compositor.keyframe_stats(t)["forced"] for t in ("720p", "180p")}
        for _ in range(10):  # a burst of PLIs from every subscriber of the rendition
            for s in subs:
                out = mcu.subs[s.spec.endpoint_id].out
                receiver = next(t.receiver for t in s.pc.getTransceivers() if t.receiver.track is s.track("composite"))
                await receiver._send_rtcp_pli(out.ssrc)
        await asyncio.sleep(1.0)
        forced = mcu.compositor.keyframe_stats("360p")["forced"] - before
        print(f"\n30 PLIs on the 360p rendition -> {forced} forced key frames")
        assert 1 <= forced <= 2
        assert local_media_node.meetings["m"].router.feedback_pli >= 30
        # the other renditions were not disturbed
        assert {t: mcu.compositor.keyframe_stats(t)["forced"] for t in others} == others
    finally:
        for c in subs + [a]:
            await c.close()
