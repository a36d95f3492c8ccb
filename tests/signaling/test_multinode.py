"""Scheduler notifications and two signaling nodes sharing one real Redis."""

from __future__ import annotations

import pytest

from tests.support.cluster import flush
from tests.support.harness import WsClient, start_node

pytestmark = pytest.mark.integration


async def test_scheduler_notifies_online_invited_endpoints(node):
    district = "hg-meo-vac"
    invited = node.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
    outsider = node.ctx.directory.select(["tier:commune@hg-dong-van"])[0].id
    inside = await WsClient.connect(node, await node.endpoint_token(invited))
    outside = await WsClient.connect(node, await node.endpoint_token(outsider))
    try:
        await inside.expect("welcome")
        await outside.expect("welcome")
        meeting = await node.schedule(chair=district, invited=["tier:commune@hg-meo-vac"], minutes_from_now=2)
        opened = await inside.expect("meeting_opened", timeout=5)  # the scheduler ticks every second
        assert opened["meeting_id"] == meeting["id"] and opened["title"] == meeting["title"]
        assert "invited" not in opened  # the invitation list stays on the server
        await outside.send("ping")
        await outside.expect("pong")
        assert not [m for m in outside.received if m["type"] == "meeting_opened"]
    finally:
        await inside.close()
        await outside.close()


@pytest.fixture
async def two_nodes(tmp_path, redis_url):
    await flush(redis_url)  # the Redis server is shared by the test session
    a = await start_node(tmp_path / "a", store=redis_url, node_id="node-a")
    b = await start_node(tmp_path / "b", store=redis_url, node_id="node-b")
    yield a, b
    await a.stop()
    await b.stop()


async def test_clients_on_two_nodes_share_one_meeting(two_nodes):
    a, b = two_nodes
    chair_id, commune_id = "hg-dong-van", a.ctx.directory.select(["tier:commune@hg-dong-van"])[0].id
    meeting = await a.schedule(chair=chair_id, invited=["tree:hg-dong-van"])
    # b sees the meeting a scheduled, and accepts a's secrets and tokens
    status, got = await b.call("GET", f"/api/v1/meetings/{meeting['id']}", token=a.operator_token)
    assert status == 200 and got["title"] == meeting["title"]
    chair = await WsClient.connect(a, await a.endpoint_token(chair_id))
    b.secrets = a.secrets
    commune = await WsClient.connect(b, await a.endpoint_token(commune_id))
    try:
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await commune.send("join", meeting_id=meeting["id"])
        joined = await commune.expect("joined")
        assert {p["endpoint_id"] for p in joined["participants"]} == {chair_id, commune_id}
        await commune.send("raise_hand")
        hand = await chair.expect("hand", endpoint_id=commune_id)  # crossed nodes through Redis pub/sub
        assert hand["raised"] is True
        await chair.send("grant_floor", endpoint_id=commune_id)
        floor = await commune.expect("floor")
        assert floor["endpoint_id"] == commune_id
        status, presence = await a.call("GET", "/api/v1/presence")
        assert status == 200
        nodes = {p["endpoint_id"]: p["node"] for p in presence["online"]}
        assert nodes[chair_id] == a.ctx.settings.node_id and nodes[commune_id] == b.ctx.settings.node_id
    finally:
        await chair.close()
        await commune.close()


async def test_operators_on_any_node_see_endpoints_come_and_go(two_nodes):
    a, b = two_nodes
    console = await WsClient.connect(a, a.operator_token)
    await console.expect("welcome")
    b.secrets = a.secrets
    room = await WsClient.connect(b, await a.endpoint_token("hg-bq-viet-quang"))
    try:
        came = await console.expect("presence", online=True)
        assert came["node"] == "node-b"
        endpoint = came["endpoint_id"]
        await room.close()
        went = await console.expect("presence", online=False)
        assert went["endpoint_id"] == endpoint
    finally:
        await console.close()


async def test_a_terminal_that_moves_to_another_node_is_not_in_the_meeting_twice(two_nodes):
    a, b = two_nodes
    commune = a.ctx.directory.select(["tier:commune@hg-dong-van"])[0].id
    meeting = await a.schedule(chair="hg-dong-van", invited=["tree:hg-dong-van"])
    token = await a.endpoint_token(commune)
    first = await WsClient.connect(a, token)
    second = None
    try:
        await first.expect("welcome")
        await first.send("join", meeting_id=meeting["id"])
        await first.expect("joined")
        second = await WsClient.connect(b, token)  # the same terminal, now through node b
        await second.expect("welcome")
        code, reason = await first.closed(timeout=5)
        assert code == 4409 and b.ctx.settings.node_id in reason
        await second.send("join", meeting_id=meeting["id"])
        joined = await second.expect("joined")
        assert [p["endpoint_id"] for p in joined["participants"]] == [commune]
    finally:
        await first.close()
        if second is not None:
            await second.close()
