"""REST: call or hang up a SIP room system of a meeting (#14), for operators and the meeting's chair.

GET    /api/v1/meetings/{meeting_id}/sip                 the invited endpoints with a SIP URI, in call or not
POST   /api/v1/meetings/{meeting_id}/sip/{endpoint_id}   call it now (and again after failures) -> 202
DELETE /api/v1/meetings/{meeting_id}/sip/{endpoint_id}   hang up and stop calling it this occurrence -> 202

The gateway (ctx.sip, signaling.sip.gateway) does the calling; which node dials is its business.
"""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from endpoints.model import Endpoint
from signaling.api.http import ctx_of, identity, json_response
from signaling.context import Context, SipCalls
from signaling.errors import ApiError, conflict, forbidden, not_found, unavailable
from signaling.meetings.model import Meeting, Occurrence

routes = web.RouteTableDef()


async def _meeting(request: web.Request) -> tuple[Context, Meeting, str]:
    """The meeting, if the caller is an operator or its chair; the caller's name for the logs."""
    ctx = ctx_of(request)
    ident = identity(request)
    meeting = await ctx.meetings.get(request.match_info["meeting_id"])
    if ident.kind != "operator" and not (ident.kind == "endpoint" and ident.endpoint_id == meeting.chair):
        raise forbidden(f"only operators and the chair of meeting {meeting.id} may call or hang up its room systems")
    return ctx, meeting, f"{ident.kind}:{ident.id}"


async def _open_occurrence(ctx: Context, meeting: Meeting) -> Occurrence:
    occurrence = await ctx.meetings.current_occurrence(meeting.id, datetime.now(timezone.utc))
    if occurrence is None:
        raise conflict(f"meeting {meeting.id} is not open now: room systems are called while it is open")
    return occurrence


def _gateway(ctx: Context) -> SipCalls:
    if ctx.sip is None:
        raise unavailable("the SIP gateway is off on this server (settings: sip.enabled: false)")
    return ctx.sip


def _room_system(ctx: Context, meeting: Meeting, endpoint_id: str) -> Endpoint:
    if endpoint_id not in ctx.directory:
        raise not_found(f"no endpoint {endpoint_id!r} in the directory")
    endpoint = ctx.directory.get(endpoint_id)
    if endpoint.sip is None:
        raise ApiError(
            "no_sip_uri", f"endpoint {endpoint_id} ({endpoint.name}) has no sip: block with a uri in the directory", 409
        )
    if not ctx.meetings.is_invited(meeting, endpoint_id):
        raise conflict(f"endpoint {endpoint_id} ({endpoint.name}) is not invited to meeting {meeting.id}")
    return endpoint


@routes.get("/api/v1/meetings/{meeting_id}/sip")
async def list_room_systems(request: web.Request) -> web.Response:
    ctx, meeting, _ = await _meeting(request)
    occurrence = await ctx.meetings.current_occurrence(meeting.id, datetime.now(timezone.utc))
    people = await ctx.rooms.participants(occurrence.occurrence_id) if occurrence else []
    in_call = {p.get("endpoint_id") for p in people if p.get("kind") == "sip"}
    rows = []
    for endpoint in ctx.meetings.invited_endpoints(meeting):
        if endpoint.sip is None:
            continue
        state = ctx.sip.call_state(occurrence.occurrence_id, endpoint.id) if ctx.sip and occurrence else None
        rows.append(
            {
                "endpoint_id": endpoint.id,
                "name": endpoint.name,
                "uri": endpoint.sip.uri,
                "in_call": endpoint.id in in_call,
                "dialing": state,
            }
        )
    return json_response(
        {
            "meeting_id": meeting.id,
            "occurrence_id": occurrence.occurrence_id if occurrence else None,
            "gateway": ctx.sip is not None,
            "room_systems": rows,
        }
    )


@routes.post("/api/v1/meetings/{meeting_id}/sip/{endpoint_id}")
async def call_room_system(request: web.Request) -> web.Response:
    return await _act(request, "calling")


@routes.delete("/api/v1/meetings/{meeting_id}/sip/{endpoint_id}")
async def hang_up_room_system(request: web.Request) -> web.Response:
    return await _act(request, "hung_up")


async def _act(request: web.Request, state: str) -> web.Response:
    """Call the room system now (POST) or hang it up (DELETE) in the meeting's open occurrence."""
    ctx, meeting, by = await _meeting(request)
    gateway = _gateway(ctx)
    endpoint = _room_system(ctx, meeting, request.match_info["endpoint_id"])
    occurrence = await _open_occurrence(ctx, meeting)
    act = gateway.call_now if state == "calling" else gateway.hang_up
    await act(occurrence.occurrence_id, endpoint.id, by)
    body = {"meeting_id": meeting.id, "occurrence_id": occurrence.occurrence_id, "endpoint_id": endpoint.id}
    return json_response({**body, "state": state}, 202)
