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
from pathlib import Path
from typing import Protocol, TypeAlias, TypedDict

# A JSON value and a JSON object (what a node-to-node link carries).
Json: TypeAlias = "str | int | float | bool | None | list[Json] | dict[str, Json]"
JsonObject: TypeAlias = "dict[str, Json]"


class MediaError(Exception):
    """A media request the client can fix (bad SDP, peer closed); answered as a client error."""


class MediaRetry(MediaError):
    """The peer is busy with another negotiation (or glare): retry after answering the server's offer."""


class MediaUnavailable(MediaError):
    """Nothing here to serve the request: recording not enabled, or no media for the meeting on
    this node; answered as 503."""


class MediaConflict(MediaError):
    """The request contradicts the current state (already recording, not streaming); answered as 409."""


class OfferRefused(MediaError):
    """An offer with nothing this node can use (no common codec); its message (English, naming what
    was offered and what is taken) becomes a SIP 488's Warning text."""


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


class CascadeOrigin(TypedDict):
    """The node that runs a meeting, as an edge node reaches it (see mcu.cascade.trunk)."""

    node_id: str
    url: str


# the video codecs a media node forwards, decodes and encodes, in the default order of preference
# (a meeting's PeerExtra["video_codecs"] when it names none; a node's encode_codecs by default)
VIDEO_CODECS = ("VP8", "H264")


class PeerExtra(TypedDict, total=False):
    """A joining endpoint's optional settings; the keys are those of the node-to-node wire."""

    media_mode: str  # sfu | mcu | both: overrides the meeting's policy for the link class
    start_rendition: str  # the video rendition it receives first
    video_codecs: list[str]  # the meeting's video codecs in order of preference ("VP8", "H264")
    start_tier: str  # start_rendition's name before #12, still sent by nodes of that version
    renegotiate: bool  # False: no server-made offers (WHIP, WHEP, a cascade edge)
    via: str  # whip | whep: the HTTP client kind
    floor: str | None  # the room's floor holder and layout, for a node that (re)opens the meeting
    layout: str | None
    cascade_origin: CascadeOrigin  # set by the cluster's placement: the peer is on an edge node
    cascade_edge: str  # the edge node whose trunk this peer is
    transport: str  # "rtp": a SIP room system's plain RTP/AVP or RTP/SAVP leg (mcu.rtp); absent: WebRTC
    codecs: list[str]  # the room's preferred codecs, best first (PCMU PCMA G722 OPUS H264 VP8); absent: ours
    audio_codec: str  # PCMU | PCMA | G722: the codec of its mix (set by an RTP leg on its own spec copy)
    sdp_origin: list[int]  # RTP leg: [o= session id, version last sent] of its SIP call: it goes on from them
    audio_only: bool  # RTP leg: video lines answered with port 0 (a PIN lobby: no encoder, no decoder)
    rtp_offer: str  # RTP leg of an INVITE without SDP: the room's address; the leg sends its offer as an event


@dataclass(frozen=True)
class PeerSpec:
    """What the media node needs to know about a joining endpoint."""

    meeting_id: str
    endpoint_id: str
    display_name: str
    role: str  # operator | chair | participant | viewer
    link: str  # fibre | thin | mobile: sets the starting quality
    publish: bool  # viewers receive only
    extra: PeerExtra = field(default_factory=PeerExtra)


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

    async def request_keyframe(self) -> None:
        """The client asked for a key frame outside RTCP (SIP INFO picture_fast_update): the
        sources of its video outputs (the composite's encoder) send one."""

    async def close(self) -> None:
        """Release the peer and everything it holds; idempotent."""

    @property
    def closed(self) -> bool:
        """Closed, by ``close`` or by its media node (or the link to it broke): it never reopens."""


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
        returns the recording's entry (id, state, title, ...). Raises MediaUnavailable when
        recording is not enabled or the meeting has no media here, MediaConflict when it is
        already (not) recording."""


class NodeLoad(TypedDict):
    """How busy a media node is (the cluster's registry publishes it; /metrics shows it)."""

    peers: int  # open peers
    meetings: int  # meetings with a peer on the node


class HostedMediaNode(MediaNode, Protocol):
    """The media node running in this process, as the signaling node that hosts it sees it."""

    def load(self) -> NodeLoad:
        """Its peers and meetings now."""


class RecordingFiles(Protocol):
    """The recordings kept on a media node's disk, for the operator's REST routes."""

    retention_days: float

    def get(self, rec_id: str) -> JsonObject:
        """The recording's entry; KeyError for an unknown id."""

    def list(self, meeting_id: str | None = None) -> list[JsonObject]:
        """Entries, newest first; only the meeting's when ``meeting_id`` is given."""

    def file_of(self, rec_id: str) -> Path | None:
        """Its media file (None while none was written); KeyError for an unknown id."""

    def delete(self, rec_id: str) -> None:
        """Remove the recording and its files; KeyError for an unknown id."""


class Recordings(Protocol):
    """Recording and live streaming on a media node (``mcu.record.service.RecordingService``);
    starting and stopping a recording goes through ``MediaNode.record``. Refusals are
    MediaUnavailable and MediaConflict."""

    @property
    def store(self) -> RecordingFiles:
        """The recordings on disk."""

    async def start(self) -> None:
        """Recover what a crash left and begin the retention sweep."""

    async def stop(self) -> None:
        """Finish every recording and stream; idempotent."""

    def active_ids(self) -> list[str]:
        """Ids of the recordings being written now."""

    def recording(self, meeting_id: str) -> JsonObject | None:
        """The meeting's recording in progress, if any."""

    def hls_dir(self, meeting_id: str) -> Path | None:
        """The folder of the meeting's live HLS stream while it streams."""

    async def start_streaming(self, meeting_id: str, rtmp_url: str | None = None) -> JsonObject:
        """Live HLS of the meeting (and a push to ``rtmp_url``); returns the stream's entry."""

    async def stop_streaming(self, meeting_id: str) -> JsonObject:
        """End the meeting's live stream; returns its entry."""
