"""The lines of a cascade trunk's peer connection to the origin, and their offer/answer.

The edge offers every line itself (the origin makes no server offer on a trunk). Up (sendonly):
an ``up-camera`` (``a=content:main``) and an ``up-screen`` (``a=content:slides``) line per video
codec (``UP_VIDEO_CODECS``, each line one codec), and ``audio_slots`` ``up-mic`` lines, the msid
of each naming the endpoint it carries now. A camera or screen goes up in the line of its own
codec, forwarded untouched: the origin's ``Stream`` of a line is labelled with the line's codec
once, and a line never carries another (no transcode at the edge, none at the origin for viewers
of that codec). Down (recvonly), the same layout: a ``main`` and a ``slides`` line per video codec
(``a=content:main``/``slides``; ``alt,main``/``alt,slides`` for the codecs after the edge's
first), in which the origin forwards each source untouched in its own codec (the edge transcodes
once, for its subscribers of another codec), ``audio_slots`` ``audio`` lines, and ``composite`` +
``mix`` (asked for with ``a=content``) once an edge subscriber is in MCU mode: one composite, in
the edge's first codec (the origin encodes it; one per codec would double its encoders).
Rolling upgrade: the first codec's pair comes first, so an origin of the version before serves
it as it did (``main``, ``slides``) and leaves the ``alt`` lines unrouted ("extra"); an edge of
the version before offers one pair without a=content, which a new origin serves as before.
The vocabulary is ``mcu.peer.cascade_sdp``'s.

The origin's answer installs an ``Output`` per up line (routed by the trunk) and a ``Stream`` per
down line the origin sends on, labelled "" until media arrives (the trunk watches them).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from mcu.api import VIDEO_CODECS, PeerSpec
from mcu.bridge.rendition_policy import RENDITION_BITRATE
from mcu.fence import sender_rtx_ssrc, sender_ssrc, set_sender_stream_id
from mcu.peer.cascade_sdp import ALT, CASCADE_ROLE, add_content, encode_label
from mcu.peer.codec_choice import prefer_codecs
from mcu.peer.negotiation import describe, sends
from mcu.peer.rtcp import REMB_MAX
from mcu.peer.tracks import IdleTrack
from mcu.peer.transport import PeerTransport
from mcu.sfu.router import Router
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import H264_ENCODED, H264_PROFILE_RANK, H264Format, Output

# The composite rendition asked for over the trunk: MCU mode is for thin/mobile communes (their
# start renditions are 360p/180p); the origin's rendition controller still moves it on the trunk's loss.
COMPOSITE_RENDITION = "360p"
# What the edge's REMB allows per received slot: the composite just over its rendition's bitrate,
# so the origin's rendition controller may move it down on loss but never up (the edge cannot
# scale a bigger rendition down for its thin subscribers)
REMB_CAPS = {**REMB_MAX, "composite": RENDITION_BITRATE[COMPOSITE_RENDITION] * 6 // 5}
# role of each line -> (kind, direction, a=content, Stream.source for received lines)
DOWN = {
    "main": ("video", "camera", "main"),
    "slides": ("video", "screen", "slides"),
    "audio": ("audio", "mic", ""),
    "composite": ("video", "composite", "composite"),
    "mix": ("audio", "mix", "mix"),
}
# a=content:main tells the origin that each camera line is a camera (mcu.peer.lines.publisher_stream)
UP = {"up-camera": ("video", "main"), "up-screen": ("video", "slides"), "up-mic": ("audio", "")}
UP_VIDEO_CODECS = VIDEO_CODECS  # one up-camera and one up-screen line of each


def origin_spec(meeting_id: str, node_id: str, endpoint_id: str) -> PeerSpec:
    """The trunk's peer on the origin: a ``cascade`` member named after this edge node."""
    return PeerSpec(
        meeting_id=meeting_id,
        endpoint_id=endpoint_id,
        display_name=f"{node_id} (cascade)",
        role=CASCADE_ROLE,
        link="fibre",
        publish=True,
        # the edge offers every line itself (no server offers); SFU until it asks for MCU
        extra={
            "media_mode": "sfu",
            "renegotiate": False,
            "start_rendition": COMPOSITE_RENDITION,
            "start_tier": COMPOSITE_RENDITION,  # the same, for an origin of the version before #12 (rolling upgrade)
            "cascade_edge": node_id,
        },
    )


class TrunkLines:
    """The m-lines of one trunk's connection: what each carries, the edge's offer, the answer."""

    def __init__(
        self,
        transport: PeerTransport,
        router: Router,
        *,
        label: str,
        endpoint_id: str,
        video_codec: str,
        keyframe_interval: float,
    ) -> None:
        self.pc: RTCPeerConnection | None = None  # made once the origin has a peer for the trunk
        self.transport = transport
        self.router = router
        self.label = label  # endpoint id of the origin's streams here
        self.endpoint_id = endpoint_id  # the trunk's endpoint id at the origin
        self.video_codec = video_codec  # the first down pair's and the composite's (the origin encodes that)
        self.keyframe_interval = keyframe_interval
        self.roles: dict[RTCRtpTransceiver, str] = {}
        self.codecs: dict[RTCRtpTransceiver, str] = {}  # of the lines of one video codec
        self.streams: dict[str, Stream] = {}  # received from the origin, by mid
        self.outputs: dict[str, Output] = {}  # sent up, by mid
        self.offers = 0  # answered

    def open(self, pc: RTCPeerConnection, audio_slots: int) -> None:
        """The connection and the first offer's lines."""
        self.pc = pc
        for role in ("up-camera", "up-screen"):
            for codec in UP_VIDEO_CODECS:
                self._add(role, "sendonly", codec)
        for role in ["up-mic"] * audio_slots:
            self._add(role, "sendonly")
        first, *others = self.down_codecs
        for role in ["main", "slides"]:
            self._add(role, "recvonly", first)
        for role in ["audio"] * audio_slots:
            self._add(role, "recvonly")
        for codec in others:  # after the first pair: an origin of the version before leaves them "extra"
            for role in ["main", "slides"]:
                self._add(role, "recvonly", codec)

    @property
    def down_codecs(self) -> list[str]:
        """The codecs of the down main/slides pairs, the edge's first; forwarding needs no encoder."""
        return [self.video_codec, *(c for c in VIDEO_CODECS if c != self.video_codec)]

    def _add(self, role: str, direction: str, codec: str = "") -> None:
        kind = UP[role][0] if role in UP else DOWN[role][0]
        track = IdleTrack(kind) if direction == "sendonly" else kind
        assert self.pc is not None  # lines are added once open() has the connection
        t = self.pc.addTransceiver(track, direction=direction)
        prefer_codecs(t, kind, [codec or self.video_codec] if kind == "video" else ["opus"])
        self.roles[t] = role
        if codec:
            self.codecs[t] = codec

    def down(self, role: str) -> Stream | None:
        """The stream the origin sends in the line of that role, once answered."""
        for t, r in self.roles.items():
            if r == role and t.mid in self.streams:
                return self.streams[t.mid]
        return None

    async def offer(self, labels: dict[str, str | None], mcu: bool) -> str:
        """The edge's offer: every line (composite + mix added once ``mcu``), up lines labelled."""
        if mcu and "composite" not in self.roles.values():
            self._add("composite", "recvonly")
            self._add("mix", "recvonly")
        for t, role in self.roles.items():
            if role in UP:
                set_sender_stream_id(t.sender, encode_label(labels.get(t.mid or "")))
        assert self.pc is not None
        await self.pc.setLocalDescription(await self.pc.createOffer())
        contents = {}
        for t, role in self.roles.items():
            content = UP[role][1] if role in UP else self._down_content(t, role)
            if content and t.mid is not None:
                contents[t.mid] = content
        return add_content(self.pc.localDescription.sdp, contents)

    def _down_content(self, t: RTCRtpTransceiver, role: str) -> str:
        content = DOWN[role][2]
        if role in ("main", "slides") and self.codecs.get(t, self.video_codec) != self.video_codec:
            return f"{ALT},{content}"
        return content

    async def accept(self, answer: str) -> None:
        """Install the origin's answer: an output per up line, a stream per down line it sends on."""
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self.offers += 1
        remote = describe(answer)
        for t, role in self.roles.items():
            line = remote.get(t.mid) if t.mid is not None else None
            if line is None or t.mid is None:
                continue
            if role in UP and t.mid not in self.outputs:
                out = Output(
                    endpoint_id=self.endpoint_id,
                    kind=line.kind,
                    role=role,
                    ssrc=sender_ssrc(t.sender),
                    payload_type=line.payload_type or 0,
                    clock_rate=line.clock_rate,
                    rtx_ssrc=sender_rtx_ssrc(t.sender) if line.rtx_payload_type else None,
                    rtx_payload_type=line.rtx_payload_type,
                    audio_level_id=line.audio_level_id,
                    codec=line.codec,  # what the origin labels this line's stream: never another codec
                    payload_types=line.payload_types,
                )
                self.outputs[t.mid] = out
                self.transport.add_output(out)
            elif role in DOWN and t.mid not in self.streams and sends(line.direction):
                stream = Stream(
                    stream_id=f"{self.label}/{t.mid}",
                    endpoint_id="",
                    kind=line.kind,
                    source=DOWN[role][1],
                    codec=line.codec or "OPUS",
                    clock_rate=line.clock_rate,
                    audio_level_id=line.audio_level_id,
                    h264_format=_widest(line.h264_formats),
                    send_keyframe_request=self.transport.send_keyframe_request,
                    send_nack=self.transport.send_nack,
                    keyframe_interval=self.keyframe_interval,
                )
                stream.via = self.label  # endpoint_id: "" until media arrives (the trunk's watch)
                self.transport.add_stream(stream, t.mid, line.ssrcs, line.rtx_ssrcs, line.mid_ext_id)
                self.streams[t.mid] = stream
                self.router.add_stream(stream)
        first = self.pc.getTransceivers()[0]
        self.transport.attach(first.receiver.transport, sender_ssrc(first.sender))


def _widest(formats: Iterable[H264Format]) -> H264Format:
    """The H.264 format a down line may carry at most: the origin forwards a source in any format
    the line negotiated, so the edge's router assumes the most demanding (mode 1 over 0, then the
    profile) and transcodes for an edge subscriber that cannot read it."""
    return max(formats, key=lambda f: (f[0], H264_PROFILE_RANK.get(f[1], 0)), default=H264_ENCODED)
