"""Who may enter a meeting, and as what: one rule for WebSocket, WHIP and WHEP clients."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Protocol, cast

from mcu.api import PeerExtra
from signaling.auth.authenticator import Identity
from signaling.errors import forbidden, not_found
from signaling.meetings.model import Meeting, Occurrence
from signaling.meetings.service import MeetingService
from signaling.rooms import RoomHub

CHAIR_ROLES = ("chair", "operator")


class Admission(Protocol):
    """What ``admit`` reads (``signaling.context.Context``, which sits above this module)."""

    meetings: MeetingService
    rooms: RoomHub


def role_in(meetings: MeetingService, ident: Identity, meeting: Meeting) -> str:
    """operator, chair, participant or viewer; ApiError(forbidden) when not allowed at all."""
    if ident.kind == "operator":
        return "operator"
    if ident.kind == "link":
        if ident.meeting != meeting.id:
            raise forbidden(f"this join link is for another meeting, not {meeting.id}")
        return cast(str, ident.role)  # a join link always names its role (Authenticator.join_link)
    if ident.endpoint_id == meeting.chair:
        return "chair"
    if meetings.is_invited(meeting, ident.endpoint_id):
        return "participant"
    raise forbidden(f"endpoint {ident.endpoint_id} ({ident.name}) is not invited to meeting {meeting.id}")


async def admit(ctx: Admission, ident: Identity, meeting_id: str) -> tuple[Meeting, Occurrence, str, dict[str, Any]]:
    """(meeting, open occurrence, role, room state) for a client entering now, or ApiError."""
    meeting = await ctx.meetings.get(meeting_id)
    role = role_in(ctx.meetings, ident, meeting)
    occurrence = await ctx.meetings.current_occurrence(meeting.id, datetime.now(timezone.utc))
    if occurrence is None:
        raise not_found(f"meeting {meeting.id} is not open now; see its schedule")
    state = await ctx.rooms.state(occurrence.occurrence_id)
    if role not in CHAIR_ROLES:
        if state["locked"]:
            raise forbidden("the chair has locked this meeting")
        if ident.endpoint_id in state["removed"]:
            raise forbidden("the chair removed this endpoint from the meeting")
    return meeting, occurrence, role, state


def media_extra(meeting: Meeting, link: str) -> PeerExtra:
    """PeerSpec.extra for this meeting: its chosen media mode for the endpoint's link class, and
    its video codecs in order of preference (every peer: the media node serves and refuses by them)."""
    extra: PeerExtra = {"video_codecs": list(meeting.video_codecs)}
    mode = (meeting.media_modes or {}).get(link)
    if mode:
        extra["media_mode"] = mode
    return extra
