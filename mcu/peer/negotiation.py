"""SDP helpers: codec preferences and what the router needs from a negotiated m-line.

Negotiation itself is aiortc's (standard SDP that browsers accept); this module only restricts
each transceiver to the meeting's codec (forwarding never transcodes, so every publisher and
subscriber of a meeting must agree on one video and one audio codec) and reads back, per mid,
the payload types, RTX pairing, header-extension ids and SSRCs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcu.api import MediaError

from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc import sdp as aiosdp

from mcu.sfu.rtp_header import URI_AUDIO_LEVEL, URI_MID

SUPPORTED_VIDEO = ("VP8", "H264")
SUPPORTED_AUDIO = ("OPUS",)


class NegotiationError(MediaError, ValueError):
    """The remote description cannot be served by this media node."""


def set_codec(transceiver: RTCRtpTransceiver, kind: str, codec: str) -> None:
    """Restrict a transceiver to ``codec`` (plus its RTX for video)."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    want = f"{kind}/{codec}".lower()
    chosen = [c for c in caps if c.mimeType.lower() == want]
    if kind == "video":
        chosen += [c for c in caps if c.mimeType.lower() == "video/rtx"]
    transceiver.setCodecPreferences(chosen)


@dataclass
class MLine:
    mid: str
    kind: str
    direction: str
    payload_type: int | None = None
    codec: str = ""
    clock_rate: int = 90000
    rtx_payload_type: int | None = None
    audio_level_id: int = 0
    mid_ext_id: int = 0
    ssrcs: list[int] = field(default_factory=list)
    rtx_ssrcs: list[int] = field(default_factory=list)
    content: str = ""


def check_bundle(sdp_text: str) -> None:
    """Refuse an offer whose m-lines aiortc would leave without a transport: it moves every
    bundled line onto the transport of the BUNDLE group's first mid, so a group naming a mid that
    no m-line has (or two lines sharing a mid) leaves lines with none, and the connect task then
    fails in the background: a peer that never connects and never fails."""
    try:
        desc = aiosdp.SessionDescription.parse(sdp_text)
    except Exception as exc:  # noqa: BLE001 - aiortc's parser raises whatever the text provokes
        raise NegotiationError(f"the offer is not SDP aiortc can read ({type(exc).__name__})") from None
    mids = [m.rtp.muxId for m in desc.media if m.rtp.muxId is not None]
    if len(set(mids)) != len(mids):
        raise NegotiationError("two m-lines of the offer have the same a=mid")
    for group in desc.group:
        unknown = [item for item in group.items if item not in mids]
        if group.semantic == "BUNDLE" and (unknown or len(set(group.items)) != len(group.items)):
            raise NegotiationError(
                f"a=group:BUNDLE names mids {' '.join(group.items)[:60]!r}; each must be the a=mid of one m-line"
            )


def describe(sdp_text: str) -> dict[str, MLine]:
    """Per-mid facts of an SDP (offer or answer)."""
    desc = aiosdp.SessionDescription.parse(sdp_text)
    out: dict[str, MLine] = {}
    contents = _contents(sdp_text)
    for media in desc.media:
        if media.kind not in ("audio", "video") or media.rtp.muxId is None:
            continue
        line = MLine(mid=media.rtp.muxId, kind=media.kind, direction=media.direction or "")
        line.content = contents.get(media.rtp.muxId, "")
        main = [c for c in media.rtp.codecs if c.name.lower() not in ("rtx", "red", "ulpfec")]
        if main:
            line.payload_type = main[0].payloadType
            line.codec = main[0].name.upper()
            line.clock_rate = main[0].clockRate
            for c in media.rtp.codecs:
                if c.name.lower() == "rtx" and str(c.parameters.get("apt")) == str(line.payload_type):
                    line.rtx_payload_type = c.payloadType
        for ext in media.rtp.headerExtensions:
            if ext.uri == URI_AUDIO_LEVEL:
                line.audio_level_id = ext.id
            elif ext.uri == URI_MID:
                line.mid_ext_id = ext.id
        for group in media.ssrc_group:
            if group.semantic == "FID" and len(group.items) >= 2:
                line.rtx_ssrcs.append(int(group.items[1]))
        line.ssrcs = [s.ssrc for s in media.ssrc if s.ssrc not in line.rtx_ssrcs]
        out[line.mid] = line
    return out


def _contents(sdp_text: str) -> dict[str, str]:
    """``a=content:`` (RFC 4796, e.g. "slides") per mid; aiortc's parser drops it."""
    result: dict[str, str] = {}
    mid = None
    content = ""
    for raw in sdp_text.splitlines():
        if raw.startswith("m="):
            if mid is not None and content:
                result[mid] = content
            mid, content = None, ""
        elif raw.startswith("a=mid:"):
            mid = raw[6:].strip()
        elif raw.startswith("a=content:"):
            content = raw[10:].strip().lower()
    if mid is not None and content:
        result[mid] = content
    return result


def sends(direction: str) -> bool:
    return direction in ("sendrecv", "sendonly")


def receives(direction: str) -> bool:
    return direction in ("sendrecv", "recvonly")
