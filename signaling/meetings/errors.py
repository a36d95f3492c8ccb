"""The errors a caller of the meetings package can cause; ``signaling.errors`` maps them to HTTP."""

from __future__ import annotations


class MeetingError(ValueError):
    """Invalid meeting input. ``field`` names the offending input field; the message says what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotFoundError(LookupError):
    """No meeting or occurrence with that id."""


class ConflictError(Exception):
    """The meeting changed since the caller read it (version mismatch), or its state forbids the change."""
