"""Meeting value types: what a client sends (``MeetingSpec``), what is stored (``Meeting``) and one
dated instance of a meeting (``Occurrence``).

All stored times are aware datetimes in Asia/Ho_Chi_Minh: operators think in local wall-clock time
and occurrence ids carry the local start. JSON uses ISO-8601 with the +07:00 offset.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from mcu.api import VIDEO_CODECS

VN = ZoneInfo("Asia/Ho_Chi_Minh")
MeetingStatus = Literal["scheduled", "cancelled"]
OccurrenceState = Literal["scheduled", "open", "closed", "cancelled"]


_ID = r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]"
ENDPOINT_ID = f"^{_ID}$"
# The selector grammar of endpoints/selectors.py, for the API schema (the parser gives the messages).
SELECTOR = rf"^-?(all|(ep:|tree:)?{_ID}|tier:(central|province|district|commune)(@{_ID})?)$"
LOCAL_DATETIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
# Patterns are published in the schema but checked by the parsers, whose messages name the value.
Selector = Annotated[str, msgspec.Meta(max_length=200, extra_json_schema={"pattern": SELECTOR})]
LinkClass = Literal["fibre", "thin", "mobile"]
MediaMode = Literal["sfu", "mcu", "both"]
DEFAULT_VIDEO_CODECS = list(VIDEO_CODECS)  # PeerExtra's default too: absent means this order
# Every time a client gives (start, end, UNTIL, query windows, occurrence ids) lies in these years:
# far from datetime's year 1 and 9999, so zone conversions and the 10-year expansion cannot overflow.
MIN_YEAR, MAX_YEAR = 2000, 2199


# One annotated type per client-given field: create (MeetingSpec) and change (api_meetings.MeetingPatch)
# are decoded with the same constraints, so they accept and refuse the same values.
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="1-200 characters")]
ChairId = Annotated[
    str,
    msgspec.Meta(
        max_length=64,
        extra_json_schema={"pattern": ENDPOINT_ID},
        description="endpoint id of the chairing endpoint (central, province or district)",
    ),
]
Invited = Annotated[
    list[Selector],
    msgspec.Meta(min_length=1, max_length=500, description="endpoint selectors, e.g. 'tier:commune@hg-meo-vac'"),
]
LocalTime = Annotated[
    str,
    msgspec.Meta(
        max_length=40,
        extra_json_schema={"pattern": LOCAL_DATETIME},
        description="ISO-8601 date-time in years 2000-2199; without an offset it is Asia/Ho_Chi_Minh time",
    ),
]
Minutes = Annotated[int, msgspec.Meta(ge=1, le=720, description="1-720; give this or end")]
Recurrence = Annotated[
    str,
    msgspec.Meta(
        max_length=200,
        description=(
            "RRULE subset: FREQ=DAILY|WEEKLY, INTERVAL, BYDAY, COUNT, UNTIL; a series spans at most 10 years "
            "from its first occurrence (an open-ended rule stops there)"
        ),
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=4000)]
MediaModes = Annotated[
    dict[LinkClass, MediaMode],
    msgspec.Meta(
        description="per link class: sfu (forwarded streams), mcu (composite + mix) or both; "
        "default fibre=sfu, thin=mcu, mobile=mcu"
    ),
]

VideoCodecs = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=8, extra_json_schema={"pattern": "^([Vv][Pp]8|[Hh]264)$"})]],
    msgspec.Meta(
        min_length=1,
        max_length=len(VIDEO_CODECS),
        description="video codecs in order of preference, each VP8 or H264 (any case, stored upper case), "
        "no duplicates; a client offering none of them is refused; default [VP8, H264]",
    ),
]

DIAL_NUMBER = r"^[1-9][0-9]{3,8}$"  # 4-9 digits, no leading 0 (Vietnam's trunk prefix on a PBX)
PIN = r"^[0-9]{4,8}$"
DialNumber = Annotated[
    str,
    msgspec.Meta(
        max_length=9,
        extra_json_schema={"pattern": DIAL_NUMBER},
        description="number a SIP room system dials (sip:<number>@<server>): 4-9 digits, not starting "
        "with 0, unique among meetings; assigned (6 digits) when not given; cannot be changed later",
    ),
]
Pin = Annotated[
    str,
    msgspec.Meta(
        max_length=8,
        extra_json_schema={"pattern": PIN},
        description="4-8 digits a room system must key in after dialling; none: no PIN asked",
    ),
]


class MeetingSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A meeting as a client schedules it. Checked by ``validation.check_spec`` (MeetingError)."""

    title: Title
    chair: ChairId
    invited: Invited
    start: LocalTime
    end: LocalTime | None = None
    duration_minutes: Minutes | None = None
    recurrence: Recurrence | None = None
    description: Description | None = None
    media_modes: MediaModes | None = None
    video_codecs: VideoCodecs | None = None  # None: DEFAULT_VIDEO_CODECS
    dial_number: DialNumber | None = None  # None: assigned by the service
    pin: Pin | None = None


class Meeting(msgspec.Struct, kw_only=True):
    """A stored meeting (one-off or a series). ``start``/``end`` bound the first occurrence."""

    id: str
    title: str
    chair: str
    invited: list[str]
    start: datetime
    end: datetime
    recurrence: str | None = None
    description: str | None = None
    status: MeetingStatus = "scheduled"
    exdates: list[datetime] = msgspec.field(default_factory=list)  # starts of cancelled occurrences
    media_modes: dict[str, str] | None = None  # link class -> sfu | mcu | both (None: the node's policy)
    # upper case, in order of preference; a meeting stored before #13 reads as the default
    video_codecs: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_VIDEO_CODECS))
    # "" only in a meeting stored before #14 and not yet read: the service assigns and saves one on read
    dial_number: str = ""
    pin: str | None = None  # operators read it (every meeting route is theirs); /me/meetings never shows it
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def __post_init__(self) -> None:
        # JSON gives fixed-offset datetimes; keep everything in the named zone for wall-clock maths
        self.start, self.end = self.start.astimezone(VN), self.end.astimezone(VN)
        self.exdates = [d.astimezone(VN) for d in self.exdates]

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        body = msgspec.to_builtins(self)
        body["duration_minutes"] = int(self.duration.total_seconds() // 60)
        return body

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Meeting":
        doc = {k: v for k, v in doc.items() if k != "duration_minutes"}
        return msgspec.convert(doc, cls)


class Occurrence(msgspec.Struct, kw_only=True):
    """One dated instance of a meeting; ``occurrence_id`` = '<meeting_id>@<YYYYMMDDTHHMM local>'."""

    meeting_id: str
    occurrence_id: str
    starts_at: datetime
    ends_at: datetime
    state: OccurrenceState = "scheduled"

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Occurrence":
        occ = msgspec.convert(doc, cls)
        occ.starts_at, occ.ends_at = occ.starts_at.astimezone(VN), occ.ends_at.astimezone(VN)
        return occ


def occurrence_id(meeting_id: str, starts_at: datetime) -> str:
    return f"{meeting_id}@{starts_at.astimezone(VN):%Y%m%dT%H%M}"


def split_occurrence_id(occ_id: str) -> tuple[str, datetime] | None:
    """(meeting_id, local start minute) of a well-formed occurrence id, else None."""
    meeting_id, sep, stamp = occ_id.rpartition("@")
    if not sep or not meeting_id:
        return None
    try:
        minute = datetime.strptime(stamp, "%Y%m%dT%H%M").replace(tzinfo=VN)
    except ValueError:
        return None
    # no meeting occurs outside these years, and a minute near year 1 or 9999 cannot be expanded
    return (meeting_id, minute) if MIN_YEAR <= minute.year <= MAX_YEAR else None


def iso(dt: datetime) -> str:
    """Local ISO-8601 with offset, e.g. '2030-01-07T08:00:00+07:00'."""
    return dt.astimezone(VN).isoformat()
