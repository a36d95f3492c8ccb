"""PIN guessing is limited (#14 review 2/3), observed at the room (our stack as the UA): lobbies
per address are capped (486), and after PER_ADDRESS calls that gave no right PIN the address is
refused 403 before any answer, the Warning Vietnamese first, the operator told once in the log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from signaling.sip.pin_guard import LOBBIES_PER_ADDRESS, PER_ADDRESS, PER_MEETING, PinGuard
from signaling.sip.refusals import Refusal
from signaling.store import open_store
from tests.signaling.sip.test_gateway import CHAIR, RoomSystem, refusal, sip_node, until
from tests.support.harness import Node

pytestmark = pytest.mark.integration


async def test_a_guessing_address_is_capped_then_locked_out(tmp_path, caplog):
    node, port = await sip_node(tmp_path, {"room-a": {"allowed_sources": ["127.0.0.1"]}})
    room = RoomSystem()
    await room.start()
    try:
        meeting = await node.schedule(CHAIR, ["room-a"], pin="2468")
        number = meeting["dial_number"]
        lobbies = [await room.dial(number, port, from_user="guesser") for _ in range(LOBBIES_PER_ADDRESS)]
        code, reason, warning = await refusal(room, number, port, "guesser")
        assert (code, reason) == (486, "Busy Here") and "chờ mã PIN" in warning, warning
        for call in lobbies:  # hung up without a PIN: each spent a try
            await call.hangup()
        assert await until(lambda: _no_lobby(node)), "the lobbies stayed open after the BYEs"
        for _ in range(PER_ADDRESS - LOBBIES_PER_ADDRESS):
            call = await room.dial(number, port, from_user="guesser")
            for digit in "1357#":
                room.media.send_dtmf(digit)
            await asyncio.wait_for(call.ended.wait(), 10)  # the wrong PIN: BYE, saying why (RFC 3326)
            assert call.bye_reason == 'SIP;cause=403;text="Sai ma PIN"', call.bye_reason
        with caplog.at_level(logging.WARNING, logger="giaoban.sip"):
            for _ in range(2):  # refused before any answer, and still refused
                code, reason, warning = await refusal(room, number, port, "guesser")
                assert (code, reason) == (403, "Forbidden"), (code, reason)
                assert warning.index("Nhập sai mã PIN quá nhiều lần") < warning.index("too many wrong PINs")
        lockouts = [r for r in caplog.records if "SIP PIN lockout" in r.getMessage()]
        assert len(lockouts) == 1 and "address:127.0.0.1" in lockouts[0].getMessage()
    finally:
        await room.stop()
        await node.stop()


async def _no_lobby(node: Node) -> bool:
    return node.ctx.sip.pins.waiting == 0


async def test_many_addresses_guessing_one_meeting_lock_it_and_a_right_pin_costs_nothing(tmp_path):
    store = open_store(f"sqlite:{tmp_path / 'pins.db'}")
    await store.start()
    try:
        guard = PinGuard(store)
        right = await guard.take_try("10.0.0.1", "m1")
        await guard.right_pin(right)  # the right PIN gives its try back
        for n in range(PER_MEETING):
            await guard.take_try(f"10.0.1.{n}", "m1")
        with pytest.raises(Refusal) as locked:
            await guard.take_try("10.0.2.1", "m1")  # a fresh address: the meeting is locked
        assert locked.value.code == 403 and (locked.value.warning or "").startswith("Nhập sai mã PIN")
        await guard.take_try("10.0.2.1", "m2")  # another meeting is not
    finally:
        await store.stop()
