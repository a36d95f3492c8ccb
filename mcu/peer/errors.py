"""The errors a request on a media peer can end in (signaling maps them to client errors)."""

from __future__ import annotations

from mcu.api import MediaError, MediaRetry


class PeerError(MediaError):
    """A request on a media peer that cannot be served (maps to a client error)."""


class PeerBusy(PeerError, MediaRetry):
    """The peer's operation queue is full: try again later."""


class Glare(PeerError, MediaRetry):
    """A client offer while the server's offer waits for its answer: answer first."""


class PeerClosed(PeerError):
    """The peer is closed, or closed while the operation waited or ran."""
