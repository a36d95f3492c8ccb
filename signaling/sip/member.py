"""A SIP call in a meeting room (#14): a member like a WHIP session (signaling/api/whip.py).

``SipMember`` enters the room with kind ``sip`` (the participant list, attendance via ``sip``, the
console map's presence), receives room events (``mute_request`` -> its media leg leaves the mix,
``removed`` -> BYE) and ends on a revocation or the meeting's close through the session registry
(``ctx.sessions.add_media``), exactly as a WHIP session does. Its owner task (gateway.py) waits on
``wake``, heartbeats the room, and on the way out releases media first, then the room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from mcu.api import MediaPeer
from signaling.auth.authenticator import Identity
from signaling.context import Context
from signaling.rooms import PRESENCE_TTL_S
from signaling.ws.registry import MEETING_EVENTS

log = logging.getLogger("giaoban.sip")


class CallLeg(Protocol):
    """What a member needs of its SIP dialog (the stack's IncomingCall or OutgoingCall)."""

    async def hangup(self) -> None: ...


@dataclass(eq=False)
class SipMember:
    session_id: str
    identity: Identity
    meeting_id: str
    occurrence_id: str
    role: str
    direction: str  # in | out: who called
    call: CallLeg | None = None
    peer: MediaPeer | None = None
    ended: str = ""  # why end() was called ("" while the call may live)
    removed: bool = False  # the chair removed it: dial-out must not call it again
    drop_floor: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    since: float = field(default_factory=time.time)
    kind: str = "sip"
    endpoint_id: str = ""  # the identity's (the room relay matches events by it)

    def __post_init__(self) -> None:
        self.endpoint_id = self.identity.endpoint_id

    @property
    def identity_key(self) -> str:
        return f"{self.identity.kind}:{self.identity.id}"

    def info(self) -> dict[str, Any]:
        out = {"endpoint_id": self.endpoint_id, "name": self.identity.name, "role": self.role, "kind": "sip"}
        if self.identity.endpoint is not None:
            out["tier"] = str(self.identity.endpoint.tier)
        return out

    async def on_room_event(self, msg: dict[str, Any], text: str) -> None:
        if msg.get("type") == "mute_request" and self.peer is not None:
            await self.peer.set_muted(msg["kind"], msg["muted"])
        elif msg.get("type") == "removed":  # the relay passes only events addressed to this endpoint
            self.removed = True
            self.end(f"removed by {msg.get('by')}")

    def end(self, reason: str, drop_floor: bool = False) -> None:
        """Hang up soon (removal, revocation, meeting closed, BYE): the owner task wakes and
        releases everything. Does not wait: room relays and the events channel call this."""
        self.drop_floor = self.drop_floor or drop_floor
        if self.ended:
            return
        self.ended = reason
        log.info("SIP call ending: %s", reason, extra={"meeting": self.meeting_id, "endpoint": self.endpoint_id})
        self.wake.set()


async def enter_room(ctx: Context, member: SipMember) -> None:
    """The room, the registry (revocations, meeting close), attendance and presence; all or nothing."""
    try:
        ctx.sessions.add_media(member)
        await ctx.rooms.enter(member.occurrence_id, member, member.info())
        ctx.rooms.participants_changed(member.occurrence_id)
        if member.identity.kind == "endpoint":
            now = datetime.now(timezone.utc)
            await ctx.meetings.record_join(member.occurrence_id, member.endpoint_id, now, via="sip")
            await _presence(ctx, member, online=True)
    except BaseException:
        await asyncio.shield(leave_room(ctx, member))
        raise


async def heartbeat(ctx: Context, member: SipMember) -> None:
    await ctx.rooms.heartbeat(member.occurrence_id, member.session_id, member.info())
    if member.identity.kind == "endpoint":
        await ctx.store.put_ephemeral("presence", member.endpoint_id, _presence_doc(ctx, member), PRESENCE_TTL_S)


async def keep_in_room(ctx: Context, member: SipMember) -> None:
    """Until end(): heartbeat the room entry and presence well within their time to live."""
    while not member.ended:
        try:
            await asyncio.wait_for(member.wake.wait(), min(5.0, PRESENCE_TTL_S / 3))
        except asyncio.TimeoutError:
            await heartbeat(ctx, member)


async def leave_room(ctx: Context, member: SipMember) -> None:
    """Media first (a removed room stops at once), then the room, attendance and presence."""
    ctx.sessions.remove_media(member)
    if member.peer is not None:
        await member.peer.close()
    if member.drop_floor and ctx.placement is not None:
        await ctx.rooms.release_floor(
            member.occurrence_id, member.meeting_id, member.endpoint_id, "revocation", ctx.placement
        )
    await ctx.rooms.exit(member.occurrence_id, member.session_id)
    ctx.rooms.participants_changed(member.occurrence_id)
    if member.identity.kind == "endpoint":
        await ctx.meetings.record_leave(member.occurrence_id, member.endpoint_id, datetime.now(timezone.utc))
        current = await ctx.store.get_ephemeral("presence", member.endpoint_id)
        if current and current.get("session") == member.session_id:
            await ctx.store.delete_ephemeral("presence", member.endpoint_id)
            await _presence(ctx, member, online=False)


def _presence_doc(ctx: Context, member: SipMember) -> dict[str, Any]:
    return {
        "node": ctx.settings.node_id,
        "session": member.session_id,
        "name": member.identity.name,
        "via": "sip",
        "since": member.since,
        "meeting_id": member.meeting_id,
        "seen": time.time(),
    }


async def _presence(ctx: Context, member: SipMember, online: bool) -> None:
    """The console's map shows a room system in a call as online (via sip), like a terminal."""
    if online:
        await ctx.store.put_ephemeral("presence", member.endpoint_id, _presence_doc(ctx, member), PRESENCE_TTL_S)
    event = {"type": "presence", "endpoint_id": member.endpoint_id, "online": online, "node": ctx.settings.node_id}
    await ctx.store.publish(MEETING_EVENTS, event | {"via": "sip"})
