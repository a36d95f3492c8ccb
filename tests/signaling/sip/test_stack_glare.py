"""Re-INVITE glare between two of our stacks on 127.0.0.1 (#14, RFC 3261 §14): crossing re-INVITEs
get 491 and are retried after the random delay, a re-INVITE before the ACK of our 200 gets 500."""

from __future__ import annotations

import asyncio

import pytest

from signaling.sip import glare
from tests.signaling.sip.conftest import audio_sdp
from tests.signaling.sip.raw import RawPeer, request
from tests.signaling.sip.test_stack_calls import Answering, uri_of

pytestmark = pytest.mark.integration


async def call_between(stacks, transport: str = "udp"):
    uas_side = Answering()
    uas = await stacks(uas_side)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, transport), from_user="gw", sdp=audio_sdp(43000))
    await out.wait_answered(timeout=5)
    room = uas_side.calls[0]
    await room.wait_ack(5)
    return uac, out, uas, room


def answering(port: int, offers: list):
    async def on_reinvite(offer):
        offers.append(offer)
        return audio_sdp(port)

    return on_reinvite


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_crossing_reinvites_get_491_and_both_go_through_after_the_delay(stacks, monkeypatch, transport):
    monkeypatch.setattr(glare, "DELAY_S", {True: (0.6, 0.7), False: (0.0, 0.2)})
    uac, out, uas, room = await call_between(stacks, transport)
    seen_by_us, seen_by_room = [], []
    out.on_reinvite = answering(43100, seen_by_us)
    room.on_reinvite = answering(42100, seen_by_room)
    ours, theirs = await asyncio.wait_for(
        asyncio.gather(out.reinvite(audio_sdp(43002)), room.reinvite(audio_sdp(42002))), 10
    )
    assert (ours, theirs) == (audio_sdp(42100), audio_sdp(43100))
    assert (seen_by_us, seen_by_room) == ([audio_sdp(42002)], [audio_sdp(43002)])
    # each side received the other's re-INVITE twice: once crossing (491), once retried
    assert (uac.counts["INVITE"], uas.counts["INVITE"]) == (2, 1 + 2)
    assert not out.ended.is_set() and not room.ended.is_set()


async def test_a_reinvite_of_ours_waits_while_we_answer_theirs(stacks):
    uac, out, uas, room = await call_between(stacks)
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(offer):
        entered.set()
        await release.wait()
        return audio_sdp(42100)

    room.on_reinvite = slow
    moving = asyncio.ensure_future(out.reinvite(audio_sdp(43002)))
    await asyncio.wait_for(entered.wait(), 5)
    refreshing = asyncio.ensure_future(room.reinvite(audio_sdp(42002)))  # the room's own, while it answers ours
    await asyncio.sleep(0.5)
    assert not refreshing.done() and uac.counts["INVITE"] == 0  # not sent while its answer to ours is pending
    release.set()
    assert await asyncio.wait_for(moving, 5) == audio_sdp(42100)
    assert await asyncio.wait_for(refreshing, 5) == audio_sdp(43002)  # no on_reinvite on our side: our last SDP


async def test_a_reinvite_before_the_ack_of_our_200_gets_500_with_retry_after(stacks):
    async def on_invite(call):
        await call.answer(audio_sdp())

    stack = await stacks(on_invite)
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    peer.send(request("INVITE", target, peer, call_id="early", body=audio_sdp()))
    ok = await peer.response()
    peer.send(request("INVITE", target, peer, call_id="early", cseq=2, to_tag=ok.to_addr.tag, body=audio_sdp()))
    while True:  # skip our 200's retransmissions
        refused = await peer.response()
        if refused.cseq.seq == 2:
            break
    assert refused.status_code == 500 and 0 < int(refused.headers.get_first("retry-after")) <= 10
