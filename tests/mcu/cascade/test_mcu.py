"""MCU-mode edge subscribers get the origin's composite and mix over the trunk: the edge
composes nothing itself."""

import asyncio
import time

import pytest

from mcu.cascade.lines import REMB_CAPS
from mcu.cascade.trunk import CascadeTrunk
from tests.mcu.cascade.helpers import cascade_peers, edge_client
from tests.support.media_clients import Client, PatternTrack, ToneTrack, wait_for

pytestmark = pytest.mark.integration

CHAIR_SHADE = 200


class PictureClient(Client):
    """Keeps each decoded picture's size and the mean of its centre."""

    def summary(self, frame) -> tuple:
        arr = frame.to_ndarray(format="rgb24")
        h, w = arr.shape[:2]
        return time.monotonic(), int(arr[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].mean()), w, h


async def test_mcu_subscriber_on_edge_gets_origin_composite(nodes, monkeypatch):
    # a clean link would move a composite subscriber up a rendition after UP_AFTER: not this one
    monkeypatch.setattr("mcu.bridge.rendition_policy.UP_AFTER", 1.0)
    monkeypatch.setattr("mcu.bridge.rendition_policy.HOLD", 0.5)
    origin, edge = nodes
    chair = Client(
        origin,
        "m",
        "chair",
        video=PatternTrack(CHAIR_SHADE, 320, 240),
        audio=ToneTrack(),
        recv_video=False,
        recv_audio=False,
    )
    sfu = edge_client(edge, "m", "xa-sfu", publish=False, recv_audio=False)
    thin = edge_client(edge, "m", "xa-thin", publish=False, extra={"media_mode": "mcu"})
    thin.__class__ = PictureClient
    try:
        await chair.join()
        await sfu.join()
        assert await wait_for(lambda: len(sfu.video_frames()) >= 5, 15)
        (cascade,) = cascade_peers(origin, "m")
        assert cascade.media_mode == "sfu" and origin.meetings["m"].mcu is None

        await thin.join()
        pictures = lambda: [f for f in thin.video_frames() if abs(f[1] - CHAIR_SHADE) < 40]
        assert await wait_for(lambda: len(pictures()) >= 10, 30)
        assert all((w, h) == (640, 360) for _, _, w, h in pictures())  # the 360p composite rendition
        audio = [t for t in thin.tracks if t.kind == "audio"]
        assert await wait_for(lambda: sum(len(thin.frames[t.id]) for t in audio) >= 50, 10)

        em, om = edge.meetings["m"], origin.meetings["m"]
        assert em.mcu is None  # no compositor, no mixer on the edge
        assert om.mcu is not None and cascade.media_mode == "both"
        composite = next(o for o in cascade.outputs.values() if o.role == "composite")
        assert await wait_for(lambda: composite.remb == REMB_CAPS["composite"], 5)
        await asyncio.sleep(2.0)
        assert om.mcu.rendition_of(cascade.endpoint_id) == "360p"  # the edge's REMB holds it
        trunk = em.extension(CascadeTrunk)
        outs = {o.role: o for o in em.peers["xa-thin"].outputs.values()}
        assert outs["composite"].source is trunk.lines.down("composite") and outs["composite"].live
        assert outs["mix"].source is trunk.lines.down("mix")
        assert len(cascade_peers(origin, "m")) == 1  # the same trunk, one more pair of lines
        # the SFU subscriber on the same edge still gets the forwarded camera
        n = len(sfu.video_frames())
        assert await wait_for(lambda: len(sfu.video_frames()) >= n + 10, 10)
    finally:
        for c in (thin, sfu, chair):
            await c.close()
