"""Media through the whole server: endpoints join over WebSocket signaling, publish camera and
microphone to the in-process media node, and receive and decode each other's video."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tests.support.harness import VN, WsClient
from tests.support.media_clients import Client, PatternTrack, ToneTrack, WsPeerBridge, wait_for

pytestmark = pytest.mark.integration


async def test_two_endpoints_exchange_video_through_signaling(media_node):
    node = media_node
    district, commune = "hg-meo-vac", node.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
    meeting = await node.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
    clients = []
    for endpoint, shade in ((district, 220), (commune, 30)):
        ws = await WsClient.connect(node, await node.endpoint_token(endpoint))
        await ws.expect("welcome")
        client = Client(
            WsPeerBridge(ws, meeting["id"]), meeting["id"], endpoint, video=PatternTrack(shade), audio=ToneTrack()
        )
        await client.join()
        clients.append(client)
    chair, room = clients
    try:
        # each receives and decodes the other's picture (bright from the district, dark from the commune)
        assert await wait_for(lambda: len(room.video_frames()) >= 10, timeout=15), "commune got no video"
        assert await wait_for(lambda: len(chair.video_frames()) >= 10, timeout=15), "district got no video"
        assert sum(v for _, v in room.video_frames()[-5:]) / 5 > 150
        assert sum(v for _, v in chair.video_frames()[-5:]) / 5 < 100
        async with node.http.get(node.url + "/metrics") as resp:
            text = await resp.text()
        assert "giaoban_media_peers 2.0" in text and "giaoban_media_meetings 1.0" in text
        # the chair gives the commune the floor; the media node is told
        await chair.peer.ws.send("grant_floor", endpoint_id=commune)
        assert await wait_for(lambda: any(m["type"] == "floor" for m in room.peer.other), timeout=5)
    finally:
        for c in clients:
            await c.close()


async def test_meeting_media_modes_give_a_fibre_room_the_composite_too(media_node):
    node = media_node
    status, meeting = await node.call(
        "POST",
        "/api/v1/meetings",
        json={
            "title": "Giao ban có hình ghép",
            "chair": "hg-meo-vac",
            "invited": ["tier:commune@hg-meo-vac"],
            "start": (datetime.now(VN) + timedelta(minutes=1)).replace(microsecond=0).isoformat(),
            "duration_minutes": 60,
            "media_modes": {"fibre": "both"},
        },
    )
    assert status == 201 and meeting["media_modes"] == {"fibre": "both"}
    status, bad = await node.call(
        "POST",
        "/api/v1/meetings",
        json={
            "title": "x",
            "chair": "hg-meo-vac",
            "invited": ["all"],
            "start": "2030-01-07T08:00",
            "duration_minutes": 60,
            "media_modes": {"fibre": "hologram"},
        },
    )
    assert status == 400 and "media_modes" in bad["error"]["message"]
    ws = await WsClient.connect(node, await node.endpoint_token("hg-meo-vac"))  # a district room on fibre
    await ws.expect("welcome")
    client = Client(
        WsPeerBridge(ws, meeting["id"]), meeting["id"], "hg-meo-vac", video=PatternTrack(200), audio=ToneTrack()
    )
    try:
        await client.join()
        assert await wait_for(
            lambda: (
                "hg-meo-vac" in node.ctx.media.meetings.get(meeting["id"], {}).peers
                if meeting["id"] in node.ctx.media.meetings
                else False
            ),
            timeout=5,
        )
        peer = node.ctx.media.meetings[meeting["id"]].peers["hg-meo-vac"]
        assert peer.media_mode == "both"
    finally:
        await client.close()


async def test_the_answer_to_a_clients_offer_comes_before_any_server_offer(media_node):
    """The node adds audio slots with its own offer right after answering; a browser in
    have-local-offer would reject an offer that overtakes the answer (InvalidStateError)."""
    from aiortc import RTCPeerConnection

    node = media_node
    district = "hg-meo-vac"
    communes = [e.id for e in node.ctx.directory.select(["tier:commune@hg-meo-vac"])[:4]]
    meeting = await node.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
    publishers = []
    try:
        for endpoint in communes[:3]:  # loud microphones: a newcomer needs more audio slots than it offers
            ws = await WsClient.connect(node, await node.endpoint_token(endpoint))
            await ws.expect("welcome")
            client = Client(
                WsPeerBridge(ws, meeting["id"]), meeting["id"], endpoint, video=PatternTrack(90), audio=ToneTrack()
            )
            await client.join()
            publishers.append(client)
        for attempt in range(5):
            ws = await WsClient.connect(node, await node.endpoint_token(district))
            await ws.expect("welcome")
            await ws.send("join", meeting_id=meeting["id"])
            await ws.expect("joined")
            pc = RTCPeerConnection()
            pc.addTransceiver("audio")
            pc.addTransceiver("video")
            await pc.setLocalDescription(await pc.createOffer())
            ref = await ws.send("offer", sdp=pc.localDescription.sdp)
            media = []
            while len(media) < 2:
                raw = await ws.ws.receive(timeout=10)
                msg = json.loads(raw.data)
                if msg["type"] in ("answer", "offer", "ice"):
                    media.append(msg)
            assert media[0]["type"] == "answer" and media[0]["ref"] == ref, [m["type"] for m in media]
            assert media[1]["type"] == "offer"  # the extra audio slots, after the answer
            await pc.close()
            await ws.close()
    finally:
        for c in publishers:
            await c.close()


async def test_a_chair_mute_holds_on_the_terminals_next_peer(media_node):
    """The chair mutes a commune's video; the commune (a client that ignores mute requests) comes
    back with a new peer after a reconnect: the node still forwards none of its video."""
    node = media_node
    district, commune = "hg-meo-vac", node.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
    meeting = await node.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
    chair_ws = await WsClient.connect(node, await node.endpoint_token(district))
    await chair_ws.expect("welcome")
    chair = Client(
        WsPeerBridge(chair_ws, meeting["id"]), meeting["id"], district, video=PatternTrack(220), audio=ToneTrack()
    )
    room = None
    try:
        await chair.join()
        await chair_ws.send("mute", endpoint_id=district, kind="audio", muted=False)  # the chair may act
        for attempt in range(2):  # first connection, then a reconnect with a new peer
            ws = await WsClient.connect(node, await node.endpoint_token(commune))
            await ws.expect("welcome")
            room = Client(
                WsPeerBridge(ws, meeting["id"]), meeting["id"], commune, video=PatternTrack(30), audio=ToneTrack()
            )
            await room.join()
            streams = lambda: (
                [s for s in node.ctx.media.meetings[meeting["id"]].peers[commune].streams.values() if s.kind == "video"]
                if commune in node.ctx.media.meetings[meeting["id"]].peers
                else []
            )
            assert await wait_for(streams, timeout=10)
            if attempt == 0:
                assert not streams()[0].muted
                await chair_ws.send("mute", endpoint_id=commune, kind="video", muted=True)
                assert await wait_for(lambda: streams()[0].muted, timeout=5), "the mute did not reach the node"
                await room.close()
                assert await wait_for(lambda: commune not in node.ctx.media.meetings[meeting["id"]].peers, timeout=5)
            else:
                assert streams()[0].muted, "the chair's mute was lost with the old peer"
    finally:
        for c in (chair, room):
            if c is not None:
                await c.close()
