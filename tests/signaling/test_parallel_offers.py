"""Parallel offers from several WebSocket sessions of one identity (issue #11, outside audit).

One join link opened on two devices, or two guests with the same name, share one media id: the
media node keeps one peer per id, so a newer offer closes the older peer, possibly while that
peer is still answering. Every session must then still hear back (an answer or an error it can
act on) and stay served: before the fix the losers got nothing, ever, and kept counting in /live.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiortc import RTCPeerConnection
import pytest

from tests.support.harness import WsClient
from tests.support.media_clients import PatternTrack, ToneTrack

pytestmark = pytest.mark.integration

SESSIONS = 4


async def answer_or_error(ws: WsClient, ref: str, timeout: float = 10.0) -> dict:
    """The server's reply to the offer sent as ``ref``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no answer or error to {ref} within {timeout} s"
        raw = await ws.ws.receive(timeout=left)
        assert raw.type == aiohttp.WSMsgType.TEXT, f"connection ended: {raw.type} {raw.extra}"
        msg = json.loads(raw.data)
        if msg.get("type") == "answer" or (msg.get("type") == "error" and msg.get("ref") == ref):
            return msg


async def test_every_session_of_one_link_hears_back_from_parallel_offers(media_node):
    meeting = await media_node.schedule("hg-ubnd", ["tier:district"])
    status, link = await media_node.call(
        "POST", f"/api/v1/meetings/{meeting['id']}/links", json={"name": "Lãnh đạo tỉnh", "role": "participant"}
    )
    assert status == 201, link
    clients = [await WsClient.connect(media_node, link["token"]) for _ in range(SESSIONS)]
    pcs = [RTCPeerConnection() for _ in range(SESSIONS)]
    try:
        for ws in clients:
            await ws.expect("welcome")
            await ws.send("join", meeting_id=meeting["id"])
            await ws.expect("joined")

        async def offer(ws: WsClient, pc: RTCPeerConnection) -> dict:
            pc.addTransceiver(ToneTrack(), direction="sendrecv")
            pc.addTransceiver(PatternTrack(80), direction="sendrecv")
            await pc.setLocalDescription(await pc.createOffer())
            return await answer_or_error(ws, await ws.send("offer", sdp=pc.localDescription.sdp))

        replies = await asyncio.gather(*(offer(ws, pc) for ws, pc in zip(clients, pcs)))
        assert any(r["type"] == "answer" for r in replies), replies
        for reply in replies:
            if reply["type"] == "error":
                assert reply["code"] != "internal" and reply["message"], reply
        for ws in clients:  # and every session is still served
            ref = await ws.send("ping")
            pong = await ws.expect("pong", timeout=5)
            assert pong.get("ref") == ref
    finally:
        for pc in pcs:
            await pc.close()
        for ws in clients:
            await ws.close()
