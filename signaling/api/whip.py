"""WHIP ingest (RFC 9725) and WHEP egress: standard HTTP offer/answer so that OBS, FFmpeg,
GStreamer or any WHIP/WHEP player can publish into or watch a meeting.

POST /whip/{meeting_id}   Content-Type application/sdp, Bearer token -> 201, answer SDP, Location
POST /whep/{meeting_id}   the same for a receive-only peer: the floor holder / active speaker, or
                          with ?view=composite the meeting's composite picture and mixed sound
PATCH <Location>          trickle ICE (RFC 9725 section 4.3): Content-Type
                          application/trickle-ice-sdpfrag -> 204; If-Match must be the 201's ETag or *
DELETE <Location>         ends the session

A resource joins the meeting like a WebSocket client does (same authorisation, attendance and
participant list); it stays in the room while its peer lives and leaves when the peer's ICE fails.
An offer may come without candidates (broadcast tools send them by PATCH afterwards); our answer is
full ICE with all our candidates in it. ICE restarts are not done: a PATCH with new credentials
gets 422 (RFC 9725: a server that takes trickle ICE but no restarts), and the client starts a new session.

Hardening (#11): an offer without usable media is refused (signaling.guard.offer_check); sessions are
capped per token and per meeting across the cluster (whip_caps.py); a chair's
``removed`` and a revocation (SessionRegistry) end a session at once, media first.
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

from signaling.auth.authenticator import Identity
from signaling.errors import ApiError, bad_request, forbidden, not_found, unavailable
from signaling.api.http import CTX, ctx_of, identity, read_raw
from signaling.api.whip_caps import refresh, reserve, token_fingerprint, unreserve
from signaling.api.trickle import TRICKLE, OfferIce, offer_ice, parse_fragment
from signaling.guard.offer_check import check_offer
from signaling.auth.policy import CHAIR_ROLES, admit, media_extra
from mcu.api import MediaPeer, PeerExtra, PeerSpec
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
    token_fp: str = ""  # a digest of the bearer token: the per-token cap counts it, never the token
    peer: MediaPeer | None = None
    task: asyncio.Task | None = field(default=None, repr=False)
    ended: str = ""  # why end() was called ("" while the session may live)
    drop_floor: bool = False  # revoked: its release takes the floor from it too
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # end() sets it
    etag: str = ""  # the ICE session's entity tag (RFC 9725 section 4.3.1): a PATCH's If-Match names it
    ice: OfferIce = field(default_factory=lambda: offer_ice(""))  # the offer's credentials and mids

    @property
    def identity_key(self) -> str:
        return f"{self.identity.kind}:{self.identity.id}"  # as revocations name it

    def info(self) -> dict[str, Any]:
        return {"endpoint_id": self.endpoint_id, "name": self.identity.name, "role": self.role, "kind": self.kind}

    async def on_room_event(self, msg: dict[str, Any], text: str) -> None:
        if msg.get("type") == "mute_request" and self.peer is not None:
            await self.peer.set_muted(msg["kind"], msg["muted"])
        elif msg.get("type") == "removed":  # the relay passes only events addressed to this endpoint
            self.end(f"removed by {msg.get('by')}")

    def end(self, reason: str, drop_floor: bool = False) -> None:
        """End the session now (removal, revocation); its task's finally releases the media peer
        first. Does not wait: room relays and the events channel call this."""
        self.drop_floor = self.drop_floor or drop_floor
        if self.ended:
            return
        self.ended = reason
        log.info(
            "%s session ended: %s", self.kind, reason, extra={"meeting": self.meeting_id, "endpoint": self.endpoint_id}
        )
        self.wake.set()  # not task.cancel(): a task cancelled before its first step skips its finally


RESOURCES = web.AppKey("whip_resources", dict)


def _resources(request: web.Request) -> dict[str, HttpMediaMember]:
    return request.app[RESOURCES]


async def _read_text(request: web.Request, ctype_wanted: str, what: str) -> str:
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype != ctype_wanted:
        raise ApiError("unsupported_media_type", f"expected Content-Type {ctype_wanted}, got {ctype or 'nothing'}", 415)
    raw = await read_raw(request, MAX_SDP)  # every segment, bounded in size and time
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"{what} is not UTF-8 text") from None


async def _read_sdp(request: web.Request) -> str:
    sdp = await _read_text(request, SDP, "SDP offer")
    if not sdp.startswith("v=0"):
        raise bad_request("body is not an SDP offer (it must start with 'v=0')")
    return sdp


async def _open(request: web.Request, kind: str) -> web.Response:
    ctx = ctx_of(request)
    if ctx.placement is None:
        raise unavailable("this server runs without a media node (media: none)")
    ident = identity(request)
    sdp = await _read_sdp(request)
    view = request.query.get("view", "")
    if kind == "whep" and view not in ("", "speaker", "composite"):
        raise bad_request(
            f"view must be 'speaker' (the floor holder / active speaker) or 'composite', got {view!r}", "view"
        )
    meeting, occurrence, role, _ = await admit(ctx, ident, request.match_info["meeting_id"])
    if kind == "whip" and role == "viewer":
        raise forbidden("a viewer link cannot publish; use WHEP to watch")
    check_offer(sdp, kind)  # no usable media: 400 before any peer, place or room entry is made
    member = HttpMediaMember(
        f"{kind}-{secrets.token_hex(8)}",
        ident.endpoint_id,
        ident,
        meeting.id,
        occurrence.occurrence_id,
        role,
        kind,
        token_fingerprint(request),
        ice=offer_ice(sdp),
    )
    link = str(ident.endpoint.link) if ident.endpoint else "fibre"
    extra: PeerExtra = {"via": kind, "renegotiate": False, **media_extra(meeting, link)}
    if view == "composite":
        extra["media_mode"] = "mcu"  # the meeting's composite picture and mixed sound (live streaming)
    # the media node keeps one peer per endpoint id (a newer one replaces the older): a publisher
    # keeps its own id (the floor names it), each viewer gets its own, so several may share a link
    media_id = ident.endpoint_id if kind == "whip" else f"{ident.endpoint_id}~{member.session_id}"
    spec = PeerSpec(meeting.id, media_id, ident.name, role, link, publish=kind == "whip", extra=extra)
    await reserve(ctx, member)
    try:
        answer = await _start(ctx, member, spec, sdp)
    except BaseException:
        await unreserve(ctx, member)
        raise
    try:
        removed = await _removed_meanwhile(ctx, member)
        if not await ctx.scheduler.ensure_open(meeting, occurrence):  # registered: a close from here on ends it
            member.end("meeting closed")
    except BaseException:  # the store failing: no task will ever release what _start made
        await asyncio.shield(_release(ctx, member))
        raise
    if ctx.auth.revoked(ident):  # revoked while it opened (or before, unread yet); as session.py checks
        member.end("revoked: account deleted or secret rotated")
    if removed or member.ended:  # a removal or revocation raced this request
        await _release(ctx, member)
        raise forbidden(
            f"this {kind.upper()} session was ended while it opened ({member.ended or 'removed by the chair'})"
        )
    member.etag = '"' + hashlib.sha256(answer.encode()).hexdigest()[:16] + '"'
    _resources(request)[member.session_id] = member
    member.task = asyncio.create_task(_keep_alive(request.app, member), name=f"{kind}:{member.session_id}")
    log.info("%s session opened", kind, extra={"meeting": meeting.id, "endpoint": ident.endpoint_id})
    location = f"/{kind}/{meeting.id}/{member.session_id}"
    return web.Response(
        status=201,
        text=answer,
        content_type=SDP,
        headers={"Location": location, "ETag": member.etag, "Accept-Patch": TRICKLE},
    )


async def _start(ctx, member: HttpMediaMember, spec: PeerSpec, sdp: str) -> str:
    """Media peer, answer, room entry, attendance; on any failure nothing of it is left behind."""
    member.peer = await ctx.placement.open_peer(spec, _drop_events)
    try:
        answer = await member.peer.handle_offer(sdp)
    except Exception as exc:
        await member.peer.close()
        raise bad_request(f"the SDP offer was not accepted: {exc}") from None
    try:
        ctx.sessions.add_media(member)  # revocations reach it from here on
        await ctx.rooms.enter(member.occurrence_id, member, member.info())
        ctx.rooms.participants_changed(member.occurrence_id)
        if member.identity.kind != "operator":
            await ctx.meetings.record_join(
                member.occurrence_id, member.endpoint_id, datetime.now(timezone.utc), via=member.kind
            )
    except BaseException:
        await asyncio.shield(_release(ctx, member, reserved=False))
        raise
    return answer


async def _removed_meanwhile(ctx, member: HttpMediaMember) -> bool:
    """admit() read the room before the peer was made; a removal since then must hold too."""
    if member.role in CHAIR_ROLES:
        return False
    return member.endpoint_id in (await ctx.rooms.state(member.occurrence_id))["removed"]


async def _drop_events(event: dict[str, Any]) -> None:
    """WHIP/WHEP have no channel for server-made offers; the node keeps their m-lines fixed."""


async def _keep_alive(app: web.Application, member: HttpMediaMember) -> None:
    ctx = app[CTX]
    try:
        while member.peer is None or not member.peer.closed:
            try:
                await asyncio.wait_for(member.wake.wait(), min(5.0, PRESENCE_TTL_S / 3))
                return  # ended: the finally releases it
            except asyncio.TimeoutError:
                pass
            await ctx.rooms.heartbeat(member.occurrence_id, member.session_id, member.info())
            await refresh(ctx, member)
    finally:
        app[RESOURCES].pop(member.session_id, None)
        await asyncio.shield(_release(ctx, member))  # a second cancel (shutdown) must not cut it short


async def _release(ctx, member: HttpMediaMember, reserved: bool = True) -> None:
    """Media first (a removed publisher stops at once), then the room, attendance and caps."""
    ctx.sessions.remove_media(member)
    await member.peer.close()
    if member.drop_floor:
        await ctx.rooms.release_floor(
            member.occurrence_id, member.meeting_id, member.endpoint_id, "revocation", ctx.placement
        )
    await ctx.rooms.exit(member.occurrence_id, member.session_id)
    ctx.rooms.participants_changed(member.occurrence_id)
    if member.identity.kind != "operator":
        await ctx.meetings.record_leave(member.occurrence_id, member.endpoint_id, datetime.now(timezone.utc))
    if reserved:
        await unreserve(ctx, member)
    log.info("%s session closed", member.kind, extra={"meeting": member.meeting_id, "endpoint": member.endpoint_id})


def _owned(request: web.Request, kind: str) -> HttpMediaMember:
    """The session the path names, if the caller made it (or is an operator); else 404 / 403."""
    ident = identity(request)
    member = _resources(request).get(request.match_info["resource_id"])
    if member is None or member.kind != kind or member.meeting_id != request.match_info["meeting_id"]:
        raise not_found(f"no {kind.upper()} session {request.match_info['resource_id']}")
    if ident.id != member.identity.id and ident.kind != "operator":
        raise forbidden(f"this {kind.upper()} session belongs to another client")
    return member


async def _trickle(request: web.Request, kind: str) -> web.Response:
    """PATCH: trickled candidates (and end-of-candidates) for the session's peer; 204."""
    member = _owned(request, kind)
    text = await _read_text(request, TRICKLE, "the trickle ICE fragment")
    if_match = request.headers.get("If-Match")
    if if_match is not None and not _etag_matches(if_match, member.etag):
        raise ApiError(
            "precondition_failed",
            f"If-Match {if_match[:60]} does not name this {kind.upper()} session (its ETag is {member.etag})",
            412,
        )
    fragment = parse_fragment(text, member.ice)
    if fragment.restarts(member.ice):
        raise ApiError(
            "ice_restart_unsupported",
            f"ICE restart is not supported: the fragment has new ICE credentials (ice-ufrag/ice-pwd). "
            f"End this session (DELETE {request.path}) and publish again with a new offer",
            422,
        )
    peer = member.peer
    if member.ended or peer is None or peer.closed:
        raise not_found(f"the {kind.upper()} session {member.session_id} has ended")
    for candidate in fragment.candidates:
        await peer.add_ice_candidate(candidate)
    if fragment.end:
        await peer.add_ice_candidate(None)
    return web.Response(status=204)


def _etag_matches(if_match: str, etag: str) -> bool:
    """RFC 9110 section 13.1.1: '*' or a list of tags (strong comparison; the quotes may be left out)."""
    tags = [t.strip() for t in if_match.split(",")]
    return "*" in tags or any(t == etag or f'"{t}"' == etag for t in tags)


async def _delete(request: web.Request, kind: str) -> web.Response:
    member = _owned(request, kind)
    member.end("DELETE")
    if member.task is not None:
        await asyncio.gather(member.task, return_exceptions=True)  # its finally releases everything
    return web.Response(status=200)


@routes.post("/whip/{meeting_id}")
async def whip_post(request: web.Request) -> web.Response:
    return await _open(request, "whip")


@routes.delete("/whip/{meeting_id}/{resource_id}")
async def whip_delete(request: web.Request) -> web.Response:
    return await _delete(request, "whip")


@routes.patch("/whip/{meeting_id}/{resource_id}")
async def whip_patch(request: web.Request) -> web.Response:
    return await _trickle(request, "whip")


@routes.patch("/whep/{meeting_id}/{resource_id}")
async def whep_patch(request: web.Request) -> web.Response:
    return await _trickle(request, "whep")


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
        member.end("server shutting down")
    await asyncio.gather(*(m.task for m in members if m.task), return_exceptions=True)
