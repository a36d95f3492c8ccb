"""Meetings: the model, RRULE recurrence, the service (CRUD, occurrences, attendance) and the scheduler."""

from signaling.meetings.errors import ConflictError, MeetingError, NotFoundError
from signaling.meetings.model import VN, Meeting, MeetingSpec, Occurrence

__all__ = ["VN", "ConflictError", "Meeting", "MeetingError", "MeetingSpec", "NotFoundError", "Occurrence"]
