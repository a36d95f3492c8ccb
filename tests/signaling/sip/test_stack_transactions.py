"""Transactions of the SIP stack against our own stack (or a hand-driven peer where ours would never
misbehave) on 127.0.0.1 (#14): Timer B and a ringing room, late 2xx, ACK and transaction matching."""

from __future__ import annotations

import asyncio

import pytest

from signaling.sip import outgoing, transactions
from signaling.sip.stack import DialFailed
from tests.signaling.sip.conftest import audio_sdp
from tests.signaling.sip.raw import RawPeer, request
from tests.signaling.sip.test_stack_calls import uri_of

pytestmark = pytest.mark.integration


def reply(invite, code: int, reason: str, tag: str = "room", body: str = "") -> str:
    """A response of a hand-driven room to ``invite`` (From, To + tag, Call-ID, CSeq and Via copied)."""
    lines = [f"SIP/2.0 {code} {reason}"] + [f"{n}: {invite.headers.get_first(n)}" for n in ("Via", "From", "Call-ID")]
    lines += [f"CSeq: {invite.headers.get_first('cseq')}", f"To: {invite.headers.get_first('to')};tag={tag}"]
    lines += ["Contact: <sip:room@127.0.0.1>"]
    if body:
        lines.append("Content-Type: application/sdp")
    return "\r\n".join([*lines, f"Content-Length: {len(body)}", "", body])


def drained(peer: RawPeer) -> list:
    return [peer.queue.get_nowait() for _ in range(peer.queue.qsize())]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_room_that_rings_past_timer_b_and_then_answers_is_connected(stacks, monkeypatch, transport):
    monkeypatch.setattr(transactions, "TIMEOUT", 1.0)  # Timer B: 1 s here (32 s in service), the room rings 2.5 s
    answered = []

    async def ring_then_answer(call):
        await call.ringing()
        await asyncio.sleep(2.5)
        await call.answer(audio_sdp(42000))
        answered.append(call)

    uas = await stacks(ring_then_answer)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, transport), from_user="gw", sdp=audio_sdp(43000))
    assert await out.wait_answered(timeout=10) == audio_sdp(42000)
    assert await answered[0].wait_ack(5) is None  # the room got our ACK: the call is up on both sides
    await out.hangup()
    await asyncio.wait_for(answered[0].ended.wait(), 5)
    assert answered[0].end_reason == "bye"


async def test_the_ring_timeout_of_the_caller_cancels_the_dial(stacks, monkeypatch):
    monkeypatch.setattr(transactions, "TIMEOUT", 0.5)
    ringing = []

    async def ring(call):
        ringing.append(call)
        await call.ringing()

    uas = await stacks(ring)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, "udp"), from_user="gw")
    with pytest.raises(DialFailed) as failed:
        await out.wait_answered(timeout=1.5)  # the gateway's RING_S
    assert failed.value.code == 408
    await asyncio.wait_for(ringing[0].ended.wait(), 5)
    assert (ringing[0].end_reason, out.end_reason) == ("cancel", "cancel")  # the room saw our CANCEL
    assert not uas.calls and not uac.calls


async def test_a_200_after_we_gave_up_is_acked_and_byed_once(stacks, monkeypatch):
    monkeypatch.setattr(outgoing, "TIMEOUT", 0.5)  # how long a CANCEL waits for the INVITE's final
    stack = await stacks()
    room = await RawPeer.udp(stack.addresses["udp"])
    out = await stack.dial(f"sip:room@127.0.0.1:{room.port}", from_user="gw", sdp=audio_sdp())
    invite = await room.request("INVITE")
    room.send(reply(invite, 180, "Ringing"))
    with pytest.raises(DialFailed):
        await out.wait_answered(timeout=0.5)
    await room.request("CANCEL")  # never answered by this room
    await asyncio.wait_for(out.ended.wait(), 3)
    room.send(reply(invite, 200, "OK", body=audio_sdp(42000)))  # the room answers anyway
    ack = await room.request("ACK")
    assert "tag=room" in ack.headers.get_first("to") and ack.headers.get_first("cseq").endswith("ACK")
    bye = await room.request("BYE")
    assert bye.call_id == invite.call_id and "tag=room" in bye.headers.get_first("to")
    room.send(reply(invite, 200, "OK", body=audio_sdp(42000)))  # our ACK lost: ACKed again, no second BYE
    await room.request("ACK")
    await asyncio.sleep(0.3)
    assert [m.method for m in drained(room) if hasattr(m, "method")] in ([], ["BYE"])  # only BYE retransmissions


async def test_an_ack_reusing_the_invites_branch_confirms_the_200(stacks):
    calls = []

    async def on_invite(call):
        calls.append(call)
        await call.answer(audio_sdp())

    stack = await stacks(on_invite)
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    peer.send(request("INVITE", target, peer, call_id="reuse", branch="z9hG4bKsame", body=audio_sdp()))
    ok = await peer.response()
    peer.send(request("ACK", target, peer, call_id="reuse", branch="z9hG4bKsame", to_tag=ok.to_addr.tag))
    assert await calls[0].wait_ack(2) is None  # the dialog got it: no 200 retransmission, no BYE at 32 s
    await asyncio.sleep(1.2)
    assert not [m for m in drained(peer) if getattr(m, "status_code", 0) == 200]


async def test_one_branch_from_two_senders_is_two_transactions(stacks):
    async def busy(call):
        call.reject(486, f"Busy {call.call_id.split('@')[0]}")

    stack = await stacks(busy)
    target = stack.addresses["udp"]
    first, second = await RawPeer.udp(target), await RawPeer.udp(target)
    for peer, call_id in ((first, "one"), (second, "two")):
        peer.send(request("INVITE", target, peer, call_id=call_id, branch="z9hG4bKshared", body=audio_sdp()))
    assert (await first.response()).reason_phrase == "Busy one"
    assert (await second.response()).reason_phrase == "Busy two"  # not absorbed as a retransmission of "one"


def without_branch(text: str) -> str:
    head, _, rest = text.partition(";branch=")
    return head + rest[rest.index(";") :]


async def test_branchless_rfc2543_invites_are_matched_by_their_fields(stacks):
    seen = []

    async def busy(call):
        seen.append(call.call_id)
        call.reject(486, "Busy Here")

    stack = await stacks(busy)
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    one = without_branch(request("INVITE", target, peer, call_id="old1", body=audio_sdp()))
    assert "branch" not in one
    peer.send(one)
    assert (await peer.response()).status_code == 486
    peer.send(one)  # a retransmission: answered again, not a second call
    assert (await peer.response()).status_code == 486
    peer.send(without_branch(request("INVITE", target, peer, call_id="old2", body=audio_sdp())))
    assert (await peer.response()).call_id == "old2@test"
    assert seen == ["old1@test", "old2@test"]
    ack = without_branch(request("ACK", target, peer, call_id="old1", to_tag="x"))
    peer.send(ack)  # the ACK of the 486 (same top Via, From tag, Call-ID, CSeq): Timer G stops for old1
    drained(peer)
    await asyncio.sleep(2.0)
    assert all(m.call_id != "old1@test" for m in drained(peer))
