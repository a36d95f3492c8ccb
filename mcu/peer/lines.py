"""What one negotiated m-line of a ``LocalPeer`` becomes: a publisher ``Stream`` (lines the client
sends), an ``Output`` (lines it receives), and which role an output plays in the meeting.

Construction, no I/O, kept apart from ``mcu.peer.peer``'s negotiation and lifecycle. One side effect:
``role_for_client_mline`` switches a cascade edge's ``media_mode`` to "both" when the edge asks
for composite lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from aiortc import RTCPeerConnection

from mcu.api import PeerSpec
from mcu.peer.cascade_sdp import CASCADE_CONTENT, CASCADE_ROLE, cascade_role
from mcu.fence import sender_rtx_ssrc, sender_ssrc
from mcu.peer.negotiation import MLine
from mcu.peer.transport import PeerTransport
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output


class LineOwner(Protocol):
    """The peer whose m-lines these are (``mcu.peer.peer.LocalPeer``)."""

    endpoint_id: str
    spec: PeerSpec
    media_mode: str
    keyframe_interval: float
    transport: PeerTransport
    pc: RTCPeerConnection

    @property
    def streams(self) -> Mapping[str, Stream]: ...


def role_for_client_mline(peer: LineOwner, line: MLine, roles: list[str]) -> str:
    """The role of a receive line the client offered (``roles``: those it has), from its kind and
    ``a=content``."""
    cascade = cascade_role(line.content) if peer.spec.role == CASCADE_ROLE else None
    if cascade in CASCADE_CONTENT:
        peer.media_mode = "both"  # an edge with MCU-mode subscribers: compose for it too
    if cascade is not None:
        return cascade  # a main/slides line per codec: mcu.meeting routes a source in its own
    if peer.media_mode == "mcu":
        role = "mix" if line.kind == "audio" else "composite"
        return role if role not in roles else "extra"
    if line.kind == "audio":
        return "audio"
    if line.content == "slides":
        return "slides"
    if "main" not in roles:
        return "main"
    return "slides" if "slides" not in roles else "extra"


def publisher_stream(peer: LineOwner, mid: str, local: MLine, remote: MLine) -> Stream:
    if local.kind == "audio":
        source = "mic"
    elif remote.content == "slides" or (
        remote.content != "main" and any(s.source == "camera" for s in peer.streams.values())
    ):  # a=content:main: a camera whatever came first (a cascade trunk has a camera line per codec)
        source = "screen"
    else:
        source = "camera"
    return Stream(
        stream_id=f"{peer.endpoint_id}/{mid}",
        endpoint_id=peer.endpoint_id,
        kind=local.kind,
        source=source,
        codec=local.codec,
        clock_rate=local.clock_rate,
        audio_level_id=local.audio_level_id,
        send_keyframe_request=peer.transport.send_keyframe_request,
        send_nack=peer.transport.send_nack,
        keyframe_interval=peer.keyframe_interval,
        priority=1 if source == "screen" else 0,
        h264_format=local.h264_format,  # the format of our answer's first H.264: the one it sends
    )


def subscriber_output(peer: LineOwner, mid: str, line: MLine, role: str) -> Output:
    sender = next(t for t in peer.pc.getTransceivers() if t.mid == mid).sender
    return Output(
        endpoint_id=peer.endpoint_id,
        kind=line.kind,
        role=role,
        ssrc=sender_ssrc(sender),
        payload_type=line.payload_type or 0,
        clock_rate=line.clock_rate,
        rtx_ssrc=sender_rtx_ssrc(sender) if line.rtx_payload_type else None,
        rtx_payload_type=line.rtx_payload_type,
        audio_level_id=line.audio_level_id,
        priority=1 if role == "slides" else 0,
        codec=line.codec,
        payload_types=line.payload_types,
        h264_formats=line.h264_formats,
    )
