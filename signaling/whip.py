"""WHIP ingest (RFC 9725) and WHEP egress: standard HTTP offer/answer so that OBS, FFmpeg,
GStreamer or any WHIP/WHEP player can publish into or watch a meeting.

POST /whip/{meeting_id}   Content-Type application/sdp, Bearer token -> 201, answer SDP, Location
POST /whep/{meeting_id}   the same for a receive-only peer: the floor holder / active speaker, or
                          with ?view=composite the meeting's composite picture and mixed sound
DELETE <Location>         ends the session

A resource joins the meeting like a WebSocket client does (same authorisation, attendance and
participant list); it stays in the room while its peer lives and leaves when the peer's ICE fails.
Trickle ICE (PATCH) is not offered: clients send complete offers, and PATCH gets 405 with Allow.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from signaling.auth import Identity
from signaling.errors import ApiError, bad_request, forbidden, not_found, unavailable
from signaling.http import CTX, ctx_of, identity, read_raw
from signaling.policy import admit, media_extra
from signaling.media import PeerSpec
from signaling.rooms import PRESENCE_TTL_S

log = logging.getLogger("giaoban.whip")
routes = web.RouteTableDef()
SDP = "application/sdp"
MAX_SDP = 60_000


@dataclass(eq=False)
class HttpMediaMember:
    """A WHIP/WHEP session as a room member: it receives room events like a WebSocket client."""

    session_id: str
    endpoint_id: str
    identity: Identity
    meeting_id: str
    occurrence_id: str
    role: str
    kind: str  # whip | whep
    peer: Any = None
    task: asyncio.Task | None = field(default=None, repr=False)

    def info(self) -> dict[str, Any]:
        return {"endpoint_id": self.endpoint_id, "name": self.identity.name, "role": self.role, "kind": self.kind}

    async def on_room_event(self, msg: dict[str, Any], text: str) -> None:
        if msg.get("type") == "mute_request" and self.peer is not None:
            await self.peer.set_muted(msg["kind"], msg["muted"])


RESOURCES = web.AppKey("whip_resources", dict)


def _resources(request: web.Request) -> dict[str, HttpMediaMember]:
    return request.app[RESOURCES]


async def _read_sdp(request: web.Request) -> str:
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype != SDP:
        raise ApiError("unsupported_media_type", f"expected Content-Type {SDP}, got {ctype or 'nothing'}", 415)
    raw = await read_raw(request, MAX_SDP)  # every segment, bounded in size and time
    try:
        sdp = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("SDP offer is not UTF-8 text") from None
    if not sdp.startswith("v=0"):
        raise bad_request("body is not an SDP offer (it must start with 'v=0')")
    return sdp


async def _open(request: web.Request, kind: str) -> web.Response:
    ctx = ctx_of(request)
    if ctx.router is None:
        raise unavailable("this server runs without a media node (media: none)")
    ident = identity(request)
    sdp = await _read_sdp(request)
    meeting, occurrence, role, _ = await admit(ctx, ident, request.match_info["meeting_id"])
    if kind == "whip" and role == "viewer":
        raise forbidden("a viewer link cannot publish; use WHEP to watch")
    member = HttpMediaMember(f"{kind}-{secrets.token_hex(8)}", ident.endpoint_id, ident, meeting.id,
                             occurrence.occurrence_id, role, kind)
    link = str(ident.endpoint.link) if ident.endpoint else "fibre"
    extra = {"via": kind, "renegotiate": False, **media_extra(meeting, link)}
    view = request.query.get("view", "")
    if kind == "whep" and view not in ("", "speaker", "composite"):
        raise bad_request(f"view must be 'speaker' (the floor holder / active speaker) or 'composite', got {view!r}", "view")
    if view == "composite":
        extra["media_mode"] = "mcu"  # the meeting's composite picture and mixed sound (live streaming)
    spec = PeerSpec(meeting.id, ident.endpoint_id, ident.name, role, link, publish=kind == "whip", extra=extra)
    member.peer = await ctx.router.open_peer(spec, _drop_events)
    try:
        answer = await member.peer.handle_offer(sdp)
    except Exception as exc:
        await member.peer.close()
        raise bad_request(f"the SDP offer was not accepted: {exc}") from None
    await ctx.rooms.enter(member.occurrence_id, member, member.info())
    ctx.rooms.participants_changed(member.occurrence_id)
    if ident.kind != "operator":
        await ctx.meetings.record_join(member.occurrence_id, ident.endpoint_id, datetime.now(timezone.utc), via=kind)
    _resources(request)[member.session_id] = member
    member.task = asyncio.create_task(_keep_alive(request.app, member), name=f"{kind}:{member.session_id}")
    log.info("%s session opened", kind, extra={"meeting": meeting.id, "endpoint": ident.endpoint_id})
    location = f"/{kind}/{meeting.id}/{member.session_id}"
    return web.Response(status=201, text=answer, content_type=SDP, headers={
        "Location": location, "ETag": '"' + hashlib.sha256(answer.encode()).hexdigest()[:16] + '"'})


async def _drop_events(event: dict[str, Any]) -> None:
    """WHIP/WHEP have no channel for server-made offers; the node keeps their m-lines fixed."""


async def _keep_alive(app: web.Application, member: HttpMediaMember) -> None:
    ctx = app[CTX]
    try:
        while not getattr(member.peer, "closed", False):
            await asyncio.sleep(min(5.0, PRESENCE_TTL_S / 3))
            await ctx.rooms.heartbeat(member.occurrence_id, member.session_id, member.info())
    finally:
        app[RESOURCES].pop(member.session_id, None)
        await _release(ctx, member)


async def _release(ctx, member: HttpMediaMember) -> None:
    await member.peer.close()
    await ctx.rooms.exit(member.occurrence_id, member.session_id)
    ctx.rooms.participants_changed(member.occurrence_id)
    if member.identity.kind != "operator":
        await ctx.meetings.record_leave(member.occurrence_id, member.endpoint_id, datetime.now(timezone.utc))
    log.info("%s session closed", member.kind, extra={"meeting": member.meeting_id, "endpoint": member.endpoint_id})


async def _delete(request: web.Request, kind: str) -> web.Response:
    ident = identity(request)
    member = _resources(request).get(request.match_info["resource_id"])
    if member is None or member.kind != kind or member.meeting_id != request.match_info["meeting_id"]:
        raise not_found(f"no {kind.upper()} session {request.match_info['resource_id']}")
    if ident.id != member.identity.id and ident.kind != "operator":
        raise forbidden(f"this {kind.upper()} session belongs to another client")
    if member.task is not None:
        member.task.cancel()  # its finally releases everything
        await asyncio.gather(member.task, return_exceptions=True)
    return web.Response(status=200)


@routes.post("/whip/{meeting_id}")
async def whip_post(request: web.Request) -> web.Response:
    return await _open(request, "whip")


@routes.delete("/whip/{meeting_id}/{resource_id}")
async def whip_delete(request: web.Request) -> web.Response:
    return await _delete(request, "whip")


@routes.post("/whep/{meeting_id}")
async def whep_post(request: web.Request) -> web.Response:
    return await _open(request, "whep")


@routes.delete("/whep/{meeting_id}/{resource_id}")
async def whep_delete(request: web.Request) -> web.Response:
    return await _delete(request, "whep")


async def stop_all(app: web.Application) -> None:
    """On shutdown: end every WHIP/WHEP session."""
    members = list(app[RESOURCES].values())
    for member in members:
        if member.task is not None:
            member.task.cancel()
    await asyncio.gather(*(m.task for m in members if m.task), return_exceptions=True)
