"""One copy over the cascade trunk, whatever the number of edge subscribers."""

import asyncio

import pytest

from tests.mcu.cascade.helpers import cascade_peers, edge_client, received_down, sent_down
from tests.support.media_clients import Client, PatternTrack, ToneTrack, wait_for
from mcu.cascade.trunk import CascadeTrunk

pytestmark = pytest.mark.integration

CHAIR_SHADE = 200
WINDOW = 3.0  # s of traffic counted per phase


def shows_chair(client) -> bool:
    return len([f for f in client.video_frames() if abs(f[1] - CHAIR_SHADE) < 30]) >= 5


async def count_window(origin, edge) -> tuple[int, int]:
    sent0, recv0 = sent_down(origin, "m"), received_down(edge, "m")
    await asyncio.sleep(WINDOW)
    return sent_down(origin, "m") - sent0, received_down(edge, "m") - recv0


async def test_edge_subscribers_share_one_copy_over_the_trunk(nodes):
    origin, edge = nodes
    chair = Client(
        origin, "m", "chair", video=PatternTrack(CHAIR_SHADE), audio=ToneTrack(), recv_video=False, recv_audio=False
    )
    subs = [edge_client(edge, "m", f"commune-{i}", publish=False) for i in range(5)]
    try:
        await chair.join()
        await origin.set_floor("m", "chair")
        await subs[0].join()
        await edge.set_floor("m", "chair")
        assert await wait_for(lambda: shows_chair(subs[0]), 15)
        one = await count_window(origin, edge)

        for sub in subs[1:]:
            await sub.join()
        assert await wait_for(lambda: all(shows_chair(s) for s in subs), 15)
        five = await count_window(origin, edge)

        print(f"origin->edge packets in {WINDOW}s: 1 sub {one}, 5 subs {five}")
        assert len(cascade_peers(origin, "m")) == 1
        assert edge.asked == [{"node_id": "origin", "url": "http://127.0.0.1:1/unused"}]
        assert len(origin.meetings["m"].peers) == 2  # the chair and the one cascade peer
        assert one[0] > 50 and one[1] > 50
        # the trunk carries one copy: five subscribers cost the trunk what one did
        assert 0.75 < five[0] / one[0] < 1.33, (one, five)
        assert 0.75 < five[1] / one[1] < 1.33, (one, five)
        # the edge fans out locally: every subscriber's main is fed by the trunk's stream
        trunk = edge.meetings["m"].extension(CascadeTrunk)
        mains = [o for p in edge.meetings["m"].peers.values() for o in p.outputs.values() if o.role == "main"]
        assert len(mains) == 5 and all(o.source in trunk.lines.streams.values() for o in mains)
    finally:
        for c in subs + [chair]:
            await c.close()
