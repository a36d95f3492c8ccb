"""Meetings: create, read, change and cancel them; expand their occurrences; attendance per occurrence.

Stored as ``Meeting.to_dict()`` documents in collection ``meetings`` keyed by id. Every change goes
through ``compare_and_put`` on the document as read, so two operators (or nodes) editing the same
meeting cannot silently overwrite each other; ``version`` lets a client detect that explicitly.
Occurrence state documents (written by the scheduler) live in ``occurrences``.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import msgspec

from endpoints.directory import Directory, Endpoint
from signaling.meetings import attendance as att
from signaling.meetings import dialing
from signaling.meetings import recurrence
from signaling.meetings.errors import ConflictError, MeetingError, NotFoundError
from signaling.meetings.model import Meeting, MeetingSpec, Occurrence, iso, occurrence_id, split_occurrence_id
from signaling.meetings.validation import check_id, check_spec, parse_time
from signaling.store.base import Doc, Store

log = logging.getLogger("giaoban.meetings")
Clock = Callable[[], datetime]
MEETINGS = "meetings"
OCCURRENCES = "occurrences"
UPDATABLE = frozenset(
    {
        "title",
        "description",
        "chair",
        "invited",
        "start",
        "end",
        "duration_minutes",
        "recurrence",
        "media_modes",
        "video_codecs",
        "pin",
    }
)
MAX_OCCURRENCES = 1000  # per query: a 400-day window of a daily meeting fits
INVITED_CACHE = 256  # resolved invitation sets kept (one per distinct chair + selectors)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@lru_cache(maxsize=256)
def _rule(text: str | None) -> recurrence.Rule | None:
    return None if text is None else recurrence.parse_rule(text)


def occurrence_starts(meeting: Meeting, skip_to: datetime | None = None) -> Iterator[datetime]:
    return recurrence.starts(_rule(meeting.recurrence), meeting.start, skip_to)


def expand(meeting: Meeting, frm: datetime, to: datetime) -> list[Occurrence]:
    """Occurrences overlapping [frm, to), state 'scheduled' or 'cancelled' (no store involved)."""
    out: list[Occurrence] = []
    cancelled = set(meeting.exdates)
    for start in occurrence_starts(meeting, frm - meeting.duration - timedelta(days=1)):
        if start >= to or len(out) >= MAX_OCCURRENCES:
            break
        end = start + meeting.duration
        if end <= frm:
            continue
        state = "cancelled" if meeting.status == "cancelled" or start in cancelled else "scheduled"
        out.append(
            Occurrence(
                meeting_id=meeting.id,
                occurrence_id=occurrence_id(meeting.id, start),
                starts_at=start,
                ends_at=end,
                state=state,
            )
        )
    return out


def find_occurrence(meeting: Meeting, occ_id: str) -> Occurrence:
    """The occurrence of ``meeting`` with that id; NotFoundError when the schedule has none."""
    parsed = split_occurrence_id(occ_id)
    if parsed is not None and parsed[0] == meeting.id:
        minute = parsed[1]
        for occ in expand(meeting, minute, minute + timedelta(minutes=1)):
            if occ.occurrence_id == occ_id:
                return occ
    raise NotFoundError(f"meeting {meeting.id} has no occurrence {occ_id!r}")


def has_future(meeting: Meeting, now: datetime) -> bool:
    """True when a not-cancelled occurrence ends after ``now``."""
    if meeting.status == "cancelled":
        return False
    cancelled = set(meeting.exdates)
    for start in occurrence_starts(meeting, now - meeting.duration - timedelta(days=1)):
        if start + meeting.duration > now and start not in cancelled:
            return True
    return False


class MeetingService:
    def __init__(
        self, store: Store, directory: Directory, *, clock: Clock = utc_now, early_join_minutes: float = 10
    ) -> None:
        self.store = store
        self.directory = directory
        self.clock = clock
        self.early_join = timedelta(minutes=early_join_minutes)
        self._invited_cache: dict[tuple, frozenset[str]] = {}

    # create / read ---------------------------------------------------------------------------
    async def create(self, spec: MeetingSpec) -> Meeting:
        now = self.clock()
        c = check_spec(spec, self.directory, now)
        for _ in range(5):  # a random id collision is unlikely; never overwrite one
            meeting_id = "m-" + secrets.token_hex(4)
            if c.dial_number is not None:
                await dialing.claim_given(self.store, c.dial_number, meeting_id)
            number = c.dial_number or await dialing.claim_any(self.store, meeting_id)
            meeting = Meeting(
                id=meeting_id,
                title=c.title,
                chair=c.chair,
                invited=c.invited,
                start=c.start,
                end=c.end,
                recurrence=c.recurrence,
                description=c.description,
                media_modes=spec.media_modes,
                video_codecs=c.video_codecs,
                dial_number=number,
                pin=c.pin,
                created_at=now,
                updated_at=now,
            )
            if await self.store.put_if_absent(MEETINGS, meeting.id, meeting.to_dict()):
                log.info("meeting created", extra={"meeting_id": meeting.id, "chair": meeting.chair})
                return meeting
            await dialing.release(self.store, number, meeting_id)
        raise ConflictError("could not allocate a meeting id; try again")

    async def get(self, meeting_id: str) -> Meeting:
        return Meeting.from_dict(await self._doc(meeting_id))

    async def _doc(self, meeting_id: str) -> Doc:
        check_id(meeting_id, "meeting_id")  # a NUL cannot even be looked up: say so (400), not 500
        doc = await self.store.get(MEETINGS, meeting_id) if isinstance(meeting_id, str) and meeting_id else None
        if doc is None:
            raise NotFoundError(f"no meeting with id {meeting_id!r}")
        return await dialing.backfill(self.store, MEETINGS, doc)

    async def by_dial_number(self, number: str) -> Meeting:
        """The meeting a room system reaches by dialling ``number`` (the SIP gateway asks);
        NotFoundError for any number no meeting holds, malformed ones included."""
        meeting_id = await dialing.meeting_id_of(self.store, number) if isinstance(number, str) and number else None
        doc = await self.store.get(MEETINGS, meeting_id) if meeting_id is not None else None
        if doc is None or doc.get("dial_number") != number:  # a claim whose meeting was never stored
            raise NotFoundError(f"no meeting with dial number {str(number)[:20]!r}")
        return Meeting.from_dict(doc)

    async def list(self, active_only: bool = False) -> list[Meeting]:
        """All meetings by start; ``active_only``: not cancelled and with an occurrence still to end."""
        now = self.clock()
        docs = [await dialing.backfill(self.store, MEETINGS, doc) for _, doc in await self.store.list(MEETINGS)]
        meetings = [Meeting.from_dict(doc) for doc in docs]
        if active_only:
            meetings = [m for m in meetings if has_future(m, now)]
        return sorted(meetings, key=lambda m: (m.start, m.id))

    # change ----------------------------------------------------------------------------------
    async def update(self, meeting_id: str, changes: Mapping[str, Any], expected_version: int | None = None) -> Meeting:
        """Partial change of the fields in ``UPDATABLE``; bumps version. MeetingError, NotFoundError, ConflictError."""
        for name in changes:
            if name not in UPDATABLE:
                raise MeetingError(name, f"{name} cannot be changed; changeable: {', '.join(sorted(UPDATABLE))}")

        def apply(current: Meeting) -> Meeting | None:
            if current.status == "cancelled":
                raise ConflictError(f"meeting {current.id} is cancelled; it cannot be changed")
            return self._changed(current, changes) if changes else None

        return await self._modify(meeting_id, apply, expected_version)

    def _changed(self, current: Meeting, changes: Mapping[str, Any]) -> Meeting:
        """The meeting with ``changes`` applied: every field not named stays as it is (media_modes
        and video_codecs included), and the result passes the very checks a new meeting passes."""
        fields = {
            "title": current.title,
            "chair": current.chair,
            "invited": current.invited,
            "start": iso(current.start),
            "recurrence": current.recurrence,
            "description": current.description,
            "media_modes": current.media_modes,
            "video_codecs": current.video_codecs,
            "pin": current.pin,
        }
        fields |= {k: v for k, v in changes.items() if k not in ("end", "duration_minutes")}
        end, minutes = changes.get("end"), changes.get("duration_minutes")
        if end is None and minutes is None:  # keep the length when only the start moves
            end = iso(parse_time(fields["start"], "start") + current.duration)
        spec = _as_spec(fields | {"end": end, "duration_minutes": minutes})
        now = self.clock()
        c = check_spec(spec, self.directory, now, check_past="start" in changes)
        return Meeting(
            id=current.id,
            title=c.title,
            chair=c.chair,
            invited=c.invited,
            start=c.start,
            end=c.end,
            recurrence=c.recurrence,
            description=c.description,
            status=current.status,
            exdates=current.exdates,
            media_modes=spec.media_modes,
            video_codecs=c.video_codecs,
            dial_number=current.dial_number,  # fixed once given: room systems keep it in their address books
            pin=c.pin,
            created_at=current.created_at,
            updated_at=now,
            version=current.version + 1,
        )

    async def cancel(self, meeting_id: str) -> Meeting:
        """Cancel the whole series; cancelling twice is a no-op. An open occurrence is closed by the scheduler."""

        def apply(current: Meeting) -> Meeting | None:
            if current.status == "cancelled":
                return None
            return self._bumped(current, status="cancelled")

        return await self._modify(meeting_id, apply, None)

    async def cancel_occurrence(self, meeting_id: str, occ_id: str) -> Meeting:
        """Skip one occurrence (adds its start to ``exdates``); idempotent; ConflictError once it has ended."""

        def apply(current: Meeting) -> Meeting | None:
            occ = find_occurrence(current, occ_id)
            if occ.state == "cancelled":
                return None
            if occ.ends_at <= self.clock():
                raise ConflictError(f"occurrence {occ_id} already ended; it cannot be cancelled")
            return self._bumped(current, exdates=sorted([*current.exdates, occ.starts_at]))

        return await self._modify(meeting_id, apply, None)

    def _bumped(self, current: Meeting, **fields: Any) -> Meeting:
        doc = current.to_dict() | {"updated_at": iso(self.clock()), "version": current.version + 1}
        return Meeting.from_dict(doc | {k: _builtin(v) for k, v in fields.items()})

    async def _modify(
        self, meeting_id: str, apply: Callable[[Meeting], Meeting | None], expected_version: int | None
    ) -> Meeting:
        """Read, check the version, apply, compare_and_put; retried on a race unless a version was given."""
        for _ in range(3):
            doc = await self._doc(meeting_id)
            current = Meeting.from_dict(doc)
            if expected_version is not None and current.version != expected_version:
                raise ConflictError(
                    f"meeting {meeting_id} is at version {current.version}, not {expected_version}; "
                    f"reload it and apply the change again"
                )
            updated = apply(current)
            if updated is None:
                return current
            if await self.store.compare_and_put(MEETINGS, meeting_id, doc, updated.to_dict()):
                log.info("meeting changed", extra={"meeting_id": meeting_id, "version": updated.version})
                return updated
            if expected_version is not None:
                break
        raise ConflictError(f"meeting {meeting_id} was changed by someone else meanwhile; reload and retry")

    # occurrences ----------------------------------------------------------------------------
    async def occurrences(self, meeting: Meeting | str, frm: datetime, to: datetime) -> list[Occurrence]:
        """Occurrences overlapping [frm, to) with their state (scheduled, open, closed, cancelled)."""
        if isinstance(meeting, str):
            meeting = await self.get(meeting)
        now = self.clock()
        out = expand(meeting, frm, to)
        for occ in out:
            if occ.state != "cancelled":
                occ.state = await self._state(occ, now)
        return out

    async def _state(self, occ: Occurrence, now: datetime) -> str:
        doc = await self.store.get(OCCURRENCES, occ.occurrence_id)
        if doc is not None:
            return doc["state"]
        if occ.ends_at <= now:
            return "closed"
        # joinable from the early-join window on, whether or not a scheduler has ticked yet
        return "open" if occ.starts_at - self.early_join <= now else "scheduled"

    async def current_occurrence(self, meeting_id: str, now: datetime) -> Occurrence | None:
        """The occurrence that can be joined at ``now`` (from ``early_join`` before its start to its end)."""
        meeting = await self.get(meeting_id)
        if meeting.status == "cancelled":
            return None
        for occ in expand(meeting, now, now + self.early_join + timedelta(seconds=1)):
            if occ.state == "cancelled" or not occ.starts_at - self.early_join <= now < occ.ends_at:
                continue
            doc = await self.store.get(OCCURRENCES, occ.occurrence_id)
            if doc is None or doc["state"] == "open":
                occ.state = "open"
                return occ
        return None

    # who is invited --------------------------------------------------------------------------
    def invited_endpoints(self, meeting: Meeting) -> list[Endpoint]:
        """The chair first, then everything the selectors select now (the chair counts as invited)."""
        chosen = [self.directory.get(meeting.chair)] if meeting.chair in self.directory else []
        return chosen + [ep for ep in self._select(meeting) if ep.id != meeting.chair]

    def _select(self, meeting: Meeting) -> list[Endpoint]:
        try:
            return self.directory.select(meeting.invited)
        except (ValueError, LookupError) as exc:
            # the directory changed since scheduling: keep the selectors that still make sense
            log.warning("stale selectors: %s", exc, extra={"meeting_id": meeting.id})
            usable = [s for s in meeting.invited if _selects(self.directory, s)]
            additions = [s for s in usable if not s.startswith("-")]
            return self.directory.select(usable) if additions else []

    def invited_ids(self, meeting: Meeting) -> list[str]:
        return [ep.id for ep in self.invited_endpoints(meeting)]

    def is_invited(self, meeting: Meeting, endpoint_id: str) -> bool:
        """Asked on every join: the resolved set is kept per (chair, selectors), which is all it
        depends on while the directory is loaded (841 terminals joining once = one walk, not 841)."""
        key = (meeting.chair, tuple(meeting.invited))
        ids = self._invited_cache.get(key)
        if ids is None:
            ids = frozenset(self.invited_ids(meeting))
            if len(self._invited_cache) >= INVITED_CACHE:
                self._invited_cache.pop(next(iter(self._invited_cache)))  # the oldest entry
            self._invited_cache[key] = ids
        return endpoint_id in ids

    # attendance ------------------------------------------------------------------------------
    async def record_join(self, occ_id: str, endpoint_id: str, at: datetime, via: str = "terminal") -> None:
        await self.store.append(att.log_name(_checked_occ(occ_id)), att.join_event(endpoint_id, at, via))

    async def record_leave(self, occ_id: str, endpoint_id: str, at: datetime) -> None:
        await self.store.append(att.log_name(_checked_occ(occ_id)), att.leave_event(endpoint_id, at))

    async def attendance(self, occ_id: str) -> att.AttendanceRecord:
        """The record; invitations are the snapshot taken when it opened (resolved now if it has not)."""
        parsed = split_occurrence_id(occ_id)
        if parsed is None:
            raise NotFoundError(f"no occurrence {occ_id!r}")
        meeting = await self.get(parsed[0])
        doc = await self.store.get(OCCURRENCES, occ_id)
        if doc is not None:
            invited, ends_at = list(doc["invited"]), datetime.fromisoformat(doc["ends_at"])
        else:
            occ = find_occurrence(meeting, occ_id)
            invited, ends_at = self.invited_ids(meeting), occ.ends_at
        events = await self.store.read_log(att.log_name(occ_id))
        return att.fold(occ_id, invited, events, until=min(self.clock(), ends_at))


def _as_spec(fields: dict[str, Any]) -> MeetingSpec:
    """convert, not MeetingSpec(...): it applies the limits (500 selectors, lengths) that decoding a
    create applies, and the message is the one a create gets (as ``signaling.errors`` words it)."""
    try:
        return msgspec.convert(fields, MeetingSpec)
    except msgspec.ValidationError as exc:
        path = re.search(r"at `\$\.(\w+)", str(exc))
        raise MeetingError(path.group(1) if path else "body", f"invalid request: {exc}") from None


def _checked_occ(occ_id: str) -> str:
    if not isinstance(occ_id, str) or split_occurrence_id(occ_id) is None:
        raise NotFoundError(f"no occurrence {occ_id!r}")
    return occ_id


def _selects(directory: Directory, selector: str) -> bool:
    try:
        directory.select([selector.lstrip("-")])
        return True
    except (ValueError, LookupError):
        return False


def _builtin(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, list):
        return [_builtin(v) for v in value]
    return value
