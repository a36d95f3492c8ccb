"""The SDP exchanges of a SIP call with its media leg (#14), for the gateway: the leg's answer to
the room's offer (the INVITE's, a re-INVITE's, the 200 of ours without SDP), the leg's own offer
for an INVITE without SDP, and how a refused one looks to the room (``for_room``: the stack's one
mapping, ``refusals.refusal_of``, with the Warning Vietnamese first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from mcu.api import MediaError, MediaPeer, OfferRefused
from signaling.sip.info import CallEvents
from signaling.sip.refusals import Refusal, refusal, refusal_of

OFFER_S = 10.0  # the leg's own offer, for an INVITE without SDP


def sdp_version(sdp: str | None) -> int:
    """The o= version of the SDP we last sent on a call (0 if none)."""
    fields = next((line.split() for line in (sdp or "").splitlines() if line.startswith("o=")), [])
    return int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0


async def answer_offer(peer: MediaPeer, offer: str) -> str:
    """The leg's answer; on a refused offer the leg is closed (``for_room`` makes the 488)."""
    try:
        return await peer.handle_offer(offer)
    except MediaError:
        await peer.close()
        raise


def answer_offers(peer: MediaPeer) -> Callable[[str], Awaitable[str]]:
    """The room's re-INVITE offers (hold, codec change) for the same leg; a refusal as the room sees it."""

    async def answer(offer: str) -> str:
        try:
            return await peer.handle_offer(offer)
        except MediaError as exc:
            raise (for_room(exc) or exc) from None

    return answer


def for_room(exc: BaseException) -> Refusal | None:
    """The final answer an exception asks for (the stack's one mapping, ``refusal_of``), its
    Warning Vietnamese first; None: an error of ours."""
    no = refusal_of(exc)
    if isinstance(exc, OfferRefused) and no is not None:
        return refusal(no.code, no.reason, "Thiết bị và máy chủ không có định dạng media chung", str(exc))
    if no is None and isinstance(exc, MediaError):  # an SDP the leg cannot read
        return refusal(488, "Not Acceptable Here", "Máy chủ không đọc được SDP", f"SDP not accepted: {exc}")
    return no


async def offer_and_take_answer(call: Any, peer: MediaPeer, events: CallEvents) -> None:
    """An INVITE without SDP (RFC 3261 13.2.1): the leg's offer in our 200, the room's answer in its ACK."""
    await call.answer(await asyncio.wait_for(asyncio.shield(events.offer), OFFER_S))
    answer = await call.wait_ack()
    if not answer:
        raise refusal(488, "Not Acceptable Here", "Thiết bị không trả lời SDP", "the ACK carried no SDP answer")
    try:
        await peer.handle_answer(answer)
    except MediaError as exc:
        no = for_room(exc)
        raise (no or exc) from None
