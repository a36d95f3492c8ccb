"""Sessions connected to this node, by endpoint; presence; meeting-opened notifications.

WebSocket sessions register with ``add``; WHIP/WHEP sessions (signaling.api.whip) with ``add_media``,
so that a revocation (operator deleted, endpoint secret rotated, a meeting's links withdrawn), which
reaches every node on the events channel, ends all three kinds, for the identity and the join links
it made or that speak for it, and takes the floor from it.

The context holds it as a ``signaling.context.ClientRegistry`` (which says what a client is); WHIP/WHEP
routes reach it that way. Taking the floor from a revoked endpoint is injected (``release_floor``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from signaling.context import Client, MediaClient
from signaling.errors import WS_CLOSE
from signaling.protocol import server_msg
from signaling.rooms import PRESENCE_TTL_S
from signaling.store.base import Store, Subscription

log = logging.getLogger("giaoban.sessions")
MEETING_EVENTS = "meeting-events"
# Takes the floor from an endpoint in its room, if it holds it: (occurrence_id, meeting_id, endpoint_id).
FloorRelease = Callable[[str, str, str], Awaitable[object]]


class SessionRegistry:
    def __init__(self, store: Store, node_id: str, auth, release_floor: FloorRelease) -> None:
        self.store, self.node_id, self.auth = store, node_id, auth
        self.release_floor = release_floor
        self._sessions: dict[str, Client] = {}
        self._media: dict[str, MediaClient] = {}  # WHIP/WHEP sessions (signaling.api.whip.HttpMediaMember) by id
        self._ending: set[asyncio.Task] = set()  # revoked WebSockets being closed ...
        self._revoking: set[Client] = set()  # ... and their sessions (closed once)
        self._sub: Subscription | None = None
        self._task: asyncio.Task | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def all(self) -> list[Client]:
        return list(self._sessions.values())

    def for_endpoint(self, endpoint_id: str) -> list[Client]:
        return [s for s in self._sessions.values() if s.identity and s.identity.endpoint_id == endpoint_id]

    async def add(self, session: Client) -> list[Client]:
        """Register; returns older sessions of the same endpoint (a terminal that reconnected)."""
        older = []
        if session.identity.endpoint is not None and session.identity.kind == "endpoint":
            older = self.for_endpoint(session.identity.endpoint_id)
        self._sessions[session.session_id] = session
        await self.refresh_presence(session)
        await self._announce(session, online=True)
        return older

    def add_media(self, member: MediaClient) -> None:
        self._media[member.session_id] = member

    def remove_media(self, member: MediaClient) -> None:
        self._media.pop(member.session_id, None)

    async def remove(self, session: Client) -> None:
        if self._sessions.pop(session.session_id, None) is None or session.identity is None:
            return
        if session.identity.endpoint is None:
            return
        key = session.identity.endpoint_id
        current = await self.store.get_ephemeral("presence", key)
        if current and current.get("session") == session.session_id:
            await self.store.delete_ephemeral("presence", key)
            await self._announce(session, online=False)

    async def _announce(self, session: Client, online: bool) -> None:
        """Tell every node's operator consoles that an endpoint came or went (no polling needed)."""
        ident = session.identity
        if ident.endpoint is not None:
            await self.store.publish(
                MEETING_EVENTS,
                {
                    "type": "presence",
                    "endpoint_id": ident.endpoint_id,
                    "online": online,
                    "node": self.node_id,
                    "via": ident.kind,
                },
            )

    async def refresh_presence(self, session: Client) -> None:
        ident = session.identity
        if ident is None or ident.endpoint is None:
            return
        doc = {
            "node": self.node_id,
            "session": session.session_id,
            "name": ident.endpoint.name,
            "via": ident.kind,
            "since": session.connected_at,
            "meeting_id": session.meeting_id,
            "seen": time.time(),
        }
        await self.store.put_ephemeral("presence", ident.endpoint_id, doc, PRESENCE_TTL_S)

    async def publish_revocation(self, event: dict[str, Any]) -> None:
        await self.store.publish(MEETING_EVENTS, event)

    # scheduler notifications -------------------------------------------------------------
    async def start(self) -> None:
        self._sub = await self.store.subscribe(MEETING_EVENTS)
        self._task = asyncio.create_task(self._relay(), name="meeting-events")

    async def _relay(self) -> None:
        async for event in self._sub:
            try:
                await self._notify(event)
            except Exception:  # one bad event must not stop notifications
                log.exception("meeting event relay failed", extra={"event": event.get("type")})

    async def _notify(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "revoked":
            return await self._revoked(event)
        if kind == "presence":
            if event["online"] and event["via"] == "endpoint" and event["node"] != self.node_id:
                await self._replaced_elsewhere(event)
            fields = {k: v for k, v in event.items() if k != "type"}
            for session in self.all():
                if session.identity is not None and session.identity.kind == "operator":
                    await session.deliver(server_msg("presence", **fields))
            return
        if kind not in ("meeting_opened", "meeting_closed"):
            return
        invited = set(event.get("invited") or [])
        fields = {k: v for k, v in event.items() if k not in ("type", "invited")}
        for session in self.all():
            ident = session.identity
            if ident is None:
                continue
            in_meeting = session.meeting_id == event.get("meeting_id")
            if ident.kind == "operator" or ident.endpoint_id in invited or in_meeting:
                await session.deliver(server_msg(kind, **fields))
            if kind == "meeting_closed" and in_meeting:
                session.enqueue(lambda s=session: s.leave_meeting(reason="meeting closed"))
        if kind == "meeting_closed":  # WHIP/WHEP sessions have no one to tell: they just end
            for member in list(self._media.values()):
                if member.occurrence_id == event.get("occurrence_id"):
                    member.end(f"meeting closed ({event.get('reason', 'ended')})")

    async def _replaced_elsewhere(self, event: dict[str, Any]) -> None:
        """A room terminal connected to another node (it moved, or a load balancer sent it there):
        its session here is stale; close it so the meeting does not hold it twice."""
        for session in self.for_endpoint(event["endpoint_id"]):
            if session.identity.kind == "endpoint":
                await session.close(WS_CLOSE["replaced"], f"replaced by a newer connection on node {event['node']}")

    async def _revoked(self, event: dict[str, Any]) -> None:
        self.auth.note_revoked(event["key"], event["at"])
        # only tokens issued by then: a terminal that logged in again with its new secret before
        # this event reached this node keeps its new session. A key names an identity, or the
        # links it made or that speak for it, or a meeting's links (Identity.revocation_keys)
        await self._end_where(lambda ident, key=event["key"]: self.auth.revokes(key, ident))

    async def end_revoked(self) -> None:
        """After revocations are reloaded from the store: end the sessions whose token they revoke
        (issued before; a session opened after a revocation that this node had not read yet is one
        of them). The CLI's rotations reach a SQLite node only this way (its events are in-process)."""
        await self._end_where(self.auth.revoked)

    async def _end_where(self, revoked: Callable[[Any], bool]) -> None:
        """End this node's sessions whose identity ``revoked`` names, media first, and take the
        floor from each in its room. Closes run as tasks: one client slow to answer its close
        must not hold up the events channel."""
        reason = "revoked: account deleted, secret rotated or links withdrawn"
        members = [m for m in list(self._media.values()) if revoked(m.identity)]
        for member in members:
            member.end(reason, drop_floor=True)
        sessions = [s for s in self.all() if s.identity is not None and s not in self._revoking and revoked(s.identity)]
        rooms = {(s.occurrence_id, s.meeting_id, s.identity.endpoint_id) for s in sessions if s.occurrence_id}
        for session in sessions:  # closing the socket ends its reader: the session leaves, media first
            self._revoking.add(session)
            task = asyncio.create_task(
                session.close(WS_CLOSE["unauthorized"], reason), name=f"revoked:{session.session_id}"
            )
            self._ending.add(task)
            task.add_done_callback(lambda t, s=session: (self._ending.discard(t), self._revoking.discard(s)))
        for occurrence_id, meeting_id, endpoint_id in rooms:
            try:
                await self.release_floor(occurrence_id, meeting_id, endpoint_id)
            except Exception:  # the sessions end anyway; the chair can still take the floor back
                log.exception("taking the floor from a revoked endpoint failed", extra={"occurrence": occurrence_id})

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.stop()
        if self._task is not None:
            self._task.cancel()
        await asyncio.gather(*list(self._ending), return_exceptions=True)
        for session in self.all():
            await session.close(1001, "server shutting down")
