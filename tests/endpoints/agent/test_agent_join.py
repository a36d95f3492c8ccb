"""The terminal joins by itself when the scheduler opens a meeting it is invited to."""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests.support.agents import make_agent
from tests.support.waiting import until, until_async

pytestmark = pytest.mark.integration

DISTRICT = "hg-meo-vac"


def communes(node) -> list[str]:
    return [ep.id for ep in node.ctx.directory.select(["tier:commune@hg-meo-vac"])]


async def live_ids(node, meeting_id: str) -> set[str]:
    status, live = await node.call("GET", f"/api/v1/meetings/{meeting_id}/live")
    assert status == 200, live
    return {p["endpoint_id"] for p in live.get("participants", [])}


async def test_joins_by_itself_when_meeting_opens_and_media_flows(mnode, tmp_path):
    commune = communes(mnode)[0]
    agent = await make_agent(mnode, tmp_path, commune)
    try:
        await until(lambda: agent.conn.connected, 5, what="agent connected")
        assert agent.meeting is None
        # the operator schedules a meeting starting in 2 minutes: inside the early-join window,
        # so the scheduler opens it on its next pass and the terminal walks in by itself
        t0 = time.monotonic()
        meeting = await mnode.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"], minutes_from_now=2)
        took = await until_async(lambda: _has(mnode, meeting["id"], commune), 5, what="agent in /live")
        print(
            f"\njoin after scheduling: {time.monotonic() - t0:.2f} s; after meeting_opened: "
            f"{agent.timings['join_after_open_s']}"
        )
        assert took < 3.0
        assert agent.meeting and agent.meeting["id"] == meeting["id"] and agent.meeting["role"] == "participant"

        # media: connected, the media node receives the terminal's camera and microphone
        await until(lambda: agent.peer is not None and agent.peer.connected_at is not None, 10, what="media connected")
        await until(
            lambda: _server_packets(mnode, commune)["video"] > 20 and _server_packets(mnode, commune)["audio"] > 20,
            10,
            what="media node receives video and audio",
        )

        # the room's screen sees it all on the local control API
        async with aiohttp.ClientSession() as http:
            async with http.get(agent.control.url + "/status") as resp:
                status = await resp.json()
        assert status["connected"] is True and status["meeting"]["id"] == meeting["id"]
        assert status["media"]["state"] == "connected" and status["media"]["sent_frames"]["video"] > 0
        log = (tmp_path / commune / "agent.log").read_text(encoding="utf-8")
        assert "Đã vào cuộc họp Giao ban thử nghiệm (joined)" in log and f"meeting={meeting['id']}" in log
    finally:
        await agent.stop()


async def _has(node, meeting_id: str, endpoint: str) -> bool:
    return endpoint in await live_ids(node, meeting_id)


def _server_packets(node, endpoint: str) -> dict[str, int]:
    out = {"video": 0, "audio": 0}
    for meeting in node.ctx.media.stats()["meetings"]:
        for peer in meeting["peers"]:
            if peer["endpoint"] == endpoint:
                for s in peer["streams"]:
                    out[s["kind"]] = out.get(s["kind"], 0) + s["packets"]
    return out
