"""A giaoban server with its SIP gateway on, a meeting, and the WebRTC viewers that watch what a
room system sends (#14): the receiving ends of the baresip end-to-end tests.

``sip_directory`` writes a small directory whose room systems are baresips (sip.uri = where each
listens, allowed_sources 127.0.0.1, so a call from there is proved); ``Viewer`` is a real aiortc
endpoint joined over /ws that keeps its decoded pictures per output role (composite, forwarded
video, mix) and the PCM it hears.
"""

from __future__ import annotations

import fractions
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from av import VideoFrame

from signaling.sip_settings import SipSettings
from tests.mcu.bridge.helpers import MixClient, PitchTrack
from tests.support.baresip import colour_matches, mean_colour
from tests.support.harness import Node, WsClient, start_node
from tests.support.media_clients import VIDEO_RATE, PatternTrack, WsPeerBridge
from tests.support.redis_server import free_port

CHAIR = "tw"


def sip_directory(path: Path, rooms: dict[str, str], viewers: list[str], sources: str = "127.0.0.1") -> Path:
    """A directory: the central chair, WebRTC ``viewers`` and SIP ``rooms`` (id -> sip.uri, calling
    from ``sources``), all on fibre."""
    lines = [
        "version: 1",
        'name: "Thử nghiệm SIP"',
        "endpoints:",
        f'  - {{id: {CHAIR}, name: "Trung ương", tier: central, kind: studio, link: fibre}}',
    ]
    for endpoint in viewers:
        lines.append(
            f'  - {{id: {endpoint}, parent: {CHAIR}, tier: province, kind: room_terminal, link: fibre, name: "{endpoint}"}}'
        )
    for endpoint, uri in rooms.items():
        lines += [
            f"  - id: {endpoint}",
            f"    parent: {CHAIR}",
            "    tier: province",
            "    kind: room_terminal",
            "    link: fibre",
            f'    name: "Phòng họp {endpoint}"',
            "    sip:",
            f'      uri: "{uri}"',
            f"      allowed_sources: [{sources}]",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def start_sip_node(
    tmp_path: Path, rooms: dict[str, str], viewers: list[str], **settings: Any
) -> tuple[Node, int]:
    """A whole server (media local, ICE on 127.0.0.1) with SIP on a free port; (node, sip port)."""
    directory = sip_directory(tmp_path / "directory.yaml", rooms, viewers)
    port = free_port()
    sip = SipSettings(enabled=True, host="127.0.0.1", port=port, transports=["udp", "tcp"])
    node = await start_node(
        tmp_path / "data", media="local", ice_host="127.0.0.1", directory=str(directory), sip=sip, **settings
    )
    return node, port


@dataclass
class Briefing:
    """A meeting on a SIP-enabled node: whom it invites and how a room system dials it."""

    node: Node
    sip_port: int
    meeting: dict

    @property
    def dial_uri(self) -> str:
        return f"sip:{self.meeting['dial_number']}@127.0.0.1:{self.sip_port}"

    def endpoint_uri(self, endpoint_id: str) -> str:
        return f"sip:{endpoint_id}@127.0.0.1:{self.sip_port}"

    def sip_transports(self) -> list[str]:
        """How the server's live SIP calls run ("udp", "tcp"), read from its stack."""
        return sorted(call.transport for call in self.node.ctx.sip.stack.calls.values())

    def media_meeting(self) -> Any:
        return self.node.ctx.media.meetings.get(self.meeting["id"])

    async def viewer(
        self,
        endpoint: str,
        *,
        codecs: list[str],
        colour: tuple[int, int, int] | None = None,
        tone_hz: float | None = None,
    ) -> Viewer:
        """A WebRTC endpoint joined over /ws that decodes only ``codecs``; it publishes a camera of
        ``colour`` and a tone of ``tone_hz`` when given."""
        ws = await WsClient.connect(self.node, await self.node.endpoint_token(endpoint))
        await ws.expect("welcome")
        bridge = WsPeerBridge(ws, self.meeting["id"])
        viewer = Viewer(
            bridge,
            self.meeting["id"],
            endpoint,
            video=ColourTrack(colour) if colour is not None else None,
            audio=PitchTrack(tone_hz) if tone_hz else None,
            video_codecs=codecs,
        )
        bridge.meetings = self.node.ctx.media.meetings  # type: ignore[attr-defined]  # MixClient.role_of looks there
        await viewer.join()
        return viewer


async def open_briefing(node: Node, sip_port: int, invited: list[str], **extra: Any) -> Briefing:
    """A meeting open now (starting in a minute: inside the early-join window), composite for fibre rooms."""
    meeting = await node.schedule(CHAIR, invited, media_modes={"fibre": "both"}, **extra)
    return Briefing(node, sip_port, meeting)


class ColourTrack(PatternTrack):
    """A camera of one RGB colour, 320x240."""

    def __init__(self, colour: tuple[int, int, int], fps: int = 15) -> None:
        super().__init__(0, 320, 240, fps)
        self.picture = np.empty((240, 320, 3), dtype=np.uint8)
        self.picture[:, :] = colour

    async def recv(self) -> VideoFrame:
        n = await self.pace.next()
        frame = VideoFrame.from_ndarray(self.picture, format="rgb24")
        frame.pts = n * (VIDEO_RATE // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        return frame


class Viewer(MixClient):
    """A WebRTC endpoint of the meeting: pictures by output role, what its mix carries."""

    def video_pictures(self, role: str | None = None) -> list[np.ndarray]:
        """The latest picture of each of its video tracks (of ``role``: composite, main...)."""
        out = []
        for track in self.tracks:
            if track.kind == "video" and track.id in self.latest and (role is None or self.role_of(track) == role):
                out.append(self.latest[track.id].to_ndarray(format="rgb24"))
        return out

    def sees(self, colour: tuple[int, int, int], role: str | None = None, whole: bool = False) -> bool:
        """Whether a video track (of ``role``) shows ``colour``: filling its centre (``whole``) or in some tile."""
        for picture in self.video_pictures(role):
            if whole and colour_matches(mean_colour(picture), colour):
                return True
            if not whole and find_colour(picture, colour):
                return True
        return False

    def forwarded_roles(self) -> set[str]:
        return {self.role_of(t) or "?" for t in self.tracks if t.kind == "video"}

    def heard(self, seconds: float = 1.0, role: str | None = None) -> np.ndarray:
        """The last ``seconds`` of audio (48 kHz mono) of its audio tracks (of ``role``), summed."""
        want = int(48000 * seconds)
        total = np.zeros(want, dtype=np.float32)
        for track in self.tracks:
            if track.kind != "audio" or (role is not None and self.role_of(track) != role):
                continue
            chunks = [pcm for _, pcm in self.pcm.get(track.id, [])]
            if chunks:
                pcm = np.concatenate(chunks)[-want:]
                total[want - len(pcm) :] += pcm
        return total


def find_colour(picture: np.ndarray, colour: tuple[int, int, int], cells: int = 6) -> bool:
    """Whether the centre of some cell of a ``cells`` x ``cells`` grid shows ``colour`` (a composite tile)."""
    h, w = picture.shape[:2]
    for row in range(cells):
        for col in range(cells):
            y, x = (2 * row + 1) * h // (2 * cells), (2 * col + 1) * w // (2 * cells)
            patch = picture[max(0, y - h // 32) : y + h // 32 + 1, max(0, x - w // 32) : x + w // 32 + 1]
            seen = tuple(int(v) for v in patch.reshape(-1, 3).mean(axis=0))
            if colour_matches(seen, colour):
                return True
    return False
