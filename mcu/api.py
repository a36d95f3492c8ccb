"""The seam between signaling and a media node: everything signaling may ask of media, all async.

The signaling server never touches media. When an endpoint joins a meeting, signaling asks the
meeting's media node for a ``MediaPeer`` (one aiortc peer per endpoint) and relays SDP and ICE
between the client's WebSocket and that peer. A media node lives in the same process
(``mcu.node.LocalMediaNode``) or behind a node-to-node link (``signaling.cluster.remote_media``);
signaling sees only this interface, and this module imports nothing of the product.

What crosses the seam also crosses the wire between nodes, as JSON: hence the ``Json`` types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

# A JSON value and a JSON object (what a node-to-node link carries).
Json: TypeAlias = "str | int | float | bool | None | list[Json] | dict[str, Json]"
JsonObject: TypeAlias = "dict[str, Json]"


class MediaError(Exception):
    """A media request the client can fix (bad SDP, peer closed); answered as a client error."""


class MediaRetry(MediaError):
    """The peer is busy with another negotiation (or glare): retry after answering the server's offer."""


# A media node pushes messages to its client through signaling with this callback: server-made
# offers for renegotiation ({"type": "offer", "sdp": ...}), trickled ICE candidates
# ({"type": "ice", ...}), active-speaker changes ({"type": "speaker", "endpoint": ...}).
# The sink runs on the peer's own task: it must not await that peer's methods (deadlock); it
# may send to the client. Event dicts may be shared between peers: copy before changing them.
EventSink: TypeAlias = Callable[[JsonObject], Awaitable[None]]

# Per endpoint of a meeting: its link quality for the operator's map (keys: connected, publishes,
# sending, kbps, bitrate_kbps, loss_in_pct, loss_out_pct, quality, why; see mcu.meeting.quality).
LinkStats: TypeAlias = "dict[str, JsonObject]"

# What a recording is labelled with (meeting_id, title, occurrence_id, participants), asked for
# only by the node that starts the recording: a node reached over the wire reads its own.
RecordingLabels: TypeAlias = Callable[[], Awaitable[JsonObject]]


@dataclass(frozen=True)
class PeerSpec:
    """What the media node needs to know about a joining endpoint."""

    meeting_id: str
    endpoint_id: str
    display_name: str
    role: str  # operator | chair | participant | viewer
    link: str  # fibre | thin | mobile: sets the starting quality
    publish: bool  # viewers receive only
    # media_mode, start_rendition, renegotiate, via, floor, layout, cascade_origin, cascade_edge
    extra: JsonObject = field(default_factory=dict)


class MediaPeer(Protocol):
    """One endpoint's media connection; its calls are served one at a time, in order."""

    async def handle_offer(self, sdp: str) -> str:
        """Apply the client's offer; return the answer SDP."""

    async def handle_answer(self, sdp: str) -> None:
        """Apply the client's answer to a server-made offer."""

    async def add_ice_candidate(self, candidate: JsonObject | None) -> None:
        """Add a trickled remote candidate (None: end of candidates)."""

    async def set_muted(self, kind: str, muted: bool) -> None:
        """Stop/resume forwarding the endpoint's audio or video (chair mute)."""

    async def close(self) -> None:
        """Release the peer and everything it holds; idempotent."""


class MediaNode(Protocol):
    """A media node; meeting calls for a meeting it does not run are ignored (or answer empty)."""

    node_id: str

    async def start(self) -> None:
        """Begin serving; idempotent."""

    async def stop(self) -> None:
        """Close every peer and meeting; idempotent and bounded."""

    async def open_peer(self, spec: PeerSpec, events: EventSink) -> MediaPeer:
        """A new peer for ``spec``'s endpoint; its events go to ``events``."""

    async def set_floor(self, meeting_id: str, endpoint_id: str | None) -> None:
        """The endpoint that holds the floor (its media is routed with priority)."""

    async def set_layout(self, meeting_id: str, layout: str | None) -> None:
        """The chair's layout of the meeting's composite (None: automatic)."""

    async def link_stats(self, meeting_id: str) -> LinkStats:
        """Link quality of the meeting's endpoints on this node ({} when it has none here)."""

    async def record(self, meeting_id: str, on: bool, labels: RecordingLabels) -> JsonObject:
        """Start (``on``) or stop recording the meeting's composite picture and mixed sound;
        returns the recording's entry (id, state, title, ...). Raises when recording is not
        enabled, the meeting has no media here, or it is already (not) recording."""
