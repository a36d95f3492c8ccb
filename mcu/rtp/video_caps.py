"""What a room system's video takes: the bandwidth its SDP gives our video (b=AS/b=TIAS, the
starting rendition that fits), and what its H.264 decoder can take (RFC 6184 8.1, Annex A): the level of its
``profile-level-id`` raised by ``max-fs`` / ``max-mbps``, turned into the largest composite
rendition it decodes at the compositor's frame rate, and the level we answer (never above the
offered one, RFC 6184 8.2.2). A CIF room (level 1.1-2.1) gets 180p, a 4CIF one (2.2, 3.0) 360p,
3.1 and up 720p. I/O free."""

from __future__ import annotations

from collections.abc import Mapping

from mcu.bridge.rendition_policy import RENDITION_BITRATE, UP_HEADROOM, VIDEO_RENDITIONS
from mcu.rtp.choice import Chosen
from mcu.rtp.offer import RtpOffer

AUDIO_KBPS = 80  # what a room's audio takes of a session-level b=AS
COMPOSITE_FPS = 30  # mcu.compose.compositor's default
DEFAULT_PROFILE = "42e01f"  # read when an offer names none (as mcu.peer.codec_choice reads it)
SENT_LEVEL = 0x1F  # 3.1: what the composite is encoded at
# level_idc -> (MaxFS macroblocks, MaxMBPS), H.264 table A-1 (level 1b reads as 1.1's frame size)
LEVELS = {
    10: (99, 1485), 9: (99, 1485), 11: (396, 3000), 12: (396, 6000), 13: (396, 11880), 20: (396, 11880),
    21: (792, 19800), 22: (1620, 20250), 30: (1620, 40500), 31: (3600, 108000), 32: (5120, 216000),
    40: (8192, 245760), 41: (8192, 245760), 42: (8704, 522240),
}  # fmt: skip
SIZES = {"720p": (1280, 720), "360p": (640, 360), "180p": (320, 180)}


def level_idc(params: Mapping[str, str]) -> int:
    try:
        return int(params.get("profile-level-id", DEFAULT_PROFILE)[4:6], 16)
    except ValueError:
        return SENT_LEVEL


def decodable_rendition(params: Mapping[str, str]) -> str:
    """The largest composite rendition the room's fmtp says it decodes (the smallest if none does)."""
    level = level_idc(params)
    max_fs, max_mbps = LEVELS.get(level, LEVELS[42] if level > 42 else LEVELS[10])
    max_fs = max(max_fs, _int(params.get("max-fs")))
    max_mbps = max(max_mbps, _int(params.get("max-mbps")))
    for rendition in VIDEO_RENDITIONS:
        width, height = SIZES[rendition]
        mbs = -(-width // 16) * -(-height // 16)
        if mbs <= max_fs and mbs * COMPOSITE_FPS <= max_mbps:
            return rendition
    return VIDEO_RENDITIONS[-1]


def rendition_ceiling_bps(rendition: str) -> int | None:
    """A bitrate estimate that keeps the rendition controller from climbing above ``rendition``
    (it climbs only with an estimate of UP_HEADROOM x the next rendition's bitrate); None: no cap."""
    index = VIDEO_RENDITIONS.index(rendition)
    if index == 0:
        return None
    return int(RENDITION_BITRATE[VIDEO_RENDITIONS[index - 1]] * UP_HEADROOM) - 1


def answered_baseline(params: Mapping[str, str]) -> str:
    """Constrained baseline at the offered level, at most the one we send (3.1); level 1b kept."""
    offered = params.get("profile-level-id", DEFAULT_PROFILE).lower()
    level = min(level_idc(params), SENT_LEVEL)
    try:
        level_1b = level == 11 and int(offered[2:4], 16) & 0x10
    except ValueError:
        level_1b = 0
    return f"42{0xE0 | (0x10 if level_1b else 0):02x}{level:02x}"


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def room_video_kbps(offer: RtpOffer, video: Chosen | None) -> int | None:
    """The room's bandwidth for our video: its video line's b=, else the session's less audio."""
    if video is not None:
        kbps = offer.lines[video.index].bandwidth_kbps
        if kbps:
            return kbps
    if offer.bandwidth_kbps:
        return max(64, offer.bandwidth_kbps - AUDIO_KBPS)
    return None


def fitting_rendition(kbps: int) -> str:
    """The best composite rendition whose bitrate fits in ``kbps``; the smallest when none does."""
    return next((r for r in VIDEO_RENDITIONS if RENDITION_BITRATE[r] <= kbps * 1000), VIDEO_RENDITIONS[-1])
