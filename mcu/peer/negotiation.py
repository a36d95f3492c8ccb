"""SDP helpers: what the router needs from a negotiated m-line, and offers refused up front.

Negotiation itself is aiortc's (standard SDP that browsers accept), with the codecs of each line
chosen by ``mcu.peer.codec_choice``; this module reads back, per mid, the codecs (the first is
the one the line sends), their payload types and RTX pairing, header-extension ids and SSRCs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from mcu.api import MediaError

from aiortc import RTCRtpCodecParameters
from aiortc import sdp as aiosdp

from mcu.sfu.rtp_header import URI_AUDIO_LEVEL, URI_MID
from mcu.sfu.subscriber import BASELINE, H264_ENCODED, H264Format

log = logging.getLogger("mcu.peer.negotiation")

AUXILIARY = ("rtx", "red", "ulpfec", "flexfec-03")  # formats that carry no codec of their own

# aiortc's refusals (rtcpeerconnection.py) -> what the client is told, never aiortc's own text
AIORTC_REFUSALS = (
    ("description send parameters", "the {what} offers no codec this server forwards"),
    ("ICE username fragment or password", "the {what} has no ICE credentials: a=ice-ufrag and a=ice-pwd are required"),
    ("RTCP mux is not enabled", "the {what} has no a=rtcp-mux: RTP and RTCP must share one port"),
    ("DTLS setup attribute", "the {what}'s a=setup must be active or passive"),
    ("Media sections in answer", "the answer's m-lines are not those of the offer (the same kinds and mids, in order)"),
    ("Cannot handle", "the {what} came while another negotiation was under way: send it again"),
)


class NegotiationError(MediaError, ValueError):
    """The remote description cannot be served by this media node."""


@dataclass
class MLine:
    mid: str
    kind: str
    direction: str
    payload_type: int | None = None
    codec: str = ""  # the first of the line's codecs: the one it sends
    clock_rate: int = 90000
    rtx_payload_type: int | None = None
    audio_level_id: int = 0
    mid_ext_id: int = 0
    ssrcs: list[int] = field(default_factory=list)
    rtx_ssrcs: list[int] = field(default_factory=list)
    content: str = ""
    # every codec of the line -> (payload type, RTX payload type) of its first format
    payload_types: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    # every H.264 format of the line (packetization mode, profile_idc) in its order -> its payload types
    h264_formats: dict[H264Format, tuple[int, int | None]] = field(default_factory=dict)

    @property
    def h264_format(self) -> H264Format:
        """The format of the line's first H.264 payload type: the one its sender uses."""
        return next(iter(self.h264_formats), H264_ENCODED)


def h264_format(parameters: Mapping[str, object]) -> H264Format:
    """(packetization mode, profile_idc) of an H.264 fmtp; RFC 6184's defaults where a parameter is
    absent (mode 0) and, as browsers read it, baseline where profile-level-id is."""
    mode = str(parameters.get("packetization-mode", "0")).strip()
    profile = str(parameters.get("profile-level-id", "")).strip()
    try:
        idc = int(profile[:2], 16) if len(profile) == 6 else BASELINE
    except ValueError:
        idc = BASELINE
    return (1 if mode == "1" else 0 if mode == "0" else 2, idc)


def explain(what: str, exc: Exception, endpoint_id: str) -> str:
    """The sentence a client gets when aiortc refuses its ``what`` ("offer" or "answer")."""
    log.info("peer %s: aiortc refused the %s: %r", endpoint_id, what, exc)
    for needle, sentence in AIORTC_REFUSALS:
        if needle in str(exc):
            return sentence.format(what=what)
    log.warning("peer %s: %s refused for a reason not mapped to words: %r", endpoint_id, what, exc)
    return f"the {what} could not be applied (the media server logged why): check that it is a WebRTC {what}"


def check_bundle(sdp_text: str) -> aiosdp.SessionDescription:
    """The parsed offer; refused if its m-lines aiortc would leave without a transport: it moves
    every bundled line onto the transport of the BUNDLE group's first mid, so a group naming a mid
    that no m-line has (or two lines sharing a mid) leaves lines with none, and the connect task
    then fails in the background: a peer that never connects and never fails."""
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
    return desc


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
        for codec in media.rtp.codecs:
            name = codec.name.upper()
            if codec.name.lower() in AUXILIARY or codec.payloadType is None:
                continue
            found = rtx_of(media.rtp.codecs, codec.payloadType)
            rtx = found.payloadType if found is not None else None
            if name == "H264":
                line.h264_formats.setdefault(h264_format(codec.parameters), (codec.payloadType, rtx))
            if name in line.payload_types:
                continue
            line.payload_types[name] = (codec.payloadType, rtx)
            if not line.codec:
                line.payload_type, line.rtx_payload_type = codec.payloadType, rtx
                line.codec, line.clock_rate = name, codec.clockRate
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


def rtx_of(codecs: list[RTCRtpCodecParameters], payload_type: int | None) -> RTCRtpCodecParameters | None:
    """The RTX format of the line whose ``apt`` is ``payload_type``."""
    return next(
        (c for c in codecs if c.name.lower() == "rtx" and str(c.parameters.get("apt")) == str(payload_type)), None
    )


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
