"""The seam between signaling and a media node.

The signaling server never touches media. When an endpoint joins a meeting, signaling asks the
meeting's media node for a ``MediaPeer`` (one aiortc peer per endpoint) and relays SDP and ICE
between the client's WebSocket and that peer. A media node may live in the same process
(``mcu.node.LocalMediaNode``) or, later, behind a node-to-node link; signaling only sees this
interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

class MediaError(Exception):
    """A media request the client can fix (bad SDP, peer closed); answered as a client error."""


class MediaRetry(MediaError):
    """The peer is busy with another negotiation (or glare): retry after answering the server's offer."""


# A media node pushes messages to its client through signaling with this callback: server-made
# offers for renegotiation ({"type": "offer", "sdp": ...}), trickled ICE candidates
# ({"type": "ice", ...}), active-speaker changes ({"type": "speaker", "endpoint": ...}).
# The sink runs on the peer's own task: it must not await that peer's methods (deadlock); it
# may send to the client. Event dicts may be shared between peers: copy before changing them.
EventSink = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class PeerSpec:
    """What the media node needs to know about a joining endpoint."""

    meeting_id: str
    endpoint_id: str
    display_name: str
    role: str  # operator | chair | participant | viewer
    link: str  # fibre | thin | mobile: sets the starting quality
    publish: bool  # viewers receive only
    extra: dict[str, Any] = field(default_factory=dict)


class MediaPeer(Protocol):
    async def handle_offer(self, sdp: str) -> str:
        """Apply the client's offer; return the answer SDP."""

    async def handle_answer(self, sdp: str) -> None:
        """Apply the client's answer to a server-made offer."""

    async def add_ice_candidate(self, candidate: dict[str, Any] | None) -> None:
        """Add a trickled remote candidate (None: end of candidates)."""

    async def set_muted(self, kind: str, muted: bool) -> None:
        """Stop/resume forwarding the endpoint's audio or video (chair mute)."""

    async def close(self) -> None:
        """Release the peer and everything it holds; idempotent."""


class MediaNode(Protocol):
    node_id: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def open_peer(self, spec: PeerSpec, events: EventSink) -> MediaPeer: ...

    async def set_floor(self, meeting_id: str, endpoint_id: str | None) -> None:
        """The endpoint that holds the floor (its media is routed with priority)."""
