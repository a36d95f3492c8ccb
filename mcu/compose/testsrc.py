"""Synthetic encoded video sources for tests and benchmarks: a flat colour, optionally with
a moving test pattern (drifting luma gradient and a sweeping bar), encoded with PyAV."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np


def yuv_of(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited-range Y, U, V of an RGB colour."""
    r, g, b = rgb
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def _picture(yuv: tuple[int, int, int], width: int, height: int, i: int, pattern: bool) -> np.ndarray:
    y, u, v = yuv
    buf = np.empty((height * 3 // 2, width), np.uint8)
    luma = buf[:height]
    if pattern:
        xs = np.arange(width)[None, :] + np.arange(height)[:, None] + 6 * i
        luma[:] = np.clip(y + 24 * np.sin(xs / 23.0) + (xs // 40 % 2) * 12 - 6, 16, 235)
        bar_x = (i * 8) % max(1, width - width // 16)
        luma[:, bar_x : bar_x + width // 16] = 128
    else:
        luma[:] = y
    buf[height : height + height // 4] = u
    buf[height + height // 4 :] = v
    return buf


def encode_clip(
    rgb: tuple[int, int, int],
    width: int,
    height: int,
    frames: int,
    codec: str = "vp8",
    fps: int = 30,
    bitrate: int = 500_000,
    pattern: bool = True,
) -> list[tuple[bytes, bool]]:
    """(payload, keyframe) per frame of a clip; only the first frame is a keyframe, so the
    clip can be looped into a decoder (each loop restarts at that keyframe)."""
    name = {"vp8": "libvpx", "h264": "libx264"}[codec]
    ctx = av.CodecContext.create(name, "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate, ctx.bit_rate = Fraction(1, fps), Fraction(fps), bitrate
    ctx.gop_size, ctx.thread_count = frames + 1, 1
    if codec == "vp8":
        ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    else:
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency"}
    yuv = yuv_of(rgb)
    out: list[tuple[bytes, bool]] = []
    for i in range(frames + 1):
        frame = None
        if i < frames:
            frame = av.VideoFrame.from_ndarray(_picture(yuv, width, height, i, pattern), format="yuv420p")
            frame.pts = i
        out += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(frame)]
    return out
