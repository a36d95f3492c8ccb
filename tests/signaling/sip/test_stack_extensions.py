"""Option tags and session-timer floors between two of our stacks on 127.0.0.1 (#14): a Require we
do not support gets 420 naming it (RFC 3261 §8.2.2.3); a room's Min-SE alone is honoured (RFC 4028 §9)."""

from __future__ import annotations

import pytest

from signaling.sip.stack import DialFailed
from tests.signaling.sip.conftest import audio_sdp
from tests.signaling.sip.test_stack_calls import Answering, uri_of

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_an_unsupported_require_gets_420_with_unsupported(stacks, transport):
    uas_side = Answering()
    uas = await stacks(uas_side)
    room = await stacks()
    out = await room.dial(
        uri_of(uas, transport), from_user="room", sdp=audio_sdp(), headers={"Require": "timer, precondition, Sec-Agree"}
    )
    with pytest.raises(DialFailed) as failed:
        await out.wait_answered(timeout=5)
    assert failed.value.code == 420 and ", ".join(out.final.headers.get("unsupported")) == "precondition, sec-agree"
    assert not uas_side.calls  # never offered to on_invite


async def test_require_timer_and_100rel_are_served(stacks):
    uas_side = Answering()
    uas = await stacks(uas_side)
    room = await stacks()
    out = await room.dial(uri_of(uas, "udp"), from_user="room", sdp=audio_sdp(), headers={"Require": "timer, 100rel"})
    assert await out.wait_answered(timeout=5) == uas_side.sdp
    await out.hangup()


async def test_a_rooms_min_se_without_session_expires_sets_the_interval(stacks):
    uas_side = Answering()
    uas = await stacks(uas_side)
    room = await stacks(session_expires=None)  # sends no Session-Expires of its own
    out = await room.dial(uri_of(uas, "udp"), from_user="room", sdp=audio_sdp(), headers={"Min-SE": "3600"})
    await out.wait_answered(timeout=5)
    assert out.final.headers.get_first("session-expires").split(";")[0] == "3600"  # not our 1800
    await out.hangup()
