"""Our own SDP offer to a room system, for an INVITE that came without one (RFC 3261 13.2.1: Cisco
CUCM and Expressway trunks send delayed-offer INVITEs): the leg offers in our 200 and the room
answers in its ACK (``RtpLeg.handle_answer``).

Plain RTP/AVP (an SDES key in a 200 over UDP would travel in the clear anyway): one audio line with
the codecs we take in the room's order (``choice.codec_orders``) and telephone-event/8000, then,
unless the leg is audio only, one video line with H.264 constrained baseline in packetization
modes 1 and 0 and VP8, as the meeting's codecs allow; a=rtcp on port + 1, b=AS of what we take
from its camera. The room's answer is read like an offer (``choice.choose``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from mcu.rtp.choice import AUDIO
from mcu.rtp.sdp import DTMF_EVENTS, FEEDBACK, H264_SENT, NAMES, PTIME_MS

AUDIO_PTS = {"PCMU": 0, "PCMA": 8, "G722": 9, "OPUS": 111}  # static ones as RFC 3551 numbers them
DTMF_PT = 101
# (rtpmap, fmtp) by payload type, per video codec
VIDEO_FORMATS = {
    "H264": [(96, "H264/90000", f"profile-level-id={H264_SENT};packetization-mode=1"),
             (97, "H264/90000", f"profile-level-id={H264_SENT};packetization-mode=0")],
    "VP8": [(98, "VP8/90000", "")],
}  # fmt: skip


def build_offer(
    ports: Sequence[int],
    audio_order: Sequence[str],
    video_order: Sequence[str],
    address: str,
    *,
    session_id: int,
    version: int,
    video_kbps: int,
) -> str:
    """Our offer: an audio line on ``ports[0]``, a video line on ``ports[1]`` when there is one."""
    family = "IP4" if ipaddress.ip_address(address).version == 4 else "IP6"
    out = ["v=0", f"o=giaoban {session_id} {version} IN {family} {address}", "s=giaoban", f"c=IN {family} {address}"]
    out.append("t=0 0")
    pts = [AUDIO_PTS[c] for c in audio_order]
    out.append(f"m=audio {ports[0]} RTP/AVP {' '.join(map(str, pts + [DTMF_PT]))}")
    for codec in audio_order:
        name, clock, channels = AUDIO[codec]
        out.append(
            f"a=rtpmap:{AUDIO_PTS[codec]} {NAMES.get(name, name)}/{clock}" + (f"/{channels}" if channels > 1 else "")
        )
    out += [f"a=rtpmap:{DTMF_PT} telephone-event/8000", f"a=fmtp:{DTMF_PT} {DTMF_EVENTS}", f"a=ptime:{PTIME_MS}"]
    out += [f"a=rtcp:{ports[0] + 1}", "a=sendrecv"]
    formats = [f for codec in video_order for f in VIDEO_FORMATS.get(codec, [])]
    if len(ports) > 1 and formats:
        out += [f"m=video {ports[1]} RTP/AVP {' '.join(str(f[0]) for f in formats)}", f"b=AS:{video_kbps}"]
        for pt, rtpmap, fmtp in formats:
            out.append(f"a=rtpmap:{pt} {rtpmap}")
            out += [f"a=fmtp:{pt} {fmtp}"] if fmtp else []
        out += [f"a=rtcp-fb:* {kind}" for kind in FEEDBACK]
        out += [f"a=rtcp:{ports[1] + 1}", "a=sendrecv"]
    return "\r\n".join(out) + "\r\n"
