"""A server with ``sip.host: 0.0.0.0`` and no ``sip.domain`` (the documented network setup) names
an address rooms can reach in its Contact and Via, never 0.0.0.0 (#14 review 4): the first
routable address of the machine, else 127.0.0.1; observed at the room: its BYE arrives."""

from __future__ import annotations

import asyncio

import pytest

from signaling.settings import Settings
from signaling.sip.stack import SipStack
from signaling.sip_settings import SipSettings
from tests.signaling.sip.conftest import GENEROUS, audio_sdp

pytestmark = pytest.mark.integration
WILDCARD = SipSettings(enabled=True, host="0.0.0.0", port=0, transports=["udp"])


def test_a_wildcard_host_advertises_a_routable_address_else_loopback():
    on_lan = Settings(sip=WILDCARD).resolved(interfaces=["127.0.0.1", "fe80::1", "192.0.2.7"])
    assert on_lan.sip.domain == "192.0.2.7"
    assert Settings(sip=WILDCARD).resolved(interfaces=["127.0.0.1", "::1"]).sip.domain == "127.0.0.1"
    named = Settings(sip=SipSettings(enabled=True, host="0.0.0.0", domain="sip.tinh.vn")).resolved(interfaces=[])
    assert named.sip.domain == "sip.tinh.vn"


async def test_a_room_reaches_a_wildcard_bound_server_by_its_contact():
    answered: asyncio.Future = asyncio.get_running_loop().create_future()

    async def take(call) -> None:
        await call.answer(audio_sdp(40002))
        answered.set_result(call)

    settings = Settings(sip=WILDCARD).resolved(interfaces=["127.0.0.1"])  # a machine with loopback only
    server = SipStack(settings.sip, take, limits=GENEROUS)
    room = SipStack(SipSettings(enabled=True, host="127.0.0.1", port=0, transports=["udp"]), take, limits=GENEROUS)
    await server.start()
    await room.start()
    try:
        port = server.addresses["udp"][1]
        call = await room.dial(f"sip:7001@127.0.0.1:{port}", from_user="room-a", sdp=audio_sdp(40000))
        await call.wait_answered(timeout=5)
        contact = call.final.get_header("Contact") or ""
        assert f"<sip:127.0.0.1:{port}>" in contact and "0.0.0.0" not in contact, contact
        ours = await asyncio.wait_for(answered, 5)
        await call.hangup()  # the BYE goes to the Contact's address
        await asyncio.wait_for(ours.ended.wait(), 5)
        assert ours.end_reason == "bye"
    finally:
        await room.stop()
        await server.stop()
