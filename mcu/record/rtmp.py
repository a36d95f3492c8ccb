"""Optional RTMP push of a meeting to a streaming platform (YouTube, Facebook, a local server):
the compositor's H.264 rendition (remuxed) and the mix as AAC, in FLV, from a worker thread.

The network (connect, handshake, a slow uplink) never blocks the event loop: packets go through
a bounded queue to one thread that owns the connection. When the queue overflows the oldest
packets are dropped and video waits for the next keyframe. A failed or lost connection is
retried every ``retry_s`` seconds, restarting at a keyframe with timestamps from zero.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import av

from mcu.compose.renditions import EncodedFrame

from mcu.record.aac import AacTranscoder
from mcu.record.feeds import AUDIO_TB, Timeline
from mcu.record.segmenter import MS

log = logging.getLogger(__name__)
START_CODE = re.compile(b"\x00\x00\x01")


def parameter_sets(annexb: bytes) -> bytes:
    """SPS and PPS NAL units of an H.264 keyframe (Annex B), for the FLV sequence header."""
    nals = [n.rstrip(b"\x00") for n in START_CODE.split(annexb) if n]
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals if n and n[0] & 0x1F in (7, 8))


class RtmpPusher:
    def __init__(
        self,
        url: str,
        video_source: Any = None,
        audio_source: Any = None,
        request_keyframe: Callable[[], Any] | None = None,
        audio_bitrate: int = 96000,
        retry_s: float = 5.0,
        queue_size: int = 600,
        fmt: str = "flv",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.fmt, self.retry_s = url, fmt, retry_s
        self.safe_url = re.sub(r"/[^/]*$", "/***", url)  # the stream key stays out of logs
        self._video_source, self._audio_source = video_source, audio_source
        self._request_keyframe = request_keyframe
        self._clock = clock
        self._audio_bitrate = audio_bitrate
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self.timeline: Timeline | None = None
        self.connects = self.failures = self.dropped = self.sent = 0
        self.last_error = ""
        self._stopped = False

    # ---- event-loop side ----------------------------------------------------------------
    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self.timeline = Timeline(self._clock)
        self._thread = threading.Thread(target=self._run, name="rtmp-push", daemon=True)
        self._thread.start()
        for src, fn in ((self._video_source, self.push_video), (self._audio_source, self.push_audio)):
            if src is not None:
                self._tasks.append(asyncio.create_task(self._pump(src, fn)))

    async def _pump(self, source: Any, fn: Callable) -> None:
        while (item := await source.get()) is not None:
            fn(item) if isinstance(item, EncodedFrame) else fn(*item)

    def push_video(self, frame: EncodedFrame) -> None:
        if frame.codec != "h264":
            raise ValueError(f"RTMP needs the compositor's H.264 rendition, got {frame.codec}")
        if self.timeline is not None and not self._stopped:
            self._put(("v", frame, self.timeline.ms("video", frame.pts, frame.time_base)))

    def push_audio(self, payload: bytes, rtp_timestamp: int) -> None:
        if self.timeline is not None and not self._stopped:
            self._put(("a", payload, self.timeline.ms("audio", rtp_timestamp, AUDIO_TB, 32)))

    def _put(self, item: tuple) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put_nowait(("gap", None, 0))

    def _want_keyframe(self) -> None:
        if self._request_keyframe is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._request_keyframe)

    async def stop(self, drain_s: float = 0.0) -> dict[str, Any]:
        """Idempotent: sends what is queued (waiting up to ``drain_s`` for closed sources to
        be drained first), closes the connection."""
        if not self._stopped:
            if drain_s > 0 and self._tasks:
                await asyncio.wait(self._tasks, timeout=drain_s)
            self._stopped = True
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._thread is not None:
                self._queue.put(None)
                await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10.0)
        return {
            "url": self.safe_url,
            "connects": self.connects,
            "failures": self.failures,
            "sent": self.sent,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }

    # ---- the worker thread --------------------------------------------------------------
    def _run(self) -> None:
        aac = AacTranscoder(self._audio_bitrate)
        out = vs = as_ = None
        base = 0
        need_key, retry_at = True, 0.0
        while (item := self._queue.get()) is not None:
            kind, data, ms = item
            if kind == "gap":
                need_key = True
                self._want_keyframe()
                continue
            try:
                if kind == "v":
                    if need_key and not data.keyframe:
                        continue
                    if out is None:
                        if time.monotonic() < retry_at:
                            continue
                        out, vs, as_ = self._connect(data, aac.extradata)
                        base = ms
                    need_key = False
                    self._mux(out, vs, data.data, ms - base, data.keyframe)
                elif out is not None:
                    for pkt, t in aac.feed(data, ms):
                        if t >= base:
                            self._mux(out, as_, pkt, t - base, True)
                else:
                    aac.feed(data, ms)  # keep the encoder's clock running
            except Exception as exc:  # network lost, refused, platform closed it
                self.failures += 1
                self.last_error = str(exc).replace(self.url, self.safe_url)
                log.warning("rtmp push to %s failed: %s; retrying in %.0f s", self.safe_url, exc, self.retry_s)
                self._close(out)
                out, need_key, retry_at = None, True, time.monotonic() + self.retry_s
                self._want_keyframe()
        self._close(out)

    def _connect(self, key: EncodedFrame, audio_extradata: bytes):
        out = av.open(self.url, "w", format=self.fmt, options={"rw_timeout": "10000000"})
        vs = out.add_stream("h264")
        vs.codec_context.width, vs.codec_context.height = key.width, key.height
        vs.codec_context.extradata = parameter_sets(key.data)
        vs.time_base = MS
        as_ = out.add_stream("aac", rate=48000)
        as_.codec_context.layout = "mono"
        as_.codec_context.extradata = audio_extradata
        as_.time_base = MS
        self.connects += 1
        return out, vs, as_

    def _mux(self, out, stream, data: bytes, ms: int, keyframe: bool) -> None:
        pkt = av.Packet(data)
        pkt.stream, pkt.time_base, pkt.pts, pkt.dts = stream, MS, ms, ms
        pkt.is_keyframe = keyframe
        out.mux(pkt)
        self.sent += 1

    @staticmethod
    def _close(out) -> None:
        if out is not None:
            try:
                out.close()
            except Exception as exc:  # the connection is gone already
                log.debug("closing the rtmp output failed: %s", exc)
