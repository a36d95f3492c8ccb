"""Checks a ``MeetingSpec`` against the directory and the clock; every failure is a MeetingError
naming the field. Nothing here touches the store, so a rejected spec changes nothing.

Decisions:
* a commune cannot chair: it is the bottom tier, a meeting is chaired from a tier that has
  endpoints below it (district, province, central) - communes raise hands instead;
* one occurrence lasts 1..720 minutes, whether given as ``end`` or ``duration_minutes``;
* a new (or moved) start may lie at most ``PAST_SLACK`` in the past, so 'start now' still works;
* the invited selectors must select at least one endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from endpoints.directory import Directory, Endpoint, Tier
from signaling.meetings import recurrence
from signaling.meetings.errors import MeetingError
from signaling.meetings.model import VN, MeetingSpec

TITLE_MAX = 200
DESCRIPTION_MAX = 4000
MAX_DURATION_MIN = 720
PAST_SLACK = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Checked:
    """A valid spec with times resolved to aware local datetimes and the rule in canonical text."""

    title: str
    chair: str
    invited: list[str]
    start: datetime
    end: datetime
    recurrence: str | None
    description: str | None


def check_spec(spec: MeetingSpec, directory: Directory, now: datetime, *, check_past: bool = True) -> Checked:
    title = _title(spec.title)
    description = _description(spec.description)
    chair = _chair(spec.chair, directory)
    invited = _invited(spec.invited, directory)
    start = parse_time(spec.start, "start")
    end = _end(spec, start)
    rule_text = _recurrence(spec.recurrence, start)
    if check_past and start < now - PAST_SLACK:
        raise MeetingError("start", f"start {start.isoformat()} is in the past (now is "
                                    f"{now.astimezone(VN):%Y-%m-%dT%H:%M}+07:00); choose a later time")
    return Checked(title, chair.id, invited, start, end, rule_text, description)


def parse_time(text: object, field: str) -> datetime:
    """ISO-8601 date-time; naive means Asia/Ho_Chi_Minh, an offset is converted to it."""
    if not isinstance(text, str):
        raise MeetingError(field, f"{field} must be an ISO-8601 date-time string, e.g. 2030-01-07T08:00")
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MeetingError(field, f"{field} {text!r} is not an ISO-8601 date-time; use e.g. 2030-01-07T08:00 "
                                  f"(local time) or 2030-01-07T01:00Z") from None
    value = value.replace(tzinfo=VN) if value.tzinfo is None else value.astimezone(VN)
    return value.replace(microsecond=0)


def _title(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MeetingError("title", "title is empty; give the meeting a name (1-200 characters)")
    if len(value.strip()) > TITLE_MAX:
        raise MeetingError("title", f"title has {len(value.strip())} characters; at most {TITLE_MAX} are allowed")
    return value.strip()


def _description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > DESCRIPTION_MAX:
        raise MeetingError("description", f"description must be text of at most {DESCRIPTION_MAX} characters")
    return value.strip() or None


def _chair(value: object, directory: Directory) -> Endpoint:
    if not isinstance(value, str) or value not in directory:
        raise MeetingError("chair", f"chair {value!r} is not an endpoint in the directory")
    chair = directory.get(value)
    if chair.tier is Tier.COMMUNE:
        raise MeetingError("chair", f"chair {value!r} is a commune: a commune cannot chair a meeting; "
                                    f"choose its district or a higher tier")
    return chair


def _invited(value: object, directory: Directory) -> list[str]:
    if not isinstance(value, list) or not value:
        raise MeetingError("invited", "invited is empty; give at least one selector, e.g. 'tier:commune@hg-meo-vac'")
    if not all(isinstance(s, str) for s in value):
        raise MeetingError("invited", "invited must be a list of selector strings")
    try:
        selected = directory.select(value)
    except (ValueError, LookupError) as exc:  # SelectorError, UnknownEndpointError
        raise MeetingError("invited", f"invited: {exc}") from None
    if not selected:
        raise MeetingError("invited", f"invited {value!r} selects no endpoint")
    return [s.strip() for s in value]


def _end(spec: MeetingSpec, start: datetime) -> datetime:
    if spec.end is not None and spec.duration_minutes is not None:
        raise MeetingError("end", "give either end or duration_minutes, not both")
    if spec.end is None and spec.duration_minutes is None:
        raise MeetingError("duration_minutes", "give end or duration_minutes (1-720 minutes)")
    if spec.end is not None:
        end = parse_time(spec.end, "end")
        if end <= start:
            raise MeetingError("end", f"end {end.isoformat()} is not after start {start.isoformat()}")
        if end - start > timedelta(minutes=MAX_DURATION_MIN):
            raise MeetingError("end", f"end is more than {MAX_DURATION_MIN} minutes after start; "
                                      f"an occurrence lasts at most 12 hours")
        return end
    minutes = spec.duration_minutes
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_DURATION_MIN:
        raise MeetingError("duration_minutes", f"duration_minutes must be 1-{MAX_DURATION_MIN}, got {minutes!r}")
    return start + timedelta(minutes=minutes)


def _recurrence(value: object, start: datetime) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MeetingError("recurrence", "recurrence must be RRULE text, e.g. FREQ=WEEKLY;BYDAY=MO")
    rule = recurrence.parse_rule(value)
    if next(recurrence.starts(rule, start), None) is None:
        raise MeetingError("recurrence", f"recurrence {value!r} yields no occurrence on or after start "
                                         f"{start.isoformat()} (check UNTIL)")
    return rule.text()
