"""Checks a ``MeetingSpec`` against the directory and the clock; every failure is a MeetingError
naming the field. Nothing here touches the store, so a rejected spec changes nothing.

Decisions:
* a commune cannot chair: it is the bottom tier, a meeting is chaired from a tier that has
  endpoints below it (district, province, central) - communes raise hands instead;
* one occurrence lasts 1..720 minutes, whether given as ``end`` or ``duration_minutes``;
* a new (or moved) start may lie at most ``PAST_SLACK`` in the past, so 'start now' still works;
* the invited selectors must select at least one endpoint;
* times lie in the years ``MIN_YEAR``..``MAX_YEAR`` (2000-2199) and a series spans at most
  ``recurrence.HORIZON_YEARS`` (10) years: nothing a client sends can push date maths to year 1 or 9999;
* titles, names and ids hold no control characters (NUL cannot be stored; the rest is never meant);
* ``video_codecs`` is read in any case and kept upper case ("vp8" is "VP8"), as mcu names codecs;
* ``dial_number`` is 4-9 digits not starting with 0 (0 is the trunk prefix a PBX strips or routes out;
  at most 9 digits, so no Vietnamese phone number (10 digits) can be mistaken for one); ``pin`` 4-8 digits.

The limits of ``model.MeetingSpec`` (lengths, counts) are checked here again, because a spec built in
code (``MeetingSpec(...)``) skips msgspec's decode-time checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import get_args

from endpoints.directory import Directory, Endpoint, Tier
from mcu.api import VIDEO_CODECS
from signaling.meetings import recurrence
from signaling.meetings.errors import MeetingError
from signaling.meetings.model import (
    DEFAULT_VIDEO_CODECS,
    DIAL_NUMBER,
    MAX_YEAR,
    PIN,
    MIN_YEAR,
    VN,
    LinkClass,
    MediaMode,
    MeetingSpec,
)

TITLE_MAX = 200
DESCRIPTION_MAX = 4000
MAX_DURATION_MIN = 720
PAST_SLACK = timedelta(minutes=5)
MAX_INVITED = 500
MAX_SELECTOR = 200
MAX_RULE = 200
MAX_ID = 128
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # C0 controls and DEL
TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # the same, but tab and line ends may appear


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
    video_codecs: list[str]
    dial_number: str | None = None  # None: the service assigns one
    pin: str | None = None


def check_spec(spec: MeetingSpec, directory: Directory, now: datetime, *, check_past: bool = True) -> Checked:
    title = _title(spec.title)
    description = _description(spec.description)
    chair = _chair(spec.chair, directory)
    invited = _invited(spec.invited, directory)
    start = parse_time(spec.start, "start")
    end = _end(spec, start)
    rule_text = _recurrence(spec.recurrence, start)
    check_media_modes(spec.media_modes)
    video_codecs = check_video_codecs(spec.video_codecs)
    dial_number = check_digits(spec.dial_number, "dial_number", DIAL_NUMBER, "4-9 digits, not starting with 0")
    pin = check_digits(spec.pin, "pin", PIN, "4-8 digits")
    if check_past and start < now - PAST_SLACK:
        raise MeetingError(
            "start",
            f"start {start.isoformat()} is in the past (now is "
            f"{now.astimezone(VN):%Y-%m-%dT%H:%M}+07:00); choose a later time",
        )
    return Checked(title, chair.id, invited, start, end, rule_text, description, video_codecs, dial_number, pin)


def parse_time(text: object, field: str) -> datetime:
    """ISO-8601 date-time; naive means Asia/Ho_Chi_Minh, an offset is converted to it."""
    if not isinstance(text, str):
        raise MeetingError(field, f"{field} must be an ISO-8601 date-time string, e.g. 2030-01-07T08:00")
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MeetingError(
            field,
            f"{field} {text!r} is not an ISO-8601 date-time; use e.g. 2030-01-07T08:00 "
            f"(local time) or 2030-01-07T01:00Z",
        ) from None
    if not MIN_YEAR <= value.year <= MAX_YEAR:  # before any zone maths: year 1 or 9999 overflows there
        raise MeetingError(field, f"{field} {text!r} is out of range; give a time in the years {MIN_YEAR}-{MAX_YEAR}")
    value = value.replace(tzinfo=VN) if value.tzinfo is None else value.astimezone(VN)
    return value.replace(microsecond=0)


def check_id(value: object, field: str) -> None:
    """A path or message id that can name nothing: control characters (NUL) or far too long."""
    if isinstance(value, str) and (CONTROL.search(value) or len(value) > MAX_ID):
        what = "is longer than 128 characters" if len(value) > MAX_ID else "contains a control character"
        raise MeetingError(field, f"{field} {value[:40]!r} {what}; ids are short printable text")


def check_media_modes(value: object) -> None:
    if value is None:
        return
    links, modes = get_args(LinkClass), get_args(MediaMode)
    if not isinstance(value, dict) or any(k not in links or v not in modes for k, v in value.items()):
        raise MeetingError(
            "media_modes", f"media_modes maps link classes ({', '.join(links)}) to {', '.join(modes)}; got {value!r}"
        )


def check_digits(value: object, field: str, pattern: str, rule: str) -> str | None:
    """A dial number or PIN as given (None: none given); a room system's keypad sends only digits."""
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(pattern, value, re.ASCII):
        raise MeetingError(field, f"{field} must be {rule} (a room system keypad dials it); got {repr(value)[:20]}")
    return value


def check_video_codecs(value: object) -> list[str]:
    """The meeting's video codecs, upper case in the given order (None: the default order)."""
    if value is None:
        return list(DEFAULT_VIDEO_CODECS)
    known = " and ".join(VIDEO_CODECS)
    if not isinstance(value, list) or not value:
        raise MeetingError(
            "video_codecs", f"video_codecs must be a non-empty list of {known} in order of preference; got {value!r}"
        )
    codecs = [c.upper() if isinstance(c, str) else c for c in value]
    unknown = [c for c in codecs if c not in VIDEO_CODECS]
    if unknown:
        raise MeetingError(
            "video_codecs", f"video_codecs: {repr(unknown[0])[:20]} is not a video codec the server knows ({known})"
        )
    if len(set(codecs)) != len(codecs):
        raise MeetingError("video_codecs", f"video_codecs names a codec twice ({', '.join(codecs)}); name each once")
    return codecs


def _title(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MeetingError("title", "title is empty; give the meeting a name (1-200 characters)")
    if len(value.strip()) > TITLE_MAX:
        raise MeetingError("title", f"title has {len(value.strip())} characters; at most {TITLE_MAX} are allowed")
    if CONTROL.search(value):
        raise MeetingError(
            "title", "title contains a control character (a NUL, tab or line break); give one line of text"
        )
    return value.strip()


def _description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > DESCRIPTION_MAX:
        raise MeetingError("description", f"description must be text of at most {DESCRIPTION_MAX} characters")
    if TEXT_CONTROL.search(value):
        raise MeetingError(
            "description",
            "description contains a control character such as NUL; only text, tabs and line breaks are allowed",
        )
    return value.strip() or None


def _chair(value: object, directory: Directory) -> Endpoint:
    if not isinstance(value, str) or value not in directory:
        raise MeetingError("chair", f"chair {value!r} is not an endpoint in the directory")
    chair = directory.get(value)
    if chair.tier is Tier.COMMUNE:
        raise MeetingError(
            "chair",
            f"chair {value!r} is a commune: a commune cannot chair a meeting; choose its district or a higher tier",
        )
    return chair


def _invited(value: object, directory: Directory) -> list[str]:
    if not isinstance(value, list) or not value:
        raise MeetingError("invited", "invited is empty; give at least one selector, e.g. 'tier:commune@hg-meo-vac'")
    if not all(isinstance(s, str) for s in value):
        raise MeetingError("invited", "invited must be a list of selector strings")
    if len(value) > MAX_INVITED:
        raise MeetingError("invited", f"invited has {len(value)} selectors; at most {MAX_INVITED} are allowed")
    if any(len(s) > MAX_SELECTOR for s in value):
        raise MeetingError("invited", f"an invited selector is longer than {MAX_SELECTOR} characters")
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
            raise MeetingError(
                "end", f"end is more than {MAX_DURATION_MIN} minutes after start; an occurrence lasts at most 12 hours"
            )
        return end
    minutes = spec.duration_minutes
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_DURATION_MIN:
        raise MeetingError("duration_minutes", f"duration_minutes must be 1-{MAX_DURATION_MIN}, got {minutes!r}")
    return start + timedelta(minutes=minutes)


def _recurrence(value: object, start: datetime) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_RULE:
        raise MeetingError(
            "recurrence", f"recurrence must be RRULE text of at most {MAX_RULE} characters, e.g. FREQ=WEEKLY;BYDAY=MO"
        )
    rule = recurrence.parse_rule(value)
    years = recurrence.HORIZON_YEARS
    if rule.until is not None and rule.until > start + recurrence.HORIZON:
        raise MeetingError(
            "recurrence",
            f"recurrence {value!r}: UNTIL is more than {years} years after start; a series spans at most {years} years",
        )
    if next(recurrence.starts(rule, start), None) is None:
        raise MeetingError(
            "recurrence",
            f"recurrence {value!r} yields no occurrence on or after start "
            f"{start.isoformat()} within {years} years (check UNTIL, and that "
            f"BYDAY meets the INTERVAL)",
        )
    if rule.count is not None and sum(1 for _ in recurrence.starts(rule, start)) < rule.count:
        raise MeetingError(
            "recurrence",
            f"recurrence {value!r}: COUNT={rule.count} reaches more than {years} "
            f"years after start; a series spans at most {years} years",
        )
    return rule.text()
