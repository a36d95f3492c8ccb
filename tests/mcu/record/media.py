"""Synthetic encoded media for the recording tests, and checks of what a file holds."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import av
import numpy as np

from mcu.audio.codec import tone_packets
from mcu.compose.testsrc import encode_clip, yuv_of
from mcu.compose.renditions import EncodedFrame

RED = (200, 30, 30)
BLUE = (30, 30, 200)
FPS = 30
W, H = 320, 180


@lru_cache(maxsize=4)
def clip(codec: str = "vp8", rgb: tuple[int, int, int] = RED, frames: int = FPS) -> list[tuple[bytes, bool]]:
    """One second of a solid colour; only frame 0 is a keyframe (a keyframe per loop)."""
    return encode_clip(rgb, W, H, frames, codec, FPS, 300_000, pattern=False)


@lru_cache(maxsize=2)
def tone(freq: float = 440.0) -> list[bytes]:
    return tone_packets(freq, 50)


def feed(sink, seconds: float, codec: str = "vp8", rgb=RED, start: int = 0) -> None:
    """Push `seconds` of video (30 fps) and audio (20 ms Opus) interleaved, as fast as possible."""
    frames, packets = clip(codec, rgb), tone()
    for i in range(start, start + round(seconds * FPS)):
        data, key = frames[i % len(frames)]
        sink.push_video(EncodedFrame("720p", codec, data, i, Fraction(1, FPS), key, W, H))
        for j in range(i * 5 // 3, (i + 1) * 5 // 3):
            sink.push_audio(packets[j % len(packets)], (j * 960 + 3_000_000_000) & 0xFFFFFFFF)


def decode_all(path) -> tuple[list[np.ndarray], np.ndarray, float]:
    """(video frames as yuv420p arrays, mono float pcm, container duration in s)."""
    video, pcm = [], []
    with av.open(str(path)) as c:
        duration = (c.duration or 0) / 1e6
        for frame in c.decode(*c.streams):
            if isinstance(frame, av.VideoFrame):
                video.append(frame.to_ndarray(format="yuv420p"))
            else:
                pcm.append(frame.to_ndarray()[0].astype(np.float32))
    return video, (np.concatenate(pcm) if pcm else np.zeros(0, np.float32)), duration


def assert_colour(frame: np.ndarray, rgb, tol: float = 6.0) -> None:
    y, u, v = yuv_of(rgb)
    h = frame.shape[0] * 2 // 3
    got = (frame[:h].mean(), frame[h : h + h // 4].mean(), frame[h + h // 4 :].mean())
    assert all(abs(g - e) <= tol for g, e in zip(got, (y, u, v))), (got, (y, u, v))


def peak_hz(pcm: np.ndarray, rate: int = 48000) -> float:
    part = pcm[rate // 10 : rate // 10 + rate] if pcm.size > rate * 1.2 else pcm
    spectrum = np.abs(np.fft.rfft(part * np.hanning(part.size)))
    return float(np.argmax(spectrum) * rate / part.size)
