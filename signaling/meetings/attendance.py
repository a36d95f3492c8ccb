"""Attendance of one occurrence, folded from its append-only event log ``attendance:<occurrence_id>``.

The log holds ``{"event": "join"|"leave", "endpoint_id", "at", "via"}`` entries. Folding is a pure
function so it is easy to test and any node can compute the same record. An endpoint may be
connected twice at once (a terminal reconnecting before its old session timed out, or terminal
plus laptop): it counts as present while at least one of its sessions is in, and every join
counts as one join (reconnects show up as joins > 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from signaling.meetings.model import VN

LOG_PREFIX = "attendance:"


def log_name(occurrence_id: str) -> str:
    return LOG_PREFIX + occurrence_id


def join_event(endpoint_id: str, at: datetime, via: str = "terminal") -> dict[str, Any]:
    return {"event": "join", "endpoint_id": endpoint_id, "at": _aware(at).isoformat(), "via": via}


def leave_event(endpoint_id: str, at: datetime) -> dict[str, Any]:
    return {"event": "leave", "endpoint_id": endpoint_id, "at": _aware(at).isoformat()}


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=VN) if at.tzinfo is None else at.astimezone(VN)


class EndpointAttendance(msgspec.Struct, kw_only=True):
    endpoint_id: str
    invited: bool
    joined: bool = False
    first_join: datetime | None = None
    last_leave: datetime | None = None
    total_seconds: float = 0.0
    joins: int = 0  # > 1 means it reconnected
    present: bool = False  # still in at the end of the log
    via: list[str] = msgspec.field(default_factory=list)


class AttendanceSummary(msgspec.Struct, kw_only=True):
    invited: int
    present: int  # invited endpoints that joined at least once
    absent: int  # invited endpoints that never joined
    guests: int  # uninvited endpoints or links that joined


class AttendanceRecord(msgspec.Struct, kw_only=True):
    occurrence_id: str
    invited: list[str]
    endpoints: list[EndpointAttendance]  # one per invited endpoint, in invitation order
    guests: list[EndpointAttendance]  # uninvited joiners, by first join
    summary: AttendanceSummary

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)

    def of(self, endpoint_id: str) -> EndpointAttendance | None:
        return next((a for a in self.endpoints + self.guests if a.endpoint_id == endpoint_id), None)


@dataclass
class _Tally:
    """Mutable per-endpoint state while folding."""

    joins: int = 0
    depth: int = 0  # sessions currently in
    since: datetime | None = None
    total: float = 0.0
    first_join: datetime | None = None
    last_leave: datetime | None = None
    via: list[str] = field(default_factory=list)

    def join(self, at: datetime, via: str | None) -> None:
        self.joins += 1
        self.first_join = self.first_join or at
        if self.depth == 0:
            self.since = at
        self.depth += 1
        if via and via not in self.via:
            self.via.append(via)

    def leave(self, at: datetime) -> None:
        if self.depth == 0:  # duplicate or stray leave: nothing to close
            return
        self.depth -= 1
        if self.depth == 0 and self.since is not None:
            self.total += max(0.0, (at - self.since).total_seconds())
            self.last_leave = at

    def result(self, endpoint_id: str, invited: bool, until: datetime | None) -> EndpointAttendance:
        total = self.total
        if self.depth > 0 and self.since is not None and until is not None:
            total += max(0.0, (until - self.since).total_seconds())
        return EndpointAttendance(
            endpoint_id=endpoint_id,
            invited=invited,
            joined=self.joins > 0,
            first_join=self.first_join,
            last_leave=self.last_leave,
            total_seconds=round(total, 3),
            joins=self.joins,
            present=self.depth > 0,
            via=list(self.via),
        )


def fold(
    occurrence_id: str, invited: list[str], events: Iterable[dict[str, Any]], until: datetime | None = None
) -> AttendanceRecord:
    """The attendance record; sessions still in at the end count as present up to ``until``."""
    tallies = _tally(events)
    invited_set = set(invited)
    endpoints = [tallies.get(ep, _Tally()).result(ep, True, until) for ep in invited]
    guests = sorted(
        (t.result(ep, False, until) for ep, t in tallies.items() if ep not in invited_set),
        key=lambda a: (a.first_join or datetime.max.replace(tzinfo=VN), a.endpoint_id),
    )
    present = sum(1 for a in endpoints if a.joined)
    summary = AttendanceSummary(
        invited=len(invited), present=present, absent=len(invited) - present, guests=len(guests)
    )
    return AttendanceRecord(
        occurrence_id=occurrence_id, invited=list(invited), endpoints=endpoints, guests=guests, summary=summary
    )


def _tally(events: Iterable[dict[str, Any]]) -> dict[str, _Tally]:
    parsed = []
    for e in events:
        try:
            parsed.append((_aware(datetime.fromisoformat(e["at"])), e["event"], e["endpoint_id"], e.get("via")))
        except (KeyError, TypeError, ValueError):
            continue  # a malformed entry must not hide everyone else's attendance
    parsed.sort(key=lambda p: p[0])  # stable: equal times keep log order (join before its leave)
    tallies: dict[str, _Tally] = {}
    for at, kind, endpoint_id, via in parsed:
        tally = tallies.setdefault(endpoint_id, _Tally())
        if kind == "join":
            tally.join(at, via)
        elif kind == "leave":
            tally.leave(at)
    return tallies
