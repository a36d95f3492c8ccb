"""Common engine of the recorder and the HLS writer: pumps an encoded video source and an
Opus audio source into a sequence of self-contained segment files.

A segment starts at a video keyframe (so every file decodes on its own). Shortly before a
segment reaches ``segment_seconds`` the engine asks the compositor for a keyframe
(``request_keyframe``; the compositor merges such requests), and cuts at the first keyframe
after the target length. Without video (``video_source`` None and nothing pushed) audio alone
drives the cuts. Timestamps are milliseconds since the sink started (``Timeline``), written
as-is into every segment, so segments line up when concatenated or played as a playlist.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from mcu.compose.renditions import EncodedFrame

from mcu.record.feeds import AUDIO_TB, Timeline

log = logging.getLogger(__name__)
MS = Fraction(1, 1000)


class SegmentedSink:
    kind = "sink"

    def __init__(
        self,
        directory,
        segment_seconds: float,
        video_source: Any = None,
        audio_source: Any = None,
        request_keyframe: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1.0 <= segment_seconds <= 10.0:
            raise ValueError("segment_seconds must be between 1 and 10")
        self.directory = directory
        self.segment_ms = round(segment_seconds * 1000)
        self._video_source, self._audio_source = video_source, audio_source
        self._request_keyframe = request_keyframe
        self._clock = clock
        self.timeline: Timeline | None = None
        self.video_driven = video_source is not None
        self.segment_index = 0  # number of segments opened so far
        self.seg_start_ms: int | None = None  # None: no segment open
        self.last_ms = 0
        self._asked_at: float = -1e9
        self._tasks: list[asyncio.Task] = []
        self._started = self._stopped = False
        self._stop_lock = asyncio.Lock()
        self.errors = 0
        self.video_frames = self.audio_packets = self.dropped_before_keyframe = 0
        self.width = self.height = 0
        self.codec = ""

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.timeline = Timeline(self._clock)
        self._open_sink()
        if self._video_source is not None:
            self._tasks.append(asyncio.create_task(self._pump_video(), name=f"{self.kind}-video"))
        if self._audio_source is not None:
            self._tasks.append(asyncio.create_task(self._pump_audio(), name=f"{self.kind}-audio"))

    async def stop(self, drain_s: float = 0.0) -> Any:
        """Stop pumping, close the open segment, finalise. Idempotent; returns ``result()``.
        ``drain_s``: wait up to that long for the pumps to take what the sources still hold
        (close the sources first: they end once drained)."""
        async with self._stop_lock:
            if not self._stopped:
                pumping = [t for t in self._tasks if not t.done() and t is not asyncio.current_task()]
                if drain_s > 0 and pumping:
                    await asyncio.wait(pumping, timeout=drain_s)
                self._stopped = True
                for t in self._tasks:
                    t.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                if self.seg_start_ms is not None:
                    self._finish_segment(self.last_ms + (33 if self.video_driven else 20))
                    self.seg_start_ms = None
                await self._finalise()
        return self.result()

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    async def _pump_video(self) -> None:
        while (frame := await self._video_source.get()) is not None:
            self._guarded(self.push_video, frame)
        log.info("%s: the video source ended; finishing", self.kind)
        self._end_task = asyncio.get_running_loop().create_task(self.stop())  # keeps a reference

    async def _pump_audio(self) -> None:
        while (item := await self._audio_source.get()) is not None:
            self._guarded(self.push_audio, *item)

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # one bad packet must not end a recording
            self.errors += 1
            if self.errors <= 5:
                log.exception("%s: writing a packet failed", self.kind)

    # ---- input --------------------------------------------------------------------------
    def push_video(self, frame: EncodedFrame) -> None:
        if not self.running:
            return
        self.video_driven = True
        ms = self.timeline.ms("video", frame.pts, frame.time_base)
        if self.seg_start_ms is None or (frame.keyframe and ms - self.seg_start_ms >= self.segment_ms):
            if not frame.keyframe:
                self.dropped_before_keyframe += 1
                self._ask_keyframe()
                return
            self.codec, self.width, self.height = frame.codec, frame.width, frame.height
            self._cut(ms)
        elif ms - self.seg_start_ms >= self.segment_ms - 250:
            self._ask_keyframe()
        self.video_frames += 1
        self.last_ms = max(self.last_ms, ms)
        self._write_video(frame, ms)

    def push_audio(self, payload: bytes, rtp_timestamp: int) -> None:
        if not self.running:
            return
        ms = self.timeline.ms("audio", rtp_timestamp, AUDIO_TB, wrap_bits=32)
        if not self.video_driven and (self.seg_start_ms is None or ms - self.seg_start_ms >= self.segment_ms):
            self._cut(ms)
        if self.seg_start_ms is None or ms < self.seg_start_ms:
            return  # before the first keyframe: nothing to attach it to
        self.audio_packets += 1
        self.last_ms = max(self.last_ms, ms)
        self._write_audio(payload, ms)

    def _ask_keyframe(self) -> None:
        now = self._clock()
        if self._request_keyframe is not None and now - self._asked_at >= 0.25:
            self._asked_at = now
            self._request_keyframe()

    def _cut(self, ms: int) -> None:
        if self.seg_start_ms is not None:
            self._finish_segment(ms)
        self.seg_start_ms = ms
        self.segment_index += 1
        self._begin_segment(self.segment_index, ms)

    # ---- the format (subclasses) --------------------------------------------------------
    def _open_sink(self) -> None:
        """Called once by start()."""

    def _begin_segment(self, index: int, start_ms: int) -> None:
        raise NotImplementedError

    def _write_video(self, frame: EncodedFrame, ms: int) -> None:
        raise NotImplementedError

    def _write_audio(self, payload: bytes, ms: int) -> None:
        raise NotImplementedError

    def _finish_segment(self, end_ms: int) -> None:
        """Close the open segment; ``end_ms``: where the next one starts (or the last
        packet's end at stop)."""
        raise NotImplementedError

    async def _finalise(self) -> None:
        """After the last segment is closed (stop)."""

    def result(self) -> Any:
        return None
