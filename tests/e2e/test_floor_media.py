"""Giving the floor to a muted room makes the media node forward its microphone again: signaling
clears the chair's mute of the floor holder and the terminal unmutes itself, so the SFU must too."""

from __future__ import annotations

import pytest

from tests.support.agents import make_agent
from tests.support.waiting import until
from tests.support.harness import WsClient

pytestmark = pytest.mark.integration

DISTRICT = "hg-meo-vac"


def _mic(node, endpoint_id: str):
    for peer in node.ctx.media.peers:
        if peer.endpoint_id == endpoint_id:
            for stream in peer.streams.values():
                if stream.kind == "audio":
                    return stream
    return None


async def test_floor_unmutes_the_holders_microphone_on_the_media_node(mnode, tmp_path):
    commune = mnode.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
    agent = await make_agent(mnode, tmp_path, commune, video="none")
    chair = await WsClient.connect(mnode, await mnode.endpoint_token(DISTRICT))
    try:
        meeting = await mnode.schedule(chair=DISTRICT, invited=[f"tree:{DISTRICT}"], minutes_from_now=0)
        await until(
            lambda: _mic(mnode, commune) is not None and _mic(mnode, commune).packets > 10, 10, what="mic arrives"
        )
        await chair.expect("welcome")
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await chair.send("mute_all", muted=True)
        await until(
            lambda: _mic(mnode, commune).muted and agent.muted["audio"], 5, what="muted at the node and the room"
        )
        await chair.send("grant_floor", endpoint_id=commune)
        await chair.expect("floor", endpoint_id=commune)
        await until(lambda: not _mic(mnode, commune).muted and not agent.muted["audio"], 5, what="floor unmutes")
        status, live = await mnode.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
        assert live["floor"] == commune and commune not in live["muted"]
    finally:
        await chair.close()
        await agent.stop()
