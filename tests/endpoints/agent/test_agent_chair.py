"""The chair's mute requests reach the terminal; the room's raise-hand button reaches the chair."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.agents import make_agent
from tests.support.waiting import until
from tests.endpoints.agent.test_agent_join import DISTRICT, communes
from tests.support.harness import WsClient

pytestmark = pytest.mark.integration


async def get_status(agent) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(agent.control.url + "/status") as resp:
            assert resp.status == 200
            return await resp.json()


async def post(agent, path: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(agent.control.url + path) as resp:
            return resp.status, await resp.json()


async def test_chair_mute_request_is_applied(mnode, tmp_path):
    a_id = communes(mnode)[0]
    meeting = await mnode.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"])
    chair = await WsClient.connect(mnode, await mnode.endpoint_token(DISTRICT))
    agent = await make_agent(mnode, tmp_path, a_id)
    try:
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await until(lambda: agent.peer is not None and agent.peer.connected_at is not None, 10, what="media up")
        assert (await get_status(agent))["muted"] == {"audio": False, "video": False}

        await chair.send("mute", endpoint_id=a_id, kind="audio", muted=True)
        await until(lambda: agent.muted["audio"], 5, what="mute applied")
        status = await get_status(agent)
        assert status["muted"] == {"audio": True, "video": False}
        assert agent.peer.sources.audio.muted is True and agent.peer.sources.video.muted is False  # sends silence
        log = (tmp_path / a_id / "agent.log").read_text(encoding="utf-8")
        assert "đã tắt micrô của điểm cầu (audio muted by the chair)" in log

        # the floor goes to the terminal: the server clears its mute, the terminal speaks again
        await chair.send("grant_floor", endpoint_id=a_id)
        await until(lambda: not agent.muted["audio"], 5, what="unmuted with the floor")
        assert agent.peer.sources.audio.muted is False

        await chair.send("mute", endpoint_id=a_id, kind="video", muted=True)
        await until(lambda: agent.muted["video"] and agent.peer.sources.video.muted, 5, what="camera muted")
        assert (await get_status(agent))["muted"] == {"audio": False, "video": True}
        assert "(video muted by the chair)" in (tmp_path / a_id / "agent.log").read_text(encoding="utf-8")
    finally:
        await agent.stop()
        await chair.close()


async def test_raise_hand_from_the_control_api_reaches_the_chair(node, tmp_path):
    """Signaling only (media: none): the terminal joins without media and still asks for the floor."""
    a_id = communes(node)[1]
    agent = await make_agent(node, tmp_path, a_id)
    chair = None
    try:
        await until(lambda: agent.conn.connected, 5, what="connected")
        status, body = await post(agent, "/raise-hand")
        assert status == 409 and "chưa vào cuộc họp" in body["message"]  # not in a meeting yet

        meeting = await node.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"], minutes_from_now=1)
        chair = await WsClient.connect(node, await node.endpoint_token(DISTRICT))
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await until(lambda: agent.meeting is not None, 5, what="agent joined")
        assert agent.peer is None  # no media node on this server

        status, body = await post(agent, "/raise-hand")
        assert status == 200 and body["ok"] is True
        hand = await chair.expect("hand", endpoint_id=a_id)
        assert hand["raised"] is True and hand["hands"] == [a_id]
        await until(lambda: agent.status()["hand_raised"], 5, what="status shows the raised hand")

        await chair.send("grant_floor", endpoint_id=a_id)
        await until(lambda: agent.status()["has_floor"], 5, what="floor shown")
        st = await get_status(agent)
        assert st["floor"] == a_id and st["hand_raised"] is False

        await chair.send("revoke_floor")
        await until(lambda: agent.floor is None, 5, what="floor revoked")
        status, _ = await post(agent, "/raise-hand")
        assert status == 200
        await chair.expect("hand", endpoint_id=a_id, raised=True)
        status, _ = await post(agent, "/lower-hand")
        assert status == 200
        lowered = await chair.expect("hand", endpoint_id=a_id, raised=False)
        assert lowered["hands"] == []
        log = (tmp_path / a_id / "agent.log").read_text(encoding="utf-8")
        assert "Đã giơ tay xin phát biểu (hand raised)" in log and "(floor granted)" in log
    finally:
        await agent.stop()
        if chair is not None:
            await chair.close()


async def test_chair_unmute_request_is_applied(node, tmp_path):
    a_id = communes(node)[2]
    meeting = await node.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"])
    chair = await WsClient.connect(node, await node.endpoint_token(DISTRICT))
    agent = await make_agent(node, tmp_path, a_id)
    try:
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await until(lambda: agent.meeting is not None, 5, what="joined")
        await chair.send("mute", endpoint_id=a_id, kind="audio", muted=True)
        await until(lambda: agent.muted["audio"], 5, what="muted")
        await chair.send("mute", endpoint_id=a_id, kind="audio", muted=False)
        await until(lambda: not agent.muted["audio"], 1.5, what="unmuted by the chair")
        assert "(audio unmuted by the chair)" in (tmp_path / a_id / "agent.log").read_text(encoding="utf-8")
    finally:
        await agent.stop()
        await chair.close()
