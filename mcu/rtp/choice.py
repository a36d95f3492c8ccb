"""Which codec each m-line of a room system's offer is answered with (``choose``).

Audio: OPUS/48000/2, G722/8000, PCMU or PCMA, in the room's order of preference (the directory's
``sip.codecs``, which also names video codecs: those are left out here), then the rest in our
default order (Opus, G.722, PCMU, PCMA): the directory's list orders, it does not forbid. The
first offered audio line that carries one of them is the call's audio; with none, the whole offer
is refused (``OfferRefused``, its message the SIP 488's Warning). Its telephone-event format
(RFC 4733) is kept for DTMF PINs: the one of the same clock, else any offered.

Video: what the meeting's composite can be sent as. H.264 in a format that reads what this node
encodes (single NAL units, constrained baseline: ``mcu.sfu.subscriber.h264_covers``), from a
baseline, main or high profile in packetization mode 0 or 1 (``mcu.peer.codec_choice``), the first
such format in the offer's order; VP8 only when that is all the room offers; each only when the
meeting's ``video_codecs`` has it. The first video line not marked ``a=content:slides`` (RFC 4796)
is the camera; the first one marked so is chosen alike and marked ``slides`` (the leg may refuse
it: BFCP is not served), never taken as the camera. A video line without a common codec, an extra
line, a line the room disabled (port 0) or any non-RTP line (BFCP, ``m=application``) gets
``None``: answered with port 0, the call goes on without it.

An RTP/SAVP line is taken only with an ``a=crypto`` we can use (``mcu.rtp.sdes``), the first in
the offer's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mcu.api import OfferRefused
from mcu.peer.codec_choice import H264_MODES, h264_profile_served, served_video_codecs
from mcu.rtp.offer import Format, MediaLine, RtpOffer
from mcu.rtp.sdes import Crypto
from mcu.sfu.subscriber import H264_ENCODED, H264Format, h264_covers

# codec -> (rtpmap name, RTP clock, channels) as RFC 3551 / RFC 7587 write them
AUDIO = {"OPUS": ("OPUS", 48000, 2), "G722": ("G722", 8000, 1), "PCMU": ("PCMU", 8000, 1), "PCMA": ("PCMA", 8000, 1)}
AUDIO_DEFAULT = ("OPUS", "G722", "PCMU", "PCMA")
VIDEO_ORDER = ("H264", "VP8")  # H.264 first: what room systems decode best; VP8 when it is all
DTMF = "TELEPHONE-EVENT"
MAX_OFFERED_TEXT = 300  # characters of the refusal that describe the offer
ANSWERED_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


@dataclass(frozen=True)
class Chosen:
    """What one offered m-line is answered with."""

    index: int  # the m-line's position in the offer
    kind: str  # audio | video
    codec: str  # OPUS, G722, PCMU, PCMA, H264, VP8
    format: Format  # the offered format taken: its payload type, clock and fmtp
    direction: str  # the answer's direction (RFC 3264: sendonly -> recvonly, ...)
    dtmf: Format | None = None  # the offered telephone-event (of the audio codec's clock if offered)
    crypto: Crypto | None = None  # the offered a=crypto taken (RTP/SAVP lines)
    slides: bool = False  # a second video line marked a=content:slides

    @property
    def h264(self) -> H264Format | None:
        """(packetization mode, profile_idc) of an H.264 choice."""
        return h264_format(self.format) if self.codec == "H264" else None


def choose(offer: RtpOffer, prefs: Iterable[str] | None, video_codecs: Iterable[str] | None) -> list[Chosen | None]:
    """One entry per offered m-line (None: refused with port 0); raises ``OfferRefused`` when no
    audio line has a codec (and, for RTP/SAVP, a key) we take."""
    audio_order, video_order = codec_orders(prefs, video_codecs)
    chosen: list[Chosen | None] = []
    have_audio = have_camera = have_slides = False
    for media in offer.lines:
        pick: Chosen | None = None
        if media.kind == "audio" and not have_audio:
            pick = _choose_line(media, audio_order, _audio_format)
            have_audio = pick is not None
        elif media.kind == "video" and media.slides and not have_slides:
            pick = _choose_line(media, video_order, _video_format)
            pick = pick and _as_slides(pick)
            have_slides = pick is not None
        elif media.kind == "video" and not media.slides and not have_camera:
            pick = _choose_line(media, video_order, _video_format)
            have_camera = pick is not None
        chosen.append(pick)
    if not have_audio:
        raise OfferRefused(refusal(offer, audio_order))
    return chosen


def codec_orders(prefs: Iterable[str] | None, video_codecs: Iterable[str] | None) -> tuple[list[str], list[str]]:
    """The audio and video codecs we take, best first: the room's preferences, then ours."""
    wanted = [str(p).upper() for p in prefs or ()]
    audio_order = [c for c in wanted if c in AUDIO] + [c for c in AUDIO_DEFAULT if c not in wanted]
    meeting = served_video_codecs(video_codecs)
    video_order = [c for c in wanted if c in meeting] + [c for c in VIDEO_ORDER if c in meeting and c not in wanted]
    return audio_order, video_order


def _choose_line(media: MediaLine, order: Sequence[str], match: Callable[[str, Format], bool]) -> Chosen | None:
    if not media.rtp or media.port == 0:
        return None
    crypto = next((c for c in media.crypto if c.usable), None)
    if media.secure and crypto is None:
        return None
    for codec in order:
        fmt = next((f for f in media.formats if match(codec, f)), None)
        if fmt is not None:
            dtmf = _telephone_event(media, fmt)
            direction = ANSWERED_DIRECTION[media.sending_direction]
            audio_dtmf = dtmf if media.kind == "audio" else None
            return Chosen(media.index, media.kind, codec, fmt, direction, audio_dtmf, crypto if media.secure else None)
    return None


def _telephone_event(media: MediaLine, fmt: Format) -> Format | None:
    """The offered telephone-event of the codec's clock (RFC 4733 7.1.1), else any offered one:
    rooms such as baresip offer Opus/48000 with telephone-event/8000 only. We only read event
    codes and end bits, which mean the same at any clock, so their PIN keys still count."""
    events = [f for f in media.formats if f.name == DTMF]
    return next((f for f in events if f.clock == fmt.clock), events[0] if events else None)


def _as_slides(pick: Chosen) -> Chosen:
    return Chosen(pick.index, pick.kind, pick.codec, pick.format, pick.direction, None, pick.crypto, slides=True)


def _audio_format(codec: str, fmt: Format) -> bool:
    name, clock, channels = AUDIO[codec]
    if codec == "OPUS":  # RFC 7587: always opus/48000/2, whatever is sent
        return fmt.name == name and fmt.clock == clock
    return fmt.name == name and fmt.clock == clock and fmt.channels == channels


def _video_format(codec: str, fmt: Format) -> bool:
    if fmt.name != codec or fmt.clock != 90000:
        return False
    if codec == "H264":
        h264 = h264_format(fmt)
        return h264 is not None and h264_covers(h264, H264_ENCODED)
    return True


def h264_format(fmt: Format) -> H264Format | None:
    """(packetization mode, profile_idc) of an offered H.264 format we serve, else None. No
    profile-level-id reads as constrained baseline, as ``mcu.peer.codec_choice`` reads it."""
    mode = fmt.params.get("packetization-mode", "0")
    profile = fmt.params.get("profile-level-id", "42e01f").lower()
    if mode not in H264_MODES or not h264_profile_served(profile):
        return None
    return int(mode), int(profile[:2], 16)


def refusal(offer: RtpOffer, audio_order: Sequence[str]) -> str:
    """'the offer's audio is G729/8000, G723/8000 on RTP/AVP; we take OPUS/48000/2, G722/8000, PCMU/8000, PCMA/8000'."""
    lines = [m for m in offer.lines if m.kind == "audio"]
    if not lines:
        return "the offer has no m=audio line; we take " + _takes(audio_order)
    described = []
    for media in lines:
        names = [f"{f.name or 'unnamed'}/{f.clock}" if f.clock else f"{f.name or 'unnamed'}" for f in media.formats]
        names = [n for n in dict.fromkeys(names) if not n.startswith(DTMF)] or ["no format"]
        what = f"{', '.join(names[:10])} on {media.proto}"
        if media.port == 0:
            what += " (port 0: disabled)"
        elif media.rtp and media.secure and not any(c.usable for c in media.crypto):
            problems = "; ".join(f"a=crypto:{c.tag} {c.problem}" for c in media.crypto[:3]) or "no a=crypto"
            what += f" without a key we can use ({problems})"
        described.append(what)
    offered = " | ".join(described[:4])
    if len(offered) > MAX_OFFERED_TEXT:
        offered = offered[: MAX_OFFERED_TEXT - 3] + "..."
    return f"the offer's audio is {_printable(offered)}; we take {_takes(audio_order)}"


def _printable(text: str) -> str:
    """ASCII without quotes and backslashes: the text becomes a SIP Warning's quoted string."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)


def _takes(order: Sequence[str]) -> str:
    parts = []
    for codec in order:
        name, clock, channels = AUDIO[codec]
        parts.append(f"{name}/{clock}" + (f"/{channels}" if channels > 1 else ""))
    return ", ".join(parts) + " on RTP/AVP or RTP/SAVP (SDES AES_CM_128_HMAC_SHA1_80 or _32)"
