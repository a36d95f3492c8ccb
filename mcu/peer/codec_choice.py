"""Which codecs each m-line of a media peer carries, and the offers it refuses before aiortc reads them.

The video codecs a peer is served are its meeting's (``PeerExtra["video_codecs"]``, in order of
preference); audio is Opus. For a client offer, each line's answer lists the offered codecs that
are served, in the MEETING's order, each followed by its RTX, with the offerer's payload types and
fmtp echoed: the client sends the first, and may receive any of them (``Output.payload_types``);
an H.264 source reaches it untouched only in a packetization mode and profile that one of its
H.264 formats reads (``MLine.h264_formats``, ``mcu.sfu.subscriber.h264_covers``), else through
the shared transcode to H.264 (single NAL units, constrained baseline).

aiortc answers only from its own capability table (H.264: packetization-mode 1 with profiles
42001f/42e01f), so it is shown the offer with every served H.264 format rewritten as one it knows
(``offer_for_aiortc``), and the codec list it computed for each line is then replaced with ours
(``mcu.fence.set_negotiated_codecs``). Nothing it decodes depends on that list: the media bypasses
its RTP objects (``mcu.peer.transport``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

from aiortc import RTCRtpCodecParameters, RTCRtpSender, RTCRtpTransceiver
from aiortc import sdp as aiosdp

from mcu.api import VIDEO_CODECS
from mcu.peer.negotiation import AUXILIARY, NegotiationError, rtx_of

AUDIO_CODECS = ("OPUS",)
# H.264 formats forwarded (RFC 6184 fmtp profile-level-id: profile_idc, constraint flags, level_idc):
# baseline and constrained baseline (42, whatever the flags: x264enc says 42c01f, browsers 42e01f),
# main (4d) and high (64), levels 1 to 5.2; what WHIP encoders, room systems and browsers send
H264_PROFILE_IDC = {0x42: "baseline", 0x4D: "main", 0x64: "high"}
H264_LEVELS = range(0x0A, 0x35)
H264_MODES = ("0", "1")
H264_FOR_AIORTC = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
# the RTCP feedback the router acts on or sends (mcu.sfu.router, mcu.peer.rtcp)
FEEDBACK = {("nack", None), ("nack", "pli"), ("ccm", "fir"), ("goog-remb", None)}
CLOCK = {"VP8": 90000, "H264": 90000, "OPUS": 48000}


def served_video_codecs(wanted: Iterable[str] | None) -> list[str]:
    """The meeting's video codecs in its order; names this node cannot forward are ignored, and
    none left (or none given) means the default."""
    served: list[str] = []
    for name in wanted or ():
        upper = str(name).upper()
        if upper in VIDEO_CODECS and upper not in served:
            served.append(upper)
    return served or list(VIDEO_CODECS)


def served_for(kind: str, video: Sequence[str]) -> Sequence[str]:
    return video if kind == "video" else AUDIO_CODECS


def serves(codec: RTCRtpCodecParameters, served: Sequence[str]) -> bool:
    """``codec`` (one offered format) is one of ``served`` in a form this node forwards."""
    name = codec.name.upper()
    if name not in served or codec.clockRate != CLOCK.get(name):
        return False
    if name == "H264":
        mode = str(codec.parameters.get("packetization-mode", "0"))
        # no profile-level-id: constrained baseline, as browsers and aiortc read it
        profile = str(codec.parameters.get("profile-level-id", "42e01f")).lower()
        return mode in H264_MODES and h264_profile_served(profile)
    return True


def h264_profile_served(profile_level_id: str) -> bool:
    """A profile-level-id (6 hex digits) of a baseline, main or high profile this node forwards."""
    try:
        value = int(profile_level_id, 16)
    except ValueError:
        return False
    return len(profile_level_id) == 6 and value >> 16 in H264_PROFILE_IDC and value & 0xFF in H264_LEVELS


def answer_codecs(media: aiosdp.MediaDescription, served: Sequence[str]) -> list[RTCRtpCodecParameters]:
    """The codecs our answer lists for this offered m-line: the served ones in ``served`` order
    (several formats of one codec in the offer's order), each followed by its RTX."""
    offered = media.rtp.codecs
    chosen: list[RTCRtpCodecParameters] = []
    for name in served:
        for codec in offered:
            if codec.name.upper() != name or not serves(codec, served):
                continue
            chosen.append(_echoed(codec))
            rtx = rtx_of(offered, codec.payloadType)
            if rtx is not None:
                chosen.append(_echoed(rtx))
    return chosen


def _echoed(codec: RTCRtpCodecParameters) -> RTCRtpCodecParameters:
    """The offered format as our answer repeats it: its payload type and fmtp, the feedback we use."""
    answered = copy.deepcopy(codec)
    answered.rtcpFeedback = [fb for fb in codec.rtcpFeedback if (fb.type, fb.parameter) in FEEDBACK]
    return answered


def plan_answer(desc: aiosdp.SessionDescription, video: Sequence[str]) -> dict[str, list[RTCRtpCodecParameters]]:
    """mid -> the codecs of our answer for each audio/video line of a client offer; raises
    ``NegotiationError`` with a sentence for an offer this node cannot serve."""
    lines = [m for m in desc.media if m.kind in ("audio", "video")]
    if not lines:
        raise NegotiationError("the offer has no audio or video m-line (m=audio, m=video): offer at least one")
    plan: dict[str, list[RTCRtpCodecParameters]] = {}
    for media in lines:
        where = f"the offer's m={media.kind} line" + (f" (a=mid:{media.rtp.muxId})" if media.rtp.muxId else "")
        if not media.rtp.muxId:
            raise NegotiationError(f"{where} has no a=mid: every m-line needs one (BUNDLE)")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise NegotiationError(f"{where} has no ICE credentials: a=ice-ufrag and a=ice-pwd are required")
        if not media.rtcp_mux:
            raise NegotiationError(f"{where} has no a=rtcp-mux: RTP and RTCP must share one port")
        served = served_for(media.kind, video)
        codecs = answer_codecs(media, served)
        if not codecs:
            raise NegotiationError(refusal(media, served))
        plan[media.rtp.muxId] = codecs
    return plan


def refusal(media: aiosdp.MediaDescription, served: Sequence[str]) -> str:
    """'the offer's video codecs are H265, AV1; this meeting takes VP8, H264'."""
    offered: list[str] = []
    for codec in media.rtp.codecs:
        name = codec.name.upper()
        if codec.name.lower() in AUXILIARY:
            continue
        if name == "H264" and name in served:  # refused for its format: say which
            p = codec.parameters
            name += f" (profile-level-id {p.get('profile-level-id', '-')}, packetization-mode {p.get('packetization-mode', 0)})"
        if name not in offered:
            offered.append(name)
    takes = ", ".join(served)
    if "H264" in served and any(c.name.upper() == "H264" for c in media.rtp.codecs):
        takes += " (H264 of baseline, constrained baseline, main or high profile, packetization-mode 0 or 1)"
    subject = "meeting" if media.kind == "video" else "server"
    return f"the offer's {media.kind} codecs are {', '.join(offered) or 'none'}; this {subject} takes {takes}"


def offer_for_aiortc(sdp_text: str, plan: dict[str, list[RTCRtpCodecParameters]]) -> str:
    """The offer with each served H.264 format's fmtp replaced by one aiortc's capability table
    has, so that its setRemoteDescription accepts every line we answer (the real fmtp is echoed
    from ``plan``)."""
    out: list[str] = []
    for section in _sections(sdp_text):
        mid = next((line[6:].strip() for line in section if line.startswith("a=mid:")), "")
        h264 = {str(c.payloadType) for c in plan.get(mid, []) if c.name.upper() == "H264"}
        for line in section:
            pt = line.split(":", 1)[1].split(" ", 1)[0] if line.startswith(("a=fmtp:", "a=rtpmap:")) else ""
            if pt not in h264:
                out.append(line)
            elif line.startswith("a=rtpmap:"):
                out += [line, f"a=fmtp:{pt} {H264_FOR_AIORTC}"]
    return "\r\n".join(out) + "\r\n"


def _sections(sdp_text: str) -> list[list[str]]:
    """The session part, then each m-section, as lists of lines."""
    sections: list[list[str]] = [[]]
    for line in sdp_text.splitlines():
        if line.startswith("m="):
            sections.append([])
        if line:
            sections[-1].append(line)
    return sections


def prefer_codecs(transceiver: RTCRtpTransceiver, kind: str, codecs: Sequence[str]) -> None:
    """Offer ``codecs`` in this order on a line we offer (each with its RTX, for video)."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for name in codecs for c in caps if c.mimeType.lower() == f"{kind}/{name}".lower()]
    if kind == "video":
        chosen += [c for c in caps if c.mimeType.lower() == "video/rtx"]
    transceiver.setCodecPreferences(chosen)
