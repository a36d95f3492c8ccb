"""SDP for a room system's plain RTP leg: read its offer, choose, answer (RFC 3264).

The leg (``mcu.rtp.leg``) does, for every offer (the INVITE's, the 200's of a delayed-offer
dial-out, each re-INVITE's)::

    offer = parse_offer(text)                       # SdpError naming the line
    chosen = choose(offer, prefs, video_codecs)     # OfferRefused: no common audio (the 488)
    locals = [LocalMedia(port, answer_crypto(c.crypto) if c.crypto else None, kbps) if c else None
              for c in chosen]
    answer = build_answer(offer, chosen, locals, address)

``build_answer`` writes one m-line per offered line, in order: a refused one with port 0 and the
first offered format; a chosen one with our RTP port, ``a=rtcp`` on the next port (no rtcp-mux,
even when offered: room systems all take RTCP on port + 1), the offered protocol (RTP/SAVP with
our own ``a=crypto`` of the suite and tag taken), the chosen format and the telephone-event of its
clock (``0-15``), ``a=ptime:20`` for audio, ``b=AS`` (what we take from the room's camera, RFC 3264 §5) for video,
and the direction RFC 3264 answers (sendonly -> recvonly, inactive -> inactive).

H.264 is answered in the packetization mode the room offered. Its profile-level-id is constrained
baseline (what the composite is) at the offered level, at most 3.1 (``video_caps.answered_baseline``)
for a baseline offer; for a main or high one the offered value is repeated, as RFC 6184 8.2.2 asks of an answer without level-asymmetry-allowed:
the room decodes our constrained baseline, a subset of its profile, and we decode what it sends.
This text was checked against baresip 1.0 (tests/mcu/rtp/test_sdp_baresip.py).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass

from mcu.rtp.video_caps import answered_baseline
from mcu.rtp.choice import AUDIO, Chosen, choose, h264_format, refusal
from mcu.rtp.offer import Format, MediaLine, RtpOffer, SdpError, parse_offer
from mcu.rtp.sdes import Crypto, answer_crypto

__all__ = [
    "Chosen",
    "Crypto",
    "Format",
    "LocalMedia",
    "MediaLine",
    "RtpOffer",
    "SdpError",
    "answer_crypto",
    "build_answer",
    "choose",
    "h264_format",
    "parse_offer",
    "refusal",
]

H264_SENT = "42e01f"  # constrained baseline, level 3.1: what the composite and transcodes are
PTIME_MS = 20
DTMF_EVENTS = "0-15"  # the digits, * and #, A-D
FEEDBACK = ("nack pli", "ccm fir", "nack")  # the RTCP feedback we read and send (mcu.peer.rtcp)
NAMES = {"OPUS": "opus", "TELEPHONE-EVENT": "telephone-event"}  # as RFCs 7587 and 4733 write them


@dataclass(frozen=True)
class LocalMedia:
    """Our side of one chosen m-line."""

    port: int  # our RTP port; RTCP is on port + 1
    crypto: Crypto | None = None  # our key, for an RTP/SAVP line (``answer_crypto(chosen.crypto)``)
    bandwidth_kbps: int | None = None  # video: what we receive at most (b=AS: the room's camera cap)


def build_answer(
    offer: RtpOffer,
    chosen: Sequence[Chosen | None],
    locals: Sequence[LocalMedia | None],
    address: str,
    *,
    session_id: int | None = None,
    version: int = 1,
) -> str:
    """The SDP answer (CRLF lines). ``chosen`` and ``locals`` have one entry per offered m-line;
    ``address`` is ours (IPv4 or IPv6). Keep ``session_id`` and raise ``version`` for the answers
    to a re-INVITE of the same call."""
    if not (len(chosen) == len(locals) == len(offer.lines)):
        raise ValueError("build_answer needs one chosen and one local entry per offered m-line")
    family = "IP4" if ipaddress.ip_address(address).version == 4 else "IP6"
    sid = session_id if session_id is not None else random.randrange(1, 2**31)
    out = ["v=0", f"o=giaoban {sid} {version} IN {family} {address}", "s=giaoban", f"c=IN {family} {address}", "t=0 0"]
    for media, pick, local in zip(offer.lines, chosen, locals):
        if pick is None:
            out.append(f"m={media.kind} 0 {media.proto} {media.tokens[0]}")
        elif local is None:
            raise ValueError(f"the chosen m-line {media.index} ({media.kind}) has no LocalMedia")
        else:
            out += _answered_line(media, pick, local)
    return "\r\n".join(out) + "\r\n"


def _answered_line(media: MediaLine, pick: Chosen, local: LocalMedia) -> list[str]:
    pts = [pick.format.pt] + ([pick.dtmf.pt] if pick.dtmf else [])
    lines = [f"m={media.kind} {local.port} {media.proto} {' '.join(map(str, pts))}"]
    if media.kind == "video" and local.bandwidth_kbps:
        lines.append(f"b=AS:{local.bandwidth_kbps}")
    lines.append(f"a=rtpmap:{pick.format.pt} {_encoding(pick)}")
    fmtp = _fmtp(pick)
    if fmtp:
        lines.append(f"a=fmtp:{pick.format.pt} {fmtp}")
    if pick.dtmf:
        lines += [f"a=rtpmap:{pick.dtmf.pt} telephone-event/{pick.dtmf.clock}", f"a=fmtp:{pick.dtmf.pt} {DTMF_EVENTS}"]
    if media.kind == "audio":
        lines.append(f"a=ptime:{PTIME_MS}")
    lines.append(f"a=rtcp:{local.port + 1}")
    if media.secure:
        if local.crypto is None:
            raise ValueError(f"the RTP/SAVP m-line {media.index} needs our a=crypto (LocalMedia.crypto)")
        lines.append(local.crypto.attribute())
    lines += _feedback(media, pick.format.pt)
    if media.content:
        lines.append(f"a=content:{','.join(media.content)}")
    if media.label:
        lines.append(f"a=label:{media.label}")
    lines.append(f"a={pick.direction}")
    return lines


def _encoding(pick: Chosen) -> str:
    if pick.kind == "audio":
        name, clock, channels = AUDIO[pick.codec]
        return f"{NAMES.get(name, name)}/{clock}" + (f"/{channels}" if channels > 1 else "")
    return f"{pick.codec}/90000"


def _fmtp(pick: Chosen) -> str:
    h264 = pick.h264
    if h264 is None:
        return ""
    mode, profile_idc = h264
    offered = pick.format.params.get("profile-level-id", H264_SENT).lower()
    profile = answered_baseline(pick.format.params) if profile_idc == 0x42 else offered
    return f"profile-level-id={profile};packetization-mode={mode}"


def _feedback(media: MediaLine, pt: int) -> list[str]:
    """The offered a=rtcp-fb values for the chosen format (or '*') that we act on, echoed."""
    kept = []
    for value in media.feedback:
        target, _, kind = value.partition(" ")
        if target in ("*", str(pt)) and kind in FEEDBACK:
            kept.append(f"a=rtcp-fb:{target} {kind}")
    return list(dict.fromkeys(kept))
