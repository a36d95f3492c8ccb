"""Two and more real WebSocket clients in one meeting: join, participants, hands, floor, mutes."""

from __future__ import annotations

import pytest

from tests.support.harness import WsClient

pytestmark = pytest.mark.integration


def pick(node):
    d = node.ctx.directory
    district = d.get("hg-meo-vac")
    communes = [ep.id for ep in d.select(["tier:commune@hg-meo-vac"])]
    return district.id, communes


async def test_two_clients_join_and_see_each_other(node):
    district, communes = pick(node)
    meeting = await node.schedule(chair=district, invited=["tree:hg-meo-vac"])
    chair = await WsClient.connect(node, await node.endpoint_token(district))
    commune = await WsClient.connect(node, await node.endpoint_token(communes[0]))
    try:
        welcome = await chair.expect("welcome")
        assert welcome["identity"]["id"] == district
        opened = await chair.expect("meeting_opened")  # already open: early-join window
        assert opened["meeting_id"] == meeting["id"]
        await commune.expect("welcome")

        await chair.send("join", meeting_id=meeting["id"])
        joined = await chair.expect("joined")
        assert joined["role"] == "chair" and joined["title"] == "Giao ban thử nghiệm"
        await commune.send("join", meeting_id=meeting["id"])
        joined2 = await commune.expect("joined")
        assert joined2["role"] == "participant"
        assert joined2["occurrence_id"] == joined["occurrence_id"]

        # the chair learns that the commune came in, with its Vietnamese name
        names = {}
        while communes[0] not in names:
            update = await chair.expect("participants")
            names = {p["endpoint_id"]: p["name"] for p in update["participants"]}
        assert names[communes[0]] == node.ctx.directory.get(communes[0]).name
        assert set(names) == {district, communes[0]}

        # attendance records the join
        status, record = await node.call(
            "GET", f"/api/v1/meetings/{meeting['id']}/occurrences/{joined['occurrence_id']}/attendance"
        )
        assert status == 200, record
        assert communes[0] in str(record) and district in str(record)
    finally:
        await chair.close()
        await commune.close()


async def test_raise_hand_floor_and_mute(node):
    district, communes = pick(node)
    meeting = await node.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
    chair = await WsClient.connect(node, await node.endpoint_token(district))
    a = await WsClient.connect(node, await node.endpoint_token(communes[0]))
    b = await WsClient.connect(node, await node.endpoint_token(communes[1]))
    try:
        for c in (chair, a, b):
            await c.send("join", meeting_id=meeting["id"])
            await c.expect("joined")

        await a.send("raise_hand")
        hand = await chair.expect("hand", endpoint_id=communes[0])
        assert hand["raised"] is True and hand["hands"] == [communes[0]]

        # a commune cannot do chair actions; nothing changes
        ref = await b.send("grant_floor", endpoint_id=communes[1])
        err = await b.expect("error", ref=ref)
        assert err["code"] == "forbidden" and "chair action" in err["message"]

        await chair.send("grant_floor", endpoint_id=communes[0])
        floor = await b.expect("floor")
        assert floor["endpoint_id"] == communes[0] and floor["hands"] == []
        status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
        assert live["floor"] == communes[0] and len(live["participants"]) == 3

        await chair.send("mute", endpoint_id=communes[1], kind="audio", muted=True)
        req = await b.expect("mute_request")
        assert req["muted"] is True and req["kind"] == "audio" and req["endpoint_id"] == communes[1]
        await a.send("ping")
        await a.expect("pong")
        assert not [m for m in a.received if m["type"] == "mute_request"]  # only the target hears it

        await a.send("leave")
        await a.expect("left")
        update = await chair.expect("participants")
        while communes[0] in {p["endpoint_id"] for p in update["participants"]}:
            update = await chair.expect("participants")
    finally:
        for c in (chair, a, b):
            await c.close()


async def test_reconnect_replaces_old_session(node):
    district, communes = pick(node)
    token = await node.endpoint_token(communes[2])
    first = await WsClient.connect(node, token)
    await first.expect("welcome")
    second = await WsClient.connect(node, token)
    await second.expect("welcome")
    code, _ = await first.closed()
    assert code == 4409
    status, presence = await node.call("GET", "/api/v1/presence")
    online = {p["endpoint_id"]: p for p in presence["online"]}
    assert communes[2] in online
    async with node.http.get(node.url + "/metrics") as resp:
        assert "giaoban_endpoints_online 1.0" in await resp.text()
    await second.close()
    await first.close()


async def test_lock_and_remove(node):
    district, communes = pick(node)
    meeting = await node.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
    chair = await WsClient.connect(node, await node.endpoint_token(district))
    a = await WsClient.connect(node, await node.endpoint_token(communes[0]))
    late = await WsClient.connect(node, await node.endpoint_token(communes[1]))
    try:
        for c in (chair, a):
            await c.send("join", meeting_id=meeting["id"])
            await c.expect("joined")
        ref = await a.send("remove", endpoint_id=district)
        assert (await a.expect("error", ref=ref))["code"] == "forbidden"

        await chair.send("remove", endpoint_id=communes[0])
        removed = await a.expect("removed")
        assert removed["endpoint_id"] == communes[0]
        left = await a.expect("left")
        assert "removed" in left["reason"]
        ref = await a.send("join", meeting_id=meeting["id"])  # an auto-joining terminal cannot come back
        assert "removed" in (await a.expect("error", ref=ref))["message"]

        await chair.send("lock", locked=True)
        assert (await chair.expect("locked"))["locked"] is True
        ref = await late.send("join", meeting_id=meeting["id"])
        assert "locked" in (await late.expect("error", ref=ref))["message"]
        await chair.send("lock", locked=False)
        await chair.expect("locked", locked=False)
        await late.send("join", meeting_id=meeting["id"])
        await late.expect("joined")
    finally:
        for c in (chair, a, late):
            await c.close()


async def test_chair_sets_layout_participant_cannot(node):
    district, communes = pick(node)
    meeting = await node.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
    chair = await WsClient.connect(node, await node.endpoint_token(district))
    a = await WsClient.connect(node, await node.endpoint_token(communes[0]))
    try:
        for c in (chair, a):
            await c.send("join", meeting_id=meeting["id"])
            assert (await c.expect("joined"))["layout"] == "speaker_strip"
        await chair.send("layout", layout="grid_3x3")
        assert (await a.expect("layout"))["layout"] == "grid_3x3"
        ref = await a.send("layout", layout="speaker")
        assert (await a.expect("error", ref=ref))["code"] == "forbidden"
        ref = await chair.send("layout", layout="grid_5x5")
        err = await chair.expect("error", ref=ref)
        assert "grid_5x5" in err["message"] or "layout" in err["message"]
        status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
        assert live["layout"] == "grid_3x3"
    finally:
        await chair.close()
        await a.close()
