"""Dial numbers (#14): the digits a SIP room system dials (sip:<number>@<server>) to reach a meeting.

A number is held in its own collection, ``DIAL_NUMBERS``: key = the number, value = the meeting id.
Claiming it is the store's atomic ``put_if_absent``, so two nodes (Redis) or two coroutines can never
give one number to two meetings, and both stores need nothing beyond their existing contract.

Decisions:
* a claim is written before the meeting that names it; a meeting's number counts only when the
  meeting itself names it too (``lookup`` checks both), so a claim left by a crash in between is
  harmless (that number is simply never handed out again);
* numbers assigned here are 6 digits (100000-999999): short to key in, 900,000 of them;
* a meeting stored before #14 gets its number the first time it is read, saved at once, so the
  number an operator sees is the number the gateway finds; meetings are never deleted, so a number
  is never freed.
"""

from __future__ import annotations

import secrets

from signaling.meetings.errors import ConflictError
from signaling.store.base import Doc, Store

DIAL_NUMBERS = "dial_numbers"
ASSIGNED_LOW, ASSIGNED_HIGH = 100_000, 999_999
TRIES = 20  # a random 6-digit number is taken with probability (meetings / 900,000)


def random_number() -> str:
    return str(ASSIGNED_LOW + secrets.randbelow(ASSIGNED_HIGH - ASSIGNED_LOW + 1))


async def claim(store: Store, number: str, meeting_id: str) -> bool:
    """Reserve ``number`` for ``meeting_id``; True when it is now (or already was) that meeting's."""
    if await store.put_if_absent(DIAL_NUMBERS, number, {"meeting_id": meeting_id}):
        return True
    held = await store.get(DIAL_NUMBERS, number)
    return held is not None and held.get("meeting_id") == meeting_id


async def claim_given(store: Store, number: str, meeting_id: str) -> None:
    """The number a client chose; ConflictError (409) naming the field when another meeting has it."""
    if not await claim(store, number, meeting_id):
        raise ConflictError(f"dial_number {number} belongs to another meeting; choose another or leave it out")


async def claim_any(store: Store, meeting_id: str) -> str:
    """A free 6-digit number, now reserved for ``meeting_id``."""
    for _ in range(TRIES):
        number = random_number()
        if await claim(store, number, meeting_id):
            return number
    raise ConflictError("could not find a free dial_number; try again or give one")


async def release(store: Store, number: str, meeting_id: str) -> None:
    """Undo a claim whose meeting was not stored (only if the claim is still this meeting's)."""
    held = await store.get(DIAL_NUMBERS, number)
    if held is not None and held.get("meeting_id") == meeting_id:
        await store.delete(DIAL_NUMBERS, number)


async def meeting_id_of(store: Store, number: str) -> str | None:
    """The meeting id the number was claimed for, or None."""
    held = await store.get(DIAL_NUMBERS, number)
    meeting_id = held.get("meeting_id") if held else None
    return meeting_id if isinstance(meeting_id, str) else None


async def backfill(store: Store, coll: str, doc: Doc) -> Doc:
    """The stored meeting ``doc`` with a dial number: assigned and saved when it has none (a meeting
    stored before #14). Returns what the store now holds (re-read when another node raced us)."""
    if doc.get("dial_number"):
        return doc
    meeting_id = doc["id"]
    number = await claim_any(store, meeting_id)
    updated = doc | {"dial_number": number}
    if await store.compare_and_put(coll, meeting_id, doc, updated):
        return updated
    await release(store, number, meeting_id)
    current = await store.get(coll, meeting_id)
    return await backfill(store, coll, current) if current is not None else doc
