"""Room-terminal agents in a cluster: kill -9 of their signaling node (they move to the next
server in their list) and of the meeting's media node (media_reset, new peer on the survivor)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.agents import make_agent
from tests.support.cluster import cluster_view, running_cluster
from tests.support.waiting import until

pytestmark = pytest.mark.integration


async def test_agents_come_back_after_their_signaling_node_and_media_node_die(tmp_path, redis_url):
    nodes = {"sig-2": ("none", []), "media-1": ("local", []), "media-2": ("local", [])}
    async with running_cluster(tmp_path, redis_url, nodes) as (sig, procs):
        await kill_under_agents(sig, procs, tmp_path)


async def kill_under_agents(sig, procs, tmp_path) -> None:
    agents = []
    try:
        commune = sig.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
        meeting = await sig.schedule(chair="hg-meo-vac", invited=["tier:commune@hg-meo-vac"], minutes_from_now=2)
        servers = f"http://127.0.0.1:{procs['sig-2'][1]}, {sig.url}"  # sig-2 first: both start there
        agents = [await make_agent(sig, tmp_path, ep, server=servers) for ep in ("hg-meo-vac", commune)]
        chair, room = agents
        await until(
            lambda: room.peer is not None and room.peer.frames_received("video") > 10,
            20,
            what="the commune receives the district's video",
        )
        assert all(a.conn.server.endswith(str(procs["sig-2"][1])) for a in agents)

        # 1. the signaling node both terminals use dies: they reconnect to sig-1 and rejoin
        killed = time.monotonic()
        procs["sig-2"][0].send_signal(signal.SIGKILL)
        await until(
            lambda: (
                all(a.conn.server == sig.url for a in agents)
                and room.peer is not None
                and room.peer.frames_received("video") > 10
            ),
            10,
            what="video again through sig-1",
        )
        back_signaling = time.monotonic() - killed

        # 2. the meeting's media node dies: media_reset, a new peer on the other media node
        pinned = (await cluster_view(sig))["pins"][meeting["id"]]["node"]
        old_peer = room.peer
        killed = time.monotonic()
        procs[pinned][0].send_signal(signal.SIGKILL)
        await until(
            lambda: room.peer is not None and room.peer is not old_peer and room.peer.frames_received("video") > 10,
            10,
            what="video again from the surviving media node",
        )
        back_media = time.monotonic() - killed
        assert (await cluster_view(sig))["pins"][meeting["id"]]["node"] != pinned
        print(
            f"agents back: {back_signaling:.2f} s after kill -9 of their signaling node, "
            f"{back_media:.2f} s after kill -9 of the media node"
        )
    finally:
        for agent in agents:
            await agent.stop()
