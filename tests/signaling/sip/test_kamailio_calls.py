"""Calls through Kamailio along its Record-Route (#14): deploy/kamailio/kamailio.cfg run by a real
Kamailio on 127.0.0.1 in front of one giaoban server (tests/support/kamailio.py).

* A room (our SIP stack as the UA) dials the meeting's number through Kamailio, gets 200 and ACKs
  (it is listed in the meeting, read over REST); an operator's DELETE
  /api/v1/meetings/{id}/sip/{endpoint} ends the call: the server's BYE reaches the room through
  Kamailio (its statistics count it) and the room leaves the participant list.
* The room's own BYE along the Record-Route (our 1xx/2xx copy the INVITE's Record-Route).
* kamailio.cfg is no open relay: an in-dialog request without Route whose request-URI is not one
  of our nodes is answered 404 and its target never receives it. (With a Route naming Kamailio it
  is relayed only from or to a node's address; all share 127.0.0.1 here, so that is not tested.)
"""

from __future__ import annotations

import asyncio

import pytest

from signaling.sip.calls import DialFailed
from signaling.sip.limits import TokenBuckets
from tests.signaling.sip.raw import RawPeer, request
from tests.signaling.sip.test_gateway import CHAIR, RoomSystem, _gone, _sip_in, sip_node, until
from tests.support.kamailio import Kamailio, require_kamailio

pytestmark = pytest.mark.integration


@pytest.fixture
async def front(tmp_path):
    """(server, Kamailio, room); the room's uri is its own stack, which refuses the dial-out (486)."""
    require_kamailio()
    room = RoomSystem()
    await room.start()
    rooms = {"room-a": {"uri": f"sip:room-a@127.0.0.1:{room.port}", "allowed_sources": ["127.0.0.1"]}}
    node, port = await sip_node(tmp_path / "node", rooms)
    kam = Kamailio(tmp_path / "kam", {"node-a": port, "node-b": port}).start()
    yield node, kam, room
    await asyncio.wait_for(node.stop(), 20)
    await room.stop()
    kam.stop()


async def _call_through_kamailio(node, kam: Kamailio, room: RoomSystem):
    meeting = await node.schedule(CHAIR, ["room-a"])
    kam.pin(meeting["dial_number"], node.ctx.sip.stack.addresses["udp"][1])
    call = await room.dial(meeting["dial_number"], kam.port, from_user="room-a")
    assert await until(lambda: _sip_in(node, meeting["id"], "room-a"), 10), "the ACK did not reach the server"
    return meeting, call


async def test_the_servers_bye_reaches_the_room_through_kamailio(front):
    node, kam, room = front
    meeting, call = await _call_through_kamailio(node, kam, room)
    byes = kam.received("BYE")
    status, body = await node.call("DELETE", f"/api/v1/meetings/{meeting['id']}/sip/room-a")
    assert status == 202, body
    await asyncio.wait_for(call.ended.wait(), 10)
    assert call.end_reason == "bye"  # the server's BYE, received by the room ...
    assert kam.received("BYE") == byes + 1  # ... through Kamailio
    assert await until(lambda: _gone(node, meeting["id"], "room-a"), 10)


async def test_the_rooms_bye_goes_along_the_record_route(front):
    node, kam, room = front
    meeting, call = await _call_through_kamailio(node, kam, room)
    byes = kam.received("BYE")
    assert call.dialog.route_set, "the 200 carried no Record-Route"
    await call.hangup()  # BYE with Route: Kamailio, request-URI: the server's Contact
    assert await until(lambda: _gone(node, meeting["id"], "room-a"), 10), "the server did not see the BYE"
    assert kam.received("BYE") == byes + 1


class _Listener(asyncio.DatagramProtocol):
    """What a relay's victim receives (any source)."""

    def __init__(self) -> None:
        self.got: list[bytes] = []

    def datagram_received(self, data: bytes, addr) -> None:
        self.got.append(data)


async def test_in_dialog_request_to_a_foreign_target_is_answered_404_and_not_relayed(front):
    node, kam, _ = front
    victim, listener = await asyncio.get_running_loop().create_datagram_endpoint(_Listener, local_addr=("127.0.0.1", 0))
    caller = await RawPeer.udp(("127.0.0.1", kam.port))
    target = ("127.0.0.1", victim.get_extra_info("sockname")[1])  # not in the dispatcher set
    try:
        for method in ("BYE", "INVITE", "MESSAGE"):
            caller.send(request(method, target, caller, to_tag="forged"))
            assert (await caller.response()).status_code == 404, method
        await asyncio.sleep(0.5)
        assert listener.got == []
        assert node.ctx.sip.stack.counts["BYE"] == 0 and node.ctx.sip.stack.counts["INVITE"] == 0
    finally:
        caller.close()
        victim.close()


async def test_a_flood_503_with_retry_after_is_not_spread_to_the_other_node(tmp_path):
    require_kamailio()
    a, port_a = await sip_node(tmp_path / "a", {}, node_id="node-a")
    b, port_b = await sip_node(tmp_path / "b", {}, node_id="node-b")
    for node in (a, b):  # one INVITE, then 503 + Retry-After (the flood answer) for the next
        node.ctx.sip.stack.invite_buckets = TokenBuckets(0.01, 1)
    kam = Kamailio(tmp_path / "kam", {"node-a": port_a, "node-b": port_b}).start()
    room = RoomSystem()
    await room.start()
    try:
        with pytest.raises(DialFailed) as first:
            await room.dial("7002", kam.port, from_user="room")
        assert first.value.code == 404  # no meeting has it: the node's answer
        with pytest.raises(DialFailed) as flooded:
            await room.dial("7002", kam.port, from_user="room")
        assert flooded.value.code in (500, 503)  # Kamailio turns a 503 into 500 (RFC 3261 16.7)
        counts = sorted(n.ctx.sip.stack.counts["INVITE"] for n in (a, b))
        assert counts == [0, 2], counts  # both INVITEs reached the hashed node, none the other
    finally:
        await room.stop()
        kam.stop()
        await a.stop()
        await b.stop()
