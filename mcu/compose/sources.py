"""Per-source decoding: encoded frames in, the latest decoded picture (yuv420p) out.

The event loop side (`push`, `take`) only moves bytes; the worker side (`decode`,
`planes`) runs in the compositor's thread pool and is confined to one thread at a time
(the compositor keeps at most one composite in flight).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from mcu.compose.meter import CpuMeter

log = logging.getLogger(__name__)

DECODERS = {"vp8": "vp8", "h264": "h264"}  # FFmpeg's native decoders


@dataclass(frozen=True, slots=True)
class EncodedInput:
    codec: str
    payload: bytes
    keyframe: bool
    pts: int | None


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def plane_views(frame: av.VideoFrame) -> Planes:
    """Zero-copy numpy views of a yuv420p frame's Y, U, V planes (padding cut off)."""
    out = []
    for plane in frame.planes:
        arr = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        out.append(arr[:, : plane.width])
    return out[0], out[1], out[2]


class Source:
    def __init__(self, source_id: str, max_pending: int, meter: CpuMeter, decoder_threads: int = 1) -> None:
        self.id = source_id
        self._max_pending = max_pending
        self._meter = meter
        self._threads = decoder_threads
        self._pending: list[EncodedInput] = []
        self._codec: str | None = None
        self._ctx: av.CodecContext | None = None
        self._scaler = VideoReformatter()
        self._frame: av.VideoFrame | None = None  # latest decoded picture
        self._scaled: tuple[tuple[int, int], Planes] | None = None
        self._broken = True  # worker side: skip input until a keyframe
        self.on_screen = False
        self.need_keyframe = True
        self.decode_calls = 0
        self.frames_decoded = 0
        self.dropped = 0
        self.errors = 0

    # ---- event loop side -------------------------------------------------------------
    def push(self, item: EncodedInput) -> bool:
        """Queue one encoded frame for decoding. Returns True when a keyframe is needed from
        the sender (off screen sources are not decoded and their frames are dropped)."""
        if not self.on_screen:
            self.dropped += 1
            self.need_keyframe = True
            return False
        if self.need_keyframe and not item.keyframe:
            self.dropped += 1
            return True
        if len(self._pending) >= self._max_pending:  # the compositor is far behind
            self.dropped += len(self._pending) + 1
            self._pending.clear()
            self.need_keyframe = True
            return True
        if item.keyframe:
            self.need_keyframe = False
        self._pending.append(item)
        return False

    def take(self) -> list[EncodedInput]:
        items, self._pending = self._pending, []
        return items

    def reset(self) -> None:
        """Went off screen: drop queued frames; decoding restarts at the next keyframe."""
        self._pending.clear()
        self.need_keyframe = True

    @property
    def size(self) -> tuple[int, int] | None:
        f = self._frame
        return (f.width, f.height) if f is not None else None

    # ---- worker side -----------------------------------------------------------------
    def _decoder(self, codec: str) -> av.CodecContext:
        if self._ctx is None or codec != self._codec:
            if codec not in DECODERS:
                raise ValueError(f"source {self.id}: unsupported codec {codec!r}")
            self._ctx = av.CodecContext.create(DECODERS[codec], "r")
            self._ctx.thread_count = self._threads
            self._codec = codec
        return self._ctx

    def decode(self, items: list[EncodedInput]) -> bool:
        """Decode all queued frames (each one is a reference for the next); keep the last
        picture. Returns False when decoding failed and a keyframe is needed."""
        ok = True
        for item in items:
            if self._broken and not item.keyframe:
                continue
            self._broken = False
            t0 = time.thread_time()
            try:
                ctx = self._decoder(item.codec)
                packet = av.Packet(item.payload)
                packet.pts = item.pts
                self.decode_calls += 1
                frames = ctx.decode(packet)
            except (av.FFmpegError, ValueError) as exc:
                self.errors += 1
                ok = False
                log.warning("source %s: decode failed: %s", self.id, exc)
                self._ctx = None
                self._broken = True
                continue
            finally:
                self._meter.add("decode", time.thread_time() - t0)
            if frames:
                self._frame = frames[-1]
                self._scaled = None
                self.frames_decoded += len(frames)
        return ok

    def planes(self, w: int, h: int) -> Planes | None:
        """The latest picture scaled to w x h in yuv420p (cached until the next picture)."""
        frame = self._frame
        if frame is None:
            return None
        if self._scaled is not None and self._scaled[0] == (w, h):
            return self._scaled[1]
        t0 = time.thread_time()
        if (frame.width, frame.height) != (w, h) or frame.format.name != "yuv420p":
            frame = self._scaler.reformat(frame, w, h, "yuv420p", interpolation=Interpolation.BILINEAR, threads=1)
        self._meter.add("scale", time.thread_time() - t0)
        planes = plane_views(frame)
        self._scaled = ((w, h), planes)
        return planes
