"""Recording a meeting: one use case for the operator's REST route (signaling.api.recordings), the
chair's WebSocket action (signaling.ws.actions) and the node-to-node record call
(signaling.cluster.media_api).

The placement records where the meeting's media runs: on this node, or on the node of the cluster
the meeting is pinned to, which runs this same use case. Its refusals are the seam's MediaUnavailable
and MediaConflict (mcu.api), which ``signaling.errors.classify`` answers as 503 and 409.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from mcu.api import Json, JsonObject
from signaling.cluster.placement import Placement
from signaling.errors import unavailable
from signaling.meetings.service import MeetingService
from signaling.rooms import RoomHub


class RecordingContext(Protocol):
    """What recording needs of the node's context (signaling.context.Context)."""

    placement: Placement | None
    meetings: MeetingService
    rooms: RoomHub


async def set_recording(ctx: RecordingContext, meeting_id: str, on: bool) -> JsonObject:
    """Start (``on``) or stop recording a meeting; returns the recording's entry."""
    if ctx.placement is None:
        raise unavailable("recording is not enabled on this node")
    return await ctx.placement.record(meeting_id, on, lambda: labels(ctx, meeting_id))


async def labels(ctx: RecordingContext, meeting_id: str) -> JsonObject:
    """Meeting id, title, open occurrence and who is in it, for the recording's tags."""
    meeting = await ctx.meetings.get(meeting_id)  # 404 for an unknown meeting
    meta: JsonObject = {"meeting_id": meeting.id, "title": meeting.title, "participants": []}
    occ = await ctx.meetings.current_occurrence(meeting.id, datetime.now(UTC))
    if occ is not None:
        meta["occurrence_id"] = occ.occurrence_id
        names: list[str] = []
        for p in await ctx.rooms.participants(occ.occurrence_id):
            ep, name = p.get("endpoint_id"), p.get("name") or p.get("display_name")
            names.append(f"{name} ({ep})" if name and ep and name != ep else (name or ep or "?"))
        meta["participants"] = list[Json](sorted(set(names)))
    return meta
