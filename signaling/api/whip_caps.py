"""Caps on WHIP/WHEP sessions at once, per bearer token and per meeting, across the cluster (#11).

Each session holds a place in two ephemeral store collections (one per cap); a place fades out
after PRESENCE_TTL_S unless its session refreshes it, so a dead node's sessions stop counting.
Counting and holding a place happen under the store's lock of that cap, so requests racing on
any node are admitted in turn up to the cap, never beyond. whip.py reserves before it makes the
media peer, refreshes with the room heartbeat and unreserves on release.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from typing import Protocol

from aiohttp import web

from signaling.errors import busy, too_many_sessions
from signaling.rooms import PRESENCE_TTL_S

CAP_LOCK_TTL_S = 5.0  # a node that dies holding a cap's lock frees it after this


class CappedSession(Protocol):
    """What the caps read of a WHIP/WHEP session (whip.HttpMediaMember)."""

    session_id: str
    endpoint_id: str
    meeting_id: str
    kind: str  # whip | whep
    token_fp: str


def token_fingerprint(request: web.Request) -> str:
    """A digest of the bearer token: the per-token cap counts it, never the token."""
    token = request.headers.get("Authorization", "").partition(" ")[2].strip()
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _caps(ctx, member: CappedSession) -> list[tuple[str, int, str]]:
    """(store collection, cap, the cap's setting) for each cap this session counts against."""
    limits, kind = ctx.settings.limits, member.kind
    return [
        (
            f"{kind}-sessions:token:{member.token_fp}",
            getattr(limits, f"{kind}_sessions_per_token"),
            f"{kind}_sessions_per_token",
        ),
        (
            f"{kind}-sessions:meeting:{member.meeting_id}",
            getattr(limits, f"{kind}_sessions_per_meeting"),
            f"{kind}_sessions_per_meeting",
        ),
    ]


async def reserve(ctx, member: CappedSession) -> None:
    """Hold a place under each cap, or 429 naming the cap (503 while a cap's lock stays busy)."""
    try:
        for coll, cap, setting in _caps(ctx, member):
            async with _cap_lock(ctx, coll, member.session_id):
                held = len(await ctx.store.list_ephemeral(coll))
                if held >= cap:
                    whose = "this token" if ":token:" in coll else f"meeting {member.meeting_id}"
                    raise too_many_sessions(
                        f"{whose} already has {held} {member.kind.upper()} sessions, the most "
                        f"allowed at once (limits.{setting} = {cap}); end one with DELETE first"
                    )
                await _hold(ctx, member, coll)
    except BaseException:  # over a cap, a cap's lock busy (503), the store failing: give back what was taken
        await unreserve(ctx, member)
        raise


async def refresh(ctx, member: CappedSession) -> None:
    """Keep the session's places from fading out (called with each room heartbeat)."""
    for coll, _, _ in _caps(ctx, member):
        await _hold(ctx, member, coll)


async def unreserve(ctx, member: CappedSession) -> None:
    """Give back the session's places (idempotent)."""
    for coll, _, _ in _caps(ctx, member):
        await ctx.store.delete_ephemeral(coll, member.session_id)


async def _hold(ctx, member: CappedSession, coll: str) -> None:
    doc = {"node": ctx.settings.node_id, "endpoint": member.endpoint_id}
    await ctx.store.put_ephemeral(coll, member.session_id, doc, PRESENCE_TTL_S)  # a dead node's fade out


@contextlib.asynccontextmanager
async def _cap_lock(ctx, coll: str, owner: str):
    """The store's lock of one cap (shared by all nodes), polled with jitter for up to 5 s."""
    name = f"cap:{coll}"
    for _ in range(250):
        if await ctx.store.acquire_lock(name, owner, CAP_LOCK_TTL_S):
            break
        await asyncio.sleep(random.uniform(0.005, 0.03))
    else:
        raise busy("too many WHIP/WHEP requests at this moment; retry in a few seconds")
    try:
        yield
    finally:
        await ctx.store.release_lock(name, owner)
