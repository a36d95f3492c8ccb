"""Quality renditions: one encoder per rendition, keyframe-request merging, subscriptions.

Each composite is scaled once per rendition and encoded once per rendition; every subscriber of the
rendition receives the same `EncodedFrame` object (same bytes). RTP packetization is the SFU's job.

H.264 encoder: the environment variable ``GIAOBAN_H264_ENCODER`` (checked when the media node
starts, decided once per process at the first H.264 encoder) picks it: ``auto`` (the default) uses
``h264_nvenc`` where it opens (an NVIDIA GPU and driver) and libx264 otherwise (PyAV lists h264_nvenc everywhere, opening it fails without a
driver); ``libx264`` never tries the GPU; ``h264_nvenc`` requires it (an encoder then fails to open,
naming it, where there is no GPU). The choice is logged once. Renditions whose slices must fit one
RTP packet (``slice_max``: RFC 6184 mode 0) stay on libx264: FFmpeg's h264_nvenc cannot bound a
slice's bytes. (h264_nvenc is untested on a GPU so far.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
from av.video.frame import PictureType
from av.video.reformatter import Interpolation, VideoReformatter

from mcu.compose.meter import CpuMeter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rendition:
    """A quality rendition. height 0 means audio only: no video is encoded for it."""

    name: str
    height: int
    bitrate: int = 0
    codec: str = "vp8"  # "vp8" (libvpx realtime) or "h264" (h264_encoder(): h264_nvenc or libx264)
    speed: int = 16  # libvpx cpu-used (4..16; 16 is fastest, about half the CPU of 8)
    slice_max: int = 0  # H.264: bytes per slice at most (0: no limit); one slice per RTP packet

    @property
    def audio_only(self) -> bool:
        return self.height == 0


DEFAULT_RENDITIONS = (
    Rendition("720p", 720, 1_200_000),
    Rendition("360p", 360, 400_000),
    Rendition("180p", 180, 150_000),
    Rendition("audio", 0),
)


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    rendition: str
    codec: str
    data: bytes
    pts: int
    time_base: Fraction
    keyframe: bool
    width: int
    height: int


class KeyframeGate:
    """At most one forced keyframe per `min_interval`; requests in between are merged.

    request(): a PLI/FIR from downstream. Merged into a pending one, or absorbed when a
    keyframe was forced or emitted less than min_interval ago (that keyframe answers it).
    want(): a local subscriber is waiting for a keyframe; served as soon as the interval allows.
    """

    def __init__(self, min_interval: float, clock: Callable[[], float]) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._pending = False
        self._deferred = False
        self._last = float("-inf")
        self.requests = 0
        self.merged = 0
        self.forced = 0

    def request(self) -> bool:
        """Returns True if this request will cause a keyframe, False if it was merged."""
        self.requests += 1
        if self._pending or self._clock() - self._last < self.min_interval:
            self.merged += 1
            return False
        self._pending = True
        return True

    def want(self) -> None:
        self._deferred = True

    def take(self) -> bool:
        """Called once per encoded frame: True when this frame must be a keyframe."""
        now = self._clock()
        if self._pending or (self._deferred and now - self._last >= self.min_interval):
            self._pending = self._deferred = False
            self._last = now
            self.forced += 1
            return True
        return False

    def emitted(self) -> None:
        """The encoder produced a keyframe (forced or its own)."""
        self._last = max(self._last, self._clock())
        self._deferred = False


H264_ENCODER_VARIABLE = "GIAOBAN_H264_ENCODER"
H264_ENCODER_CHOICES = ("auto", "libx264", "h264_nvenc")
NVENC = "h264_nvenc"
_h264_choice: str | None = None
_h264_lock = threading.Lock()  # compositor threads may open their first H.264 encoders together


def h264_encoder() -> str:
    """The H.264 encoder of this process ("h264_nvenc" or "libx264"), decided once (see the module
    docstring). Raises ValueError for a forced h264_nvenc that cannot open, or an unknown choice."""
    global _h264_choice
    with _h264_lock:
        if _h264_choice is None:
            _h264_choice = _choose_h264_encoder(h264_encoder_setting())
        return _h264_choice


def h264_encoder_setting() -> str:
    """The value of GIAOBAN_H264_ENCODER (default auto). Raises ValueError naming the variable and
    its choices for any other value: the media node checks it at start, not at its first H.264."""
    wanted = os.environ.get(H264_ENCODER_VARIABLE, "auto").strip().lower()
    if wanted not in H264_ENCODER_CHOICES:
        raise ValueError(f"{H264_ENCODER_VARIABLE}={wanted!r}: use one of {', '.join(H264_ENCODER_CHOICES)}")
    return wanted


def forget_h264_encoder() -> None:
    """Decide again at the next H.264 encoder (tests)."""
    global _h264_choice
    with _h264_lock:
        _h264_choice = None


def _choose_h264_encoder(wanted: str) -> str:
    if wanted == "libx264":
        log.info("H.264 encoder: libx264 (%s=libx264)", H264_ENCODER_VARIABLE)
        return "libx264"
    failure = _nvenc_failure()
    if failure is None:
        log.info("H.264 encoder: h264_nvenc (%s=%s)", H264_ENCODER_VARIABLE, wanted)
        return NVENC
    if wanted == NVENC:
        raise ValueError(f"{H264_ENCODER_VARIABLE}=h264_nvenc, but h264_nvenc cannot open here: {failure}")
    log.info("H.264 encoder: libx264 (h264_nvenc cannot open here: %s)", failure)
    return "libx264"


def _nvenc_failure() -> str | None:
    """Why h264_nvenc cannot encode in this process (None: it opens)."""
    if NVENC not in av.codecs_available:
        return "this FFmpeg build has no h264_nvenc"
    try:
        _open_encoder(Rendition("nvenc probe", 144, 200_000, codec="h264"), 256, 144, 30, 1, NVENC)
    except (av.FFmpegError, OSError, ValueError) as exc:  # EPERM without a driver, ENOSYS, ...
        return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
    return None


def _h264_options(encoder: str, rendition: Rendition) -> dict[str, str]:
    if encoder == NVENC:
        return {
            "preset": "p1",  # fastest
            "tune": "ull",  # ultra low latency: no B-frames, no lookahead
            "profile": "baseline",
            "rc": "cbr",
            "zerolatency": "1",
            "delay": "0",
            "forced-idr": "1",  # a forced key frame is an IDR, which a joining decoder needs
            "maxrate": str(rendition.bitrate),
            "bufsize": str(rendition.bitrate),
        }
    options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "maxrate": str(rendition.bitrate),
        "bufsize": str(rendition.bitrate),
    }
    if rendition.slice_max:
        options["x264-params"] = f"slice-max-size={rendition.slice_max}"
    return options


def _open_encoder(
    rendition: Rendition, width: int, height: int, fps: int, threads: int, h264: str | None = None
) -> av.CodecContext:
    """``h264``: the H.264 encoder to use (default: libx264 for slice-bounded renditions, else
    ``h264_encoder()``)."""
    if rendition.codec == "vp8":
        ctx = av.CodecContext.create("libvpx", "w")
        ctx.options = {
            "deadline": "realtime",
            "cpu-used": str(rendition.speed),
            "lag-in-frames": "0",
            "auto-alt-ref": "0",
            "max-intra-rate": "300",
            "static-thresh": "0",
            "qmin": "2",
            "qmax": "63",
            "minrate": str(rendition.bitrate),
            "maxrate": str(rendition.bitrate),
            "bufsize": str(rendition.bitrate),
        }
    elif rendition.codec == "h264":
        encoder = h264 or ("libx264" if rendition.slice_max else h264_encoder())
        ctx = av.CodecContext.create(encoder, "w")
        ctx.options = _h264_options(encoder, rendition)
    else:
        raise ValueError(f"rendition {rendition.name}: unknown codec {rendition.codec!r} (use 'vp8' or 'h264')")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps)
    ctx.bit_rate = rendition.bitrate
    ctx.gop_size = fps * 10  # keyframes mostly on request; one every 10 s as a safety net
    ctx.thread_count = threads
    ctx.open()
    return ctx


class RenditionEncoder:
    """Scales the composite to the rendition's size and encodes it. Used by one thread at a time."""

    def __init__(
        self, rendition: Rendition, canvas_w: int, canvas_h: int, fps: int, threads: int, meter: CpuMeter
    ) -> None:
        self.rendition = rendition
        self.height = min(rendition.height, canvas_h) & ~1
        self.width = (canvas_w * self.height // canvas_h) & ~1
        self.fps = fps
        self._meter = meter
        self._scaler = VideoReformatter()
        # AREA averages for 2:1 and smaller (cheaper and sharper there), BILINEAR otherwise
        self._interp = Interpolation.AREA if canvas_h >= 2 * self.height else Interpolation.BILINEAR
        self._ctx = _open_encoder(rendition, self.width, self.height, fps, threads)
        self._count = 0  # the encoder sees consecutive frames, see encode()

    def scale(self, canvas: av.VideoFrame) -> av.VideoFrame:
        """The canvas at the rendition's size (the canvas itself when it has that size)."""
        if canvas.width == self.width and canvas.height == self.height:
            return canvas
        t0 = time.thread_time()
        frame = self._scaler.reformat(canvas, self.width, self.height, "yuv420p", interpolation=self._interp, threads=1)
        self._meter.add("scale", time.thread_time() - t0, f"scale.{self.rendition.name}")
        return frame

    def encode(self, canvas: av.VideoFrame, pts: int, force_keyframe: bool) -> list[EncodedFrame]:
        """Encode the canvas (scaled first if needed). The frame's pts and picture type are set
        here: encoders sharing one frame (same size, other codecs) must run one after the other."""
        frame = self.scale(canvas)
        t1 = time.thread_time()
        # Rate control sees consecutive timestamps: when composites are dropped (CPU starved),
        # libvpx given the real, irregular gaps overshot the rendition's bitrate by ~35%; counting
        # frames makes it undershoot instead, which is what a thin link needs. The real
        # timestamp (for RTP) is the `pts` argument, returned in every EncodedFrame.
        frame.pts = self._count
        self._count += 1
        frame.time_base = self._ctx.time_base
        frame.pict_type = PictureType.I if force_keyframe else PictureType.NONE
        packets = self._ctx.encode(frame)
        self._meter.add("encode", time.thread_time() - t1, f"encode.{self.rendition.name}")
        tb = self._ctx.time_base
        return [
            EncodedFrame(
                self.rendition.name, self.rendition.codec, bytes(p), pts, tb, p.is_keyframe, self.width, self.height
            )
            for p in packets
        ]


class Subscription:
    """Encoded frames of one rendition for one subscriber: a bounded queue (or a callback).

    Overflow policy: when the queue is full the subscriber is behind; its queue is cleared and it
    waits for the next keyframe (deltas it could not decode are never delivered), and a keyframe
    is wanted from the rendition. A new subscriber also starts by waiting for a keyframe.
    """

    def __init__(
        self,
        rendition: str,
        maxsize: int,
        callback: Callable[[EncodedFrame], None] | None,
        on_close: Callable[["Subscription"], None],
    ) -> None:
        self.rendition = rendition
        self._queue: asyncio.Queue[EncodedFrame | None] = asyncio.Queue(maxsize)
        self._callback = callback
        self.queued = callback is None  # a queue reader (recorder, HLS) keeps its rendition encoded
        self._on_close = on_close
        self.waiting_keyframe = True
        self.closed = False
        self.delivered = 0
        self.dropped = 0

    def offer(self, frame: EncodedFrame) -> bool:
        """Deliver one frame; returns True when this subscriber needs a keyframe."""
        if self.closed:
            return False
        if self.waiting_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                return True
            self.waiting_keyframe = False
        if self._callback is not None:
            self._callback(frame)
        elif self._queue.full():
            self.dropped += self._queue.qsize() + 1
            while not self._queue.empty():
                self._queue.get_nowait()
            self.waiting_keyframe = True
            return True
        else:
            self._queue.put_nowait(frame)
        self.delivered += 1
        return False

    async def get(self) -> EncodedFrame | None:
        """Next frame, or None once the subscription is closed."""
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        self._on_close(self)
