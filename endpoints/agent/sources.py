"""Camera and microphone sources for the room terminal.

``test``          synthetic: colour bars with a moving box and the frame number in binary blocks;
                  a 440 Hz sine tone (numpy -> av frames)
``file:<path>``   a media file, looped (aiortc MediaPlayer)
``v4l2:<dev>``    a V4L2 camera, e.g. v4l2:/dev/video0 (MediaPlayer, format v4l2)
``alsa:<dev>``    an ALSA microphone, e.g. alsa:default; ``pulse:<dev>`` likewise
``none``          nothing is sent for that kind (the terminal still receives it)

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
        self._on_stop = on_stop

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self.source.recv()
        self.frames += 1
        if not self.muted:
            return frame
        return _black(frame) if self.kind == "video" else _silence(frame)

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            self.source.stop()
            if self._on_stop is not None:
                self._on_stop()


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
        if scheme == "file":
            player = MediaPlayer(arg, loop=True)
        elif scheme == "v4l2":
            player = MediaPlayer(
                arg, format="v4l2", options={"video_size": f"{size[0]}x{size[1]}", "framerate": str(fps)}
            )
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
