"""The SIP stack against baresip 1.0 (Debian), a room system nobody here wrote (#14).

Dial-out uses a DELAYED OFFER (INVITE without SDP): baresip must answer with an offer in its 200
and take our answer in the ACK. Dial-in: baresip offers, we answer. Both end with BYE, each way.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.signaling.sip.conftest import audio_sdp

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_baresip_answers_an_offerless_invite_with_an_offer_and_takes_our_answer_in_the_ack(
    stacks, baresips, transport
):
    room = await baresips("room").start()
    stack = await stacks()
    uri = room.uri + (";transport=tcp" if transport == "tcp" else "")
    call = await stack.dial(uri, from_user="7001")  # no sdp: delayed offer
    assert "Content-Type" not in str(call.invite.headers.items()) and not call.invite.body
    offer = await call.wait_answered(timeout=15)
    assert offer is not None and "m=audio" in offer, offer  # baresip offered in its 200
    await call.ack(audio_sdp(41000))
    await room.wait_event("CALL_ESTABLISHED", timeout=10)
    await asyncio.sleep(0.5)
    await call.hangup()
    await room.wait_event("CALL_CLOSED", timeout=10)
    assert call.end_reason == "hangup" and not stack.calls and call.transport == transport


async def test_baresip_dials_in_gets_our_answer_and_its_bye_ends_the_call(stacks, baresips):
    calls = []

    async def on_invite(call):
        calls.append(call)
        await call.ringing()
        await call.answer(audio_sdp(41010))

    stack = await stacks(on_invite)
    port = stack.addresses["udp"][1]
    room = await baresips("room").start()
    await room.dial(f"sip:7001@127.0.0.1:{port}")
    await room.wait_event("CALL_ESTABLISHED", timeout=10)
    call = calls[0]
    assert call.request_uri_user == "7001" and call.from_user == "room" and "m=audio" in (call.offer_sdp or "")
    assert await call.wait_ack(5) is None  # it offered in the INVITE: its ACK has no SDP
    await room.hangup()
    await asyncio.wait_for(call.ended.wait(), 10)
    assert call.end_reason == "bye" and not stack.calls
