"""A small RFC 5545 RRULE subset for briefings: FREQ=DAILY|WEEKLY, INTERVAL, BYDAY (MO..SU), COUNT,
UNTIL. Anything else is rejected with a message naming the part, because silently ignoring a part
would schedule meetings on days the operator did not mean.

Expansion happens in local wall-clock time (Asia/Ho_Chi_Minh): every occurrence starts at the
first occurrence's time of day. Decision: ``start`` is the earliest possible occurrence; with
BYDAY only the listed weekdays occur, so 'start Tuesday + BYDAY=MO' first meets the next Monday
(RFC 5545 would also count the Tuesday itself; operators do not expect that).

Bound: a series is expanded at most ``HORIZON`` (10 years) past its first occurrence. An open-ended
rule stops there; COUNT/UNTIL reaching further, or a rule with no occurrence within it (BYDAY=TU
with FREQ=DAILY;INTERVAL=7 from a Monday), is refused by ``validation``. Every walk is finite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from signaling.meetings.errors import MeetingError
from signaling.meetings.model import MAX_YEAR, MIN_YEAR, VN

DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
PARTS = ("FREQ", "INTERVAL", "BYDAY", "COUNT", "UNTIL")
MAX_INTERVAL = 100
MAX_COUNT = 1000
HORIZON_YEARS = 10
HORIZON = timedelta(days=366 * HORIZON_YEARS)  # 10 years whatever the leap days


@dataclass(frozen=True, slots=True)
class Rule:
    freq: str  # "DAILY" | "WEEKLY"
    interval: int = 1
    byday: tuple[int, ...] = ()  # weekday numbers, Monday = 0, sorted
    count: int | None = None
    until: datetime | None = None  # aware, inclusive

    def text(self) -> str:
        """Canonical RRULE text (what is stored)."""
        parts = [f"FREQ={self.freq}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.byday:
            parts.append("BYDAY=" + ",".join(DAYS[d] for d in self.byday))
        if self.count is not None:
            parts.append(f"COUNT={self.count}")
        if self.until is not None:
            parts.append(f"UNTIL={self.until.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}")
        return ";".join(parts)


def _bad(message: str) -> MeetingError:
    return MeetingError("recurrence", f"recurrence: {message}")


def parse_rule(text: str) -> Rule:
    """Parse RRULE text (an optional 'RRULE:' prefix and any letter case are accepted)."""
    body = text.strip().upper()
    body = body[len("RRULE:") :] if body.startswith("RRULE:") else body
    if not body:
        raise _bad("is empty; leave it out (null) for a one-off meeting, e.g. FREQ=WEEKLY;BYDAY=MO")
    parts = _split(body)
    if "FREQ" not in parts:
        raise _bad("FREQ is missing; start with FREQ=DAILY or FREQ=WEEKLY")
    freq = _freq(parts["FREQ"])  # the frequency first: it is the most telling mistake
    unknown = [name for name in parts if name not in PARTS]
    if unknown:
        raise _bad(f"part {unknown[0]} is not supported; use only {', '.join(PARTS)}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise _bad("give COUNT or UNTIL, not both")
    return Rule(
        freq=freq,
        interval=_int(parts, "INTERVAL", 1, MAX_INTERVAL) or 1,
        byday=_byday(parts["BYDAY"]) if "BYDAY" in parts else (),
        count=_int(parts, "COUNT", 1, MAX_COUNT),
        until=_until(parts["UNTIL"]) if "UNTIL" in parts else None,
    )


def _split(body: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in body.split(";"):
        name, eq, value = item.strip().partition("=")
        if not eq or not name or not value:
            raise _bad(f"part {item.strip()!r} is not NAME=VALUE")
        if name in parts:
            raise _bad(f"part {name} is given twice")
        parts[name] = value.strip()
    return parts


def _freq(value: str) -> str:
    if value not in ("DAILY", "WEEKLY"):
        raise _bad(f"FREQ={value} is not supported; use FREQ=DAILY or FREQ=WEEKLY")
    return value


def _int(parts: dict[str, str], name: str, low: int, high: int) -> int | None:
    if name not in parts:
        return None
    value = parts[name]
    # str.isdigit() is true for '²' and '٣', which int() refuses or reads: ASCII digits only
    if not (value.isascii() and value.isdigit() and len(value) <= 6) or not low <= int(value) <= high:
        raise _bad(f"{name}={value} must be a whole number from {low} to {high}")
    return int(value)


def _byday(value: str) -> tuple[int, ...]:
    days: set[int] = set()
    for item in value.split(","):
        day = item.strip()
        if day not in DAYS:
            hint = " (ordinals like 1MO are not supported)" if day[-2:] in DAYS else ""
            raise _bad(f"BYDAY value {day!r} is not a weekday{hint}; use {','.join(DAYS)}")
        days.add(DAYS.index(day))
    return tuple(sorted(days))


def _until(value: str) -> datetime:
    """YYYYMMDD (inclusive: the whole local day), YYYYMMDDTHHMMSS (local) or ...Z (UTC)."""
    try:
        if not value.isascii():  # strptime reads non-ASCII digits
            raise ValueError(value)
        if len(value) == 8:
            until = datetime.combine(datetime.strptime(value, "%Y%m%d").date(), time(23, 59, 59), tzinfo=VN)
        elif value.endswith("Z"):
            until = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        else:
            until = datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=VN)
    except ValueError:
        raise _bad(f"UNTIL={value} must be YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ") from None
    if not MIN_YEAR <= until.year <= MAX_YEAR:  # checked before converting: year 1 minus 7 h overflows
        raise _bad(f"UNTIL={value} must lie in the years {MIN_YEAR}-{MAX_YEAR}")
    return until.astimezone(VN)


# expansion -----------------------------------------------------------------------------------
def starts(rule: Rule | None, first: datetime, skip_to: datetime | None = None) -> Iterator[datetime]:
    """Occurrence starts in order from ``first`` (local wall clock), at most ``HORIZON`` after it.

    ``skip_to`` lets callers jump close to a window instead of walking from a years-old start;
    it is ignored with COUNT, which has to count from the beginning.
    """
    first = first.astimezone(VN)
    if rule is None:
        yield first
        return
    jump = skip_to.astimezone(VN).date() if skip_to is not None and rule.count is None else None
    emitted = 0
    # the bound lives in the day walks: a BYDAY that never meets the INTERVAL grid yields nothing
    for day in _days(rule, first.date(), jump, (first + HORIZON).date()):
        at = datetime.combine(day, first.time(), tzinfo=VN)
        if rule.until is not None and at > rule.until:
            return
        yield at
        emitted += 1
        if rule.count is not None and emitted >= rule.count:
            return


def _days(rule: Rule, first: date, jump: date | None, last: date) -> Iterator[date]:
    """Occurrence days from ``first`` (or near ``jump``) to ``last`` inclusive."""
    if jump is not None and jump > last:
        return
    if rule.freq == "DAILY":
        yield from _daily(rule, first, jump, last)
    else:
        yield from _weekly(rule, first, jump, last)


def _daily(rule: Rule, first: date, jump: date | None, last: date) -> Iterator[date]:
    skipped = 0 if jump is None or jump <= first else (jump - first).days // rule.interval
    day = first + timedelta(days=skipped * rule.interval)
    while day <= last:
        if not rule.byday or day.weekday() in rule.byday:
            yield day
        day += timedelta(days=rule.interval)


def _weekly(rule: Rule, first: date, jump: date | None, last: date) -> Iterator[date]:
    week0 = first - timedelta(days=first.weekday())  # weeks start on Monday (WKST=MO)
    weeks = 0 if jump is None or jump <= first else (jump - week0).days // 7
    week = week0 + timedelta(weeks=weeks - weeks % rule.interval)  # stay on the INTERVAL grid
    weekdays = rule.byday or (first.weekday(),)
    while week <= last:
        for wd in weekdays:
            day = week + timedelta(days=wd)
            if first <= day <= last:
                yield day
        week += timedelta(weeks=rule.interval)
