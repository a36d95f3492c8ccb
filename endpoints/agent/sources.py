"""Camera and microphone sources for the room terminal.

``test``          synthetic: colour bars with a moving box and the frame number in binary blocks;
                  a 440 Hz sine tone (numpy -> av frames)
``file:<path>``   a media file, looped (aiortc MediaPlayer)
``v4l2:<dev>``    a V4L2 camera, e.g. v4l2:/dev/video0 (MediaPlayer, format v4l2)
``alsa:<dev>``    an ALSA microphone, e.g. alsa:default; ``pulse:<dev>`` likewise
``none``          nothing is sent for that kind (the terminal still receives it)

The shared document (``screen`` setting, see ``open_screen``) takes ``file:``, ``v4l2:`` or
``testsrc:<colour>`` (a flat colour: what tests compare on the receiving side).

Every source is wrapped in a ``Gate``: the chair's mute request makes it send black frames or
silence (the encoder keeps running, so unmuting is instant), and it counts what was sent.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import av
import numpy as np
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from endpoints.agent.config import parse_colour

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms

# 75% colour bars (RGB): white, yellow, cyan, green, magenta, red, blue
_BARS = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191)]


class Paced:
    """Real-time pacing for generated frames: ``await next()`` returns the frame number when it
    is due. After a stall longer than ``resync_after`` seconds the clock restarts instead of
    bursting the backlog (tests that want the backlog pass ``math.inf``)."""

    def __init__(self, period: float, resync_after: float = 1.0) -> None:
        self.period = period
        self.resync_after = resync_after
        self.n = 0
        self._start: float | None = None

    async def next(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.n * self.period - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -self.resync_after:  # fell far behind (a stalled loop): restart, do not burst
            self._start = time.monotonic() - self.n * self.period
        n, self.n = self.n, self.n + 1
        return n


class TestPatternTrack(MediaStreamTrack):
    """Colour bars, a white box moving left to right, frame counter as 16 binary blocks."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 360, fps: int = 15) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._pace = Paced(1 / fps)
        rgb = np.zeros((height, width, 3), dtype=np.uint8)
        for i, colour in enumerate(_BARS):
            rgb[:, i * width // len(_BARS) : (i + 1) * width // len(_BARS)] = colour
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        self._base = frame.to_ndarray()  # (h * 3 / 2, w): Y plane then U and V
        self._box = max(8, height // 8)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pace.next()
        img = self._base.copy()
        w, h, box = self.width, self.height, self._box
        x = (n * 4) % max(1, w - box)
        y = h // 2 - box // 2
        img[y : y + box, x : x + box] = 235  # Y plane only: a white-ish box
        block = max(2, w // 32)
        for bit in range(16):  # frame number, bottom rows, white = 1
            img[h - block : h, bit * block : (bit + 1) * block] = 235 if (n >> (15 - bit)) & 1 else 16
        frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = n * (VIDEO_CLOCK // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class ColourTrack(MediaStreamTrack):
    """A flat colour picture (``testsrc:<colour>``), paced like the test pattern."""

    kind = "video"

    def __init__(self, rgb: tuple[int, int, int], width: int = 640, height: int = 360, fps: int = 15) -> None:
        super().__init__()
        self.fps = fps
        self._pace = Paced(1 / fps)
        picture = np.full((height, width, 3), rgb, dtype=np.uint8)
        self._yuv = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p").to_ndarray()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pace.next()
        frame = av.VideoFrame.from_ndarray(self._yuv, format="yuv420p")
        frame.pts = n * (VIDEO_CLOCK // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class ToneTrack(MediaStreamTrack):
    """A 440 Hz sine at about -8 dBFS, 20 ms frames, 48 kHz mono."""

    kind = "audio"

    def __init__(self, freq: float = 440.0) -> None:
        super().__init__()
        self.freq = freq
        self._pace = Paced(AUDIO_SAMPLES / AUDIO_RATE)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pace.next()
        t = (np.arange(AUDIO_SAMPLES) + n * AUDIO_SAMPLES) / AUDIO_RATE
        data = (np.sin(2 * np.pi * self.freq * t) * 12000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = n * AUDIO_SAMPLES
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class Gate(MediaStreamTrack):
    """Wraps a source: forwards its frames, or black/silence while muted; counts frames sent."""

    def __init__(self, source: MediaStreamTrack, on_stop=None) -> None:
        super().__init__()
        self.kind = source.kind
        self.source = source
        self.muted = False
        self.frames = 0
        self.busy = False  # inside source.recv(): see retire()
        self.last_pts: int | None = None  # 90 kHz, with continue_after()
        self._pts_offset: int | None = None
        self._pts_floor: int | None = None
        self._on_stop = on_stop

    def continue_after(self, pts: int) -> None:
        """Timestamps (90 kHz) go on after ``pts``: a sender line that carried another source
        keeps its encoder, which refuses timestamps going back (and so would the receiver)."""
        self._pts_floor = pts

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        self.busy = True
        try:
            frame = await self.source.recv()
        finally:
            self.busy = False
        self.frames += 1
        if self._pts_floor is not None and frame.pts is not None:
            frame = self._continued(frame)
        if not self.muted:
            return frame
        return _black(frame) if self.kind == "video" else _silence(frame)

    def _continued(self, frame: av.VideoFrame) -> av.VideoFrame:
        pts = int(frame.pts * frame.time_base * VIDEO_CLOCK)
        if self._pts_offset is None:
            self._pts_offset = (self._pts_floor or 0) + VIDEO_CLOCK // 30 - pts
        frame.pts, frame.time_base = pts + self._pts_offset, fractions.Fraction(1, VIDEO_CLOCK)
        self.last_pts = frame.pts
        return frame

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            self.source.stop()
            if self._on_stop is not None:
                self._on_stop()


async def retire(gate: Gate, bound_s: float = 1.0) -> None:
    """Stop a gate its sender no longer reads (after ``replaceTrack(None)``). A gate stopped
    while the sender waits in its ``recv()`` makes that recv raise, which ends aiortc's RTP loop
    for good: the line could never send again. So wait for that recv to return first."""
    deadline = time.monotonic() + bound_s
    while gate.busy and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    gate.stop()


def open_screen(spec: str, size: tuple[int, int] = (640, 360), fps: int = 15) -> Gate:
    """The shared document's picture (``screen`` setting): ``file:``, ``v4l2:``, ``testsrc:<colour>``."""
    scheme, _, arg = spec.partition(":")
    if scheme == "testsrc":
        rgb = parse_colour(arg)
        if rgb is None:
            raise ValueError(f"testsrc colour {arg!r} is not a name or #rrggbb")
        gate = Gate(ColourTrack(rgb, *size, fps=fps))
    elif scheme in ("file", "v4l2"):
        gate = Gate(_player_video(spec, size, fps)[0])
    else:
        raise ValueError(f"screen source {spec!r} cannot be opened")
    gate.continue_after(0)  # timestamps in 90 kHz from here, so that a later share can go on after them
    return gate


def _player_video(spec: str, size: tuple[int, int], fps: int) -> tuple[MediaStreamTrack, MediaPlayer]:
    """A file (looped) or V4L2 device's video track, and the player that owns it."""
    scheme, _, arg = spec.partition(":")
    if scheme == "file":
        player = MediaPlayer(arg, loop=True)
    else:
        player = MediaPlayer(arg, format="v4l2", options={"video_size": f"{size[0]}x{size[1]}", "framerate": str(fps)})
    if player.video is None:
        raise ValueError(f"{spec} has no video")
    return player.video, player


def _black(frame: av.VideoFrame) -> av.VideoFrame:
    img = np.full((frame.height * 3 // 2, frame.width), 128, dtype=np.uint8)
    img[: frame.height] = 16
    out = av.VideoFrame.from_ndarray(img, format="yuv420p")
    out.pts, out.time_base = frame.pts, frame.time_base
    return out


def _silence(frame: av.AudioFrame) -> av.AudioFrame:
    out = av.AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=frame.samples)
    for plane in out.planes:
        plane.update(bytes(plane.buffer_size))
    out.sample_rate, out.pts, out.time_base = frame.sample_rate, frame.pts, frame.time_base
    return out


class Sources:
    """The terminal's camera and microphone for one peer connection; ``stop()`` releases devices."""

    def __init__(self, video: str, audio: str, size: tuple[int, int] = (640, 360), fps: int = 15) -> None:
        self.video: Gate | None = None
        self.audio: Gate | None = None
        self._players: list[Any] = []
        self.video = self._open("video", video, size, fps)
        self.audio = self._open("audio", audio, size, fps)

    def _open(self, kind: str, spec: str, size: tuple[int, int], fps: int) -> Gate | None:
        scheme, _, arg = spec.partition(":")
        if scheme == "none":
            return None
        if scheme == "test":
            return Gate(TestPatternTrack(*size, fps=fps) if kind == "video" else ToneTrack())
        if kind == "video" and scheme in ("file", "v4l2"):
            track, player = _player_video(spec, size, fps)
            self._players.append(player)
            return Gate(track)
        if scheme == "file":
            player = MediaPlayer(arg, loop=True)
        else:  # alsa / pulse
            player = MediaPlayer(arg, format=scheme)
        self._players.append(player)
        track = player.video if kind == "video" else player.audio
        if track is None:
            raise ValueError(f"{spec} has no {kind}")
        return Gate(track)

    def set_muted(self, kind: str, muted: bool) -> bool:
        gate = self.video if kind == "video" else self.audio
        if gate is None:
            return False
        gate.muted = muted
        return True

    def stop(self) -> None:
        for gate in (self.video, self.audio):
            if gate is not None:
                gate.stop()
