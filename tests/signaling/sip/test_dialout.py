"""Dial-out (#14): when a meeting opens the server calls every invited room system with a SIP URI
(a delayed-offer INVITE: the room offers in its 200, our leg answers in the ACK), calls again after
the room's BYE (5 s backoff), and stops when an operator hangs it up (REST DELETE) - all observed
at the room: the INVITEs it gets, the picture-less call it holds, the BYE it receives.
Server and room systems as in test_gateway.py (its docstring says how to start a server with SIP on).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.signaling.sip.test_gateway import CHAIR, RoomSystem, sip_node, until, _sip_in

pytestmark = pytest.mark.integration


class AnsweringRoom(RoomSystem):
    """A room system that answers every INVITE (auto-answer) and keeps its calls."""

    def __init__(self) -> None:
        super().__init__(on_invite=self._answer)
        self.invites: list[float] = []
        self.calls: list = []

    async def _answer(self, call) -> None:
        self.invites.append(time.monotonic())
        assert call.offer_sdp is None, "dial-out sends a delayed offer"
        await call.answer(self.media.offer())
        answer = await call.wait_ack()
        await self.media.apply_answer(answer)
        self.calls.append(call)


async def test_dials_on_open_redials_after_bye_and_stops_on_hang_up(tmp_path):
    room = AnsweringRoom()
    await room.start()
    node, _ = await sip_node(
        tmp_path, {"room-out": {"uri": f"sip:room-out@127.0.0.1:{room.port}", "allowed_sources": ["127.0.0.1"]}}
    )
    try:
        meeting = await node.schedule(CHAIR, ["room-out"])
        assert await until(lambda: _sip_in(node, meeting["id"], "room-out"), 15), "not called when it opened"
        assert len(room.invites) == 1
        status, body = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/sip")
        assert status == 200 and body["room_systems"][0]["in_call"] is True, body

        await room.calls[0].hangup()  # the room hangs up: the server calls again after 5 s
        assert await until(lambda: _count(room, 2), 12), "no redial after the room's BYE"
        assert 4.0 <= room.invites[1] - room.invites[0] <= 11.0
        assert await until(lambda: _sip_in(node, meeting["id"], "room-out"), 10)

        status, body = await node.call("DELETE", f"/api/v1/meetings/{meeting['id']}/sip/room-out")
        assert status == 202 and body["state"] == "hung_up", body
        await asyncio.wait_for(room.calls[1].ended.wait(), 10)
        assert room.calls[1].end_reason == "bye"  # the gateway's BYE
        await asyncio.sleep(7)
        assert len(room.invites) == 2, "called again after an operator hung it up"

        status, body = await node.call("POST", f"/api/v1/meetings/{meeting['id']}/sip/room-out")
        assert status == 202 and body["state"] == "calling", body
        assert await until(lambda: _count(room, 3), 10), "POST did not call it"
    finally:
        await node.stop()
        await room.stop()


async def _count(room: AnsweringRoom, n: int) -> bool:
    return len(room.invites) >= n


async def test_rest_names_what_is_wrong(tmp_path):
    node, _ = await sip_node(tmp_path, {"room-out": {"allowed_sources": ["127.0.0.1"]}})
    try:
        meeting = await node.schedule(CHAIR, ["room-out"], minutes_from_now=600)
        path = f"/api/v1/meetings/{meeting['id']}/sip"
        status, body = await node.call("POST", f"{path}/nobody")
        assert status == 404 and "nobody" in body["error"]["message"], body
        status, body = await node.call("POST", f"{path}/{CHAIR}")
        assert status == 409 and "no sip: block" in body["error"]["message"], body
        status, body = await node.call("POST", f"{path}/room-out")
        assert status == 409 and "not open now" in body["error"]["message"], body
        status, body = await node.call("DELETE", f"{path}/room-out", token=None)
        assert status == 401, body
    finally:
        await node.stop()


async def test_stop_is_prompt_while_a_dial_out_rings_a_room_that_never_answers(tmp_path):
    """Nothing listens at the room's URI (UDP: no error comes back): stop() does not wait the
    CANCEL's 32 s."""
    node, _ = await sip_node(
        tmp_path, {"room-mute": {"uri": "sip:room-mute@127.0.0.1:9", "allowed_sources": ["127.0.0.1"]}}
    )
    stopped = False
    try:
        await node.schedule(CHAIR, ["room-mute"])
        assert await until(lambda: _ringing(node), 10), "the server did not call the room"
        began = time.monotonic()
        await node.stop()
        stopped = True
        assert time.monotonic() - began < 8
    finally:
        if not stopped:
            await node.stop()


async def _ringing(node) -> bool:
    return any(call.final is None for call in node.ctx.sip.stack.calls.values() if hasattr(call, "final"))
