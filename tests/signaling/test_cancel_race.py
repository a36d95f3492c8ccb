"""Cancelling an occurrence ends its sessions whatever the scheduler has done so far (#11).

Clients may enter an occurrence from ``early_join`` before its start, and the scheduler opens it
on its next pass (every second). A cancel that landed before that pass left nothing open to
close: no ``meeting_closed``, and the WebSocket, WHIP and WHEP sessions stayed in a cancelled
meeting. Here the scheduler is held back while a room terminal joins early (WS) and publishes
(WHIP), a viewer watches (WHEP), and the operator cancels the occurrence; then it runs again.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.media_clients import wait_for
from tests.signaling.test_removal import CHAIR, TARGET, HttpPeer, delete_status, joined, media_peers_of

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("cancel", ["occurrence", "meeting"])
async def test_a_cancel_before_the_first_pass_ends_every_session(media_node, cancel):
    node = media_node
    await node.ctx.scheduler.stop()  # its first pass has not run yet when the terminal joins
    meeting = await node.schedule(chair=CHAIR, invited=["tier:district"], minutes_from_now=5)  # early join
    mid = meeting["id"]
    token = await node.endpoint_token(TARGET)
    status, link = await node.call("POST", f"/api/v1/meetings/{mid}/links", json={"name": "Xem", "role": "viewer"})
    assert status == 201, link
    ws = await joined(node, token, mid)
    pub, view = HttpPeer(), HttpPeer()
    try:
        await pub.open(node, "whip", mid, token)
        await view.open(node, "whep", mid, link["token"])
        status, live = await node.call("GET", f"/api/v1/meetings/{mid}/live")
        assert len(live["participants"]) == 3, live
        path = f"/api/v1/meetings/{mid}" + (f"/occurrences/{live['occurrence_id']}" if cancel == "occurrence" else "")
        status, body = await node.call("DELETE", path)
        assert status == 200, body
        await node.ctx.scheduler.start()
        closed = await ws.expect("meeting_closed", timeout=5, occurrence_id=live["occurrence_id"])
        assert closed["reason"] == "cancelled"
        assert (await ws.expect("left", timeout=5))["reason"] == "meeting closed"
        assert await wait_for(lambda: not node.ctx.media.peers, timeout=5), "media peers outlived the cancel"
        assert media_peers_of(node, TARGET) == 0
        assert await delete_status(node, pub.location, token) == 404
        assert await delete_status(node, view.location, link["token"]) == 404
        assert await wait_for_empty_room(node, live["occurrence_id"]), "participants left in the cancelled room"
    finally:
        await pub.close()
        await view.close()
        await ws.close()


async def wait_for_empty_room(node, occurrence_id: str) -> bool:
    for _ in range(50):  # bounded: 5 s
        if not await node.ctx.rooms.participants(occurrence_id):
            return True
        await asyncio.sleep(0.1)
    return False
