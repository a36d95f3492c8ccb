"""The origin goes away: edge peers are told to reconnect and closed; nothing leaks."""

import asyncio

import pytest

from mcu.api import MediaError
from tests.mcu.cascade.helpers import edge_client
from tests.support.media_clients import Client, PatternTrack, ToneTrack, wait_for
from mcu.cascade.trunk import CascadeTrunk

pytestmark = pytest.mark.integration

RESET = {"type": "media_reset", "reason": "cascade link to origin lost"}


async def test_origin_loss_resets_edge_peers(nodes):
    origin, edge = nodes
    chair = Client(origin, "m", "chair", video=PatternTrack(200), audio=ToneTrack(), recv_video=False, recv_audio=False)
    subs = [
        edge_client(edge, "m", f"commune-{i}", publish=i == 0, video=PatternTrack(60) if i == 0 else None)
        for i in range(3)
    ]
    try:
        await chair.join()
        for s in subs:
            await s.join()
        assert await wait_for(lambda: all(len(s.video_frames()) >= 5 for s in subs), 15)
        trunk = edge.meetings["m"].extension(CascadeTrunk)
        peers = [s.peer for s in subs]
        await origin.stop()  # the origin node is gone (its side of the trunk closes)

        assert await wait_for(lambda: all(RESET in s.events for s in subs), 15)
        assert await wait_for(lambda: all(p.closed for p in peers), 5)
        assert await wait_for(lambda: not edge.peers and not edge.meetings, 5)
        assert await wait_for(lambda: trunk._task.done(), 5)
        assert trunk.closed and trunk.lost == RESET["reason"]
        assert trunk.pc.connectionState == "closed"
        assert not trunk.transport.outputs and not trunk.transport.by_ssrc
        assert all(s.closed for s in trunk.lines.streams.values())
        assert all(o.closed for o in trunk.lines.outputs.values())
        assert not [
            t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "").startswith("CascadeTrunk")
        ]
        # a client that got media_reset opens a new peer: a fresh trunk is tried (and fails
        # again while no origin is there), no stale trunk is reused
        again = edge_client(edge, "m", "commune-0", publish=False)
        try:
            await again.join()
        except MediaError:  # the reset may close it while its offer is still being answered
            pass
        assert await wait_for(lambda: RESET in again.events, 15)
        assert await wait_for(lambda: not edge.peers and not edge.meetings, 5)
        await again.close()
    finally:
        for c in subs + [chair]:
            await c.close()


async def test_last_local_peer_leaving_closes_the_trunk(nodes):
    origin, edge = nodes
    chair = Client(origin, "m", "chair", video=PatternTrack(200), recv_video=False, recv_audio=False)
    sub = edge_client(edge, "m", "commune-1", publish=False, recv_audio=False)
    try:
        await chair.join()
        await sub.join()
        assert await wait_for(lambda: len(sub.video_frames()) >= 5, 15)
        trunk = edge.meetings["m"].extension(CascadeTrunk)
        assert len(origin.meetings["m"].peers) == 2
        await sub.close()
        assert await wait_for(lambda: trunk.closed and trunk._task.done(), 5)
        assert not edge.meetings and not edge.peers
        assert await wait_for(lambda: list(origin.meetings["m"].peers) == ["chair"], 5)
        assert RESET not in sub.events  # a normal close tells nobody to reconnect
    finally:
        await sub.close()
        await chair.close()
