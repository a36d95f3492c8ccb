"""A dial-in INVITE without SDP (#14; Cisco CUCM and Expressway trunks send delayed offers): the
gateway's 200 carries the leg's offer, the room answers in its ACK, and the room, our stack + an
RtpRoom, decodes the composite and the mix. Servers as in test_gateway.py."""

from __future__ import annotations

import pytest

from tests.signaling.sip.test_gateway import CHAIR, RoomSystem, _sip_in, sip_node, until
from tests.support.media_clients import wait_for

pytestmark = pytest.mark.integration


async def test_an_invite_without_sdp_gets_our_offer_and_the_ack_answers_it(tmp_path):
    node, port = await sip_node(tmp_path, {"room-a": {"allowed_sources": ["127.0.0.1"]}})
    room = RoomSystem()
    await room.start()
    try:
        meeting = await node.schedule(CHAIR, ["room-a"])
        call = await room.stack.dial(f"sip:{meeting['dial_number']}@127.0.0.1:{port}", from_user="room-a", sdp=None)
        offer = await call.wait_answered(timeout=15)  # the 200's SDP: the leg's offer
        assert offer and "m=audio" in offer and "m=video" in offer
        await room.media.apply_answer(offer)  # where the leg receives
        await call.ack(room.media.offer())  # the room's answer, in the ACK
        assert await until(lambda: _sip_in(node, meeting["id"], "room-a"))
        assert await wait_for(lambda: room.media.frames_decoded > 5 and room.media.audio_packets > 20, 15)
        await call.hangup()
    finally:
        await room.stop()
        await node.stop()
