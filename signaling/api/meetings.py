"""REST: schedule and inspect meetings, occurrences, attendance and the live room."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

import msgspec
from aiohttp import web

from signaling.errors import bad_request, forbidden
from signaling.api.http import ctx_of, identity, json_response, read_body, require_operator
from signaling.meetings.model import (
    ChairId,
    Description,
    Invited,
    LocalTime,
    MediaModes,
    MeetingSpec,
    Minutes,
    Pin,
    Recurrence,
    Title,
    VideoCodecs,
)
from signaling.meetings.validation import parse_time

routes = web.RouteTableDef()
UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class MeetingPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Fields to change; absent fields stay. ``expected_version`` guards against lost updates.
    The field types are MeetingSpec's, so a change is held to the limits a new meeting is."""

    title: Title | Unset = UNSET
    description: Description | None | Unset = UNSET
    chair: ChairId | Unset = UNSET
    invited: Invited | Unset = UNSET
    start: LocalTime | Unset = UNSET
    end: LocalTime | None | Unset = UNSET
    duration_minutes: Minutes | None | Unset = UNSET
    recurrence: Recurrence | None | Unset = UNSET
    media_modes: MediaModes | None | Unset = UNSET
    video_codecs: VideoCodecs | None | Unset = UNSET  # None: back to the default order
    pin: Pin | None | Unset = UNSET  # None: no PIN asked any more; dial_number cannot change
    expected_version: Annotated[int, msgspec.Meta(ge=1)] | None = None


def _when(request: web.Request, name: str, default: datetime) -> datetime:
    """A query time: the meetings' own parser, so the same years (2000-2199) and messages apply."""
    text = request.query.get(name)
    return parse_time(text, name) if text else default


@routes.get("/api/v1/meetings")
async def list_meetings(request: web.Request) -> web.Response:
    require_operator(request)
    active = request.query.get("active", "false").lower() in ("1", "true", "yes")
    meetings = await ctx_of(request).meetings.list(active_only=active)
    return json_response({"meetings": [m.to_dict() for m in meetings]})


@routes.post("/api/v1/meetings")
async def create_meeting(request: web.Request) -> web.Response:
    require_operator(request)
    spec = await read_body(request, MeetingSpec)
    meeting = await ctx_of(request).meetings.create(spec)
    return json_response(meeting.to_dict(), 201)


@routes.get("/api/v1/meetings/{meeting_id}")
async def get_meeting(request: web.Request) -> web.Response:
    require_operator(request)
    ctx = ctx_of(request)
    meeting = await ctx.meetings.get(request.match_info["meeting_id"])
    body = meeting.to_dict()
    body["invited_endpoints"] = [ep.id for ep in ctx.meetings.invited_endpoints(meeting)]
    return json_response(body)


@routes.patch("/api/v1/meetings/{meeting_id}")
async def patch_meeting(request: web.Request) -> web.Response:
    require_operator(request)
    patch = await read_body(request, MeetingPatch)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not UNSET and k != "expected_version"}
    if not changes:
        raise bad_request("nothing to change: send at least one field")
    meeting = await ctx_of(request).meetings.update(
        request.match_info["meeting_id"], changes, expected_version=patch.expected_version
    )
    return json_response(meeting.to_dict())


@routes.delete("/api/v1/meetings/{meeting_id}")
async def cancel_meeting(request: web.Request) -> web.Response:
    require_operator(request)
    meeting = await ctx_of(request).meetings.cancel(request.match_info["meeting_id"])
    return json_response(meeting.to_dict())


@routes.get("/api/v1/meetings/{meeting_id}/occurrences")
async def occurrences(request: web.Request) -> web.Response:
    require_operator(request)
    now = datetime.now(timezone.utc)
    frm, to = _when(request, "from", now - timedelta(days=1)), _when(request, "to", now + timedelta(days=31))
    if to <= frm or to - frm > timedelta(days=400):
        raise bad_request("'to' must be after 'from' and at most 400 days later")
    occ = await ctx_of(request).meetings.occurrences(request.match_info["meeting_id"], frm, to)
    return json_response({"occurrences": [o.to_dict() for o in occ]})


@routes.delete("/api/v1/meetings/{meeting_id}/occurrences/{occurrence_id}")
async def cancel_occurrence(request: web.Request) -> web.Response:
    require_operator(request)
    m = request.match_info
    meeting = await ctx_of(request).meetings.cancel_occurrence(m["meeting_id"], m["occurrence_id"])
    return json_response(meeting.to_dict())


@routes.get("/api/v1/meetings/{meeting_id}/occurrences/{occurrence_id}/attendance")
async def attendance(request: web.Request) -> web.Response:
    require_operator(request)
    m = request.match_info
    ctx = ctx_of(request)
    await ctx.meetings.get(m["meeting_id"])
    if not m["occurrence_id"].startswith(m["meeting_id"] + "@"):
        raise bad_request(f"occurrence {m['occurrence_id']!r} does not belong to meeting {m['meeting_id']!r}")
    record = await ctx.meetings.attendance(m["occurrence_id"])
    return json_response(record.to_dict() if hasattr(record, "to_dict") else record)


@routes.get("/api/v1/meetings/{meeting_id}/live")
async def live(request: web.Request) -> web.Response:
    require_operator(request)
    ctx = ctx_of(request)
    meeting = await ctx.meetings.get(request.match_info["meeting_id"])
    occ = await ctx.meetings.current_occurrence(meeting.id, datetime.now(timezone.utc))
    if occ is None:
        return json_response({"meeting_id": meeting.id, "open": False})
    state = await ctx.rooms.state(occ.occurrence_id)
    people = await ctx.rooms.participants(occ.occurrence_id)
    body = {"meeting_id": meeting.id, "open": True, "occurrence_id": occ.occurrence_id, "participants": people, **state}
    if (
        ctx.placement is not None
    ):  # per endpoint on its media node(s): sending, kbit/s, loss, quality (mcu.meeting.quality)
        links = await ctx.placement.link_stats(meeting.id)
        body["media"] = {k: v for k, v in links.items() if not k.startswith("cascade:")}
        body["cascade_links"] = {k: v for k, v in links.items() if k.startswith("cascade:")}  # edge nodes' links
    return json_response(body)


@routes.get("/api/v1/me/meetings")
async def my_meetings(request: web.Request) -> web.Response:
    ident = identity(request)
    if ident.endpoint is None:
        raise forbidden("only endpoints and endpoint links have their own meetings")
    ctx = ctx_of(request)
    now = datetime.now(timezone.utc)
    out = []
    for meeting in await ctx.meetings.list(active_only=True):
        if not ctx.meetings.is_invited(meeting, ident.endpoint_id):  # the chair counts as invited
            continue
        if ident.meeting is not None and meeting.id != ident.meeting:  # a link opens one meeting only
            continue
        for occ in await ctx.meetings.occurrences(meeting.id, now - timedelta(hours=12), now + timedelta(days=7)):
            if occ.ends_at > now:
                out.append(dict(occ.to_dict(), title=meeting.title))
    out.sort(key=lambda o: o["starts_at"])
    return json_response({"endpoint_id": ident.endpoint_id, "occurrences": out})
