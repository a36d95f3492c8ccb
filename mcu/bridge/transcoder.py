"""One source's transcode: decoded once, encoded once per codec that some subscriber needs.

A ``Transcoder`` taps a publisher ``Stream`` (``Stream.add_tap``: one call per packet, on the event
loop), rebuilds its frames (``mcu.bridge.depacketize``) and hands them to its own worker thread
through a bounded queue. The thread decodes each frame once (PyAV) and gives the picture to every
``Target``: one encoder per codec, at the source's resolution (``mcu.compose.renditions``'s encoder
setup: libvpx realtime for VP8, ``h264_encoder()``'s h264_nvenc or libx264 zerolatency baseline
for H.264), whose frames are packetized
(``mcu.bridge.packetize``) and fed, back on the event loop, into the target's converted ``Stream``.
Every subscriber of that codec is an output of that one stream (the SFU's fast path from there on).

Overflow policy: when the thread is behind (the queue is full) the waiting frames are dropped and
the transcode resumes at the source's next key frame (asked for, merged and rate limited by the
source). A hole in the source's packets or a frame the decoder refuses also asks for one. PLI/FIR
from a converted stream's subscribers become a key frame of its encoder (``KeyframeGate``: merged,
at most one per ``KEYFRAME_INTERVAL``). The RTP timestamps are the source's.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Any, Callable, cast

import av

from mcu.bridge.depacketize import Frame, H264Assembler, Vp8Assembler
from mcu.bridge.packetize import H264_MAX_PAYLOAD, Packetizer
from mcu.compose.meter import CpuMeter
from mcu.compose.renditions import KeyframeGate, Rendition, RenditionEncoder
from mcu.sfu.stream import Stream

log = logging.getLogger("mcu.bridge.transcoder")

DECODERS = {"VP8": "vp8", "H264": "h264"}  # codecs a source may be transcoded from (PyAV names)
ENCODERS = {"VP8": "vp8", "H264": "h264"}  # codecs it may be transcoded to (Rendition.codec)
QUEUE_FRAMES = 6  # frames waiting for the thread (0.2 s at 30 fps); more: it is behind
KEYFRAME_INTERVAL = 0.3  # s: merged PLIs of a converted stream's subscribers
ENCODER_FPS = 30  # rate control's frame rate (browsers' cameras); the RTP timestamps stay the source's
BITS_PER_PIXEL = 1.6  # bit/s per pixel: 1280x720 -> about 1.5 Mbit/s
MIN_BITRATE, MAX_BITRATE = 150_000, 2_500_000


def bitrate_for(width: int, height: int) -> int:
    return max(MIN_BITRATE, min(MAX_BITRATE, int(width * height * BITS_PER_PIXEL)))


class ConvertedStream(Stream):
    """A source transcoded to another codec: same endpoint, kind and source, so that the meeting's
    policy sees the same publisher; ``origin`` (``Stream.origin``) is the source stream."""

    def __init__(self, origin: Stream, codec: str, send_keyframe_request: Callable[[Stream], None]) -> None:
        super().__init__(
            stream_id=f"xc:{origin.stream_id}:{codec}",
            endpoint_id=origin.endpoint_id,
            kind=origin.kind,
            source=origin.source,
            codec=codec,
            clock_rate=origin.clock_rate,
            send_keyframe_request=send_keyframe_request,
            keyframe_interval=KEYFRAME_INTERVAL,
            priority=origin.priority,
        )
        self.origin = origin
        self.via = origin.via


class Target:
    """The source in one codec: its encoder (the worker thread's) and its converted stream (the loop's)."""

    def __init__(self, origin: Stream, codec: str, meter: CpuMeter) -> None:
        self.codec = codec
        self.stream = ConvertedStream(origin, codec, self._keyframe_wanted)
        self.idle_since: float | None = None  # no output since then (the pool stops it after a grace)
        self._meter = meter
        self._packetizer = Packetizer()
        self._gate = KeyframeGate(KEYFRAME_INTERVAL, time.monotonic)
        self._gate_lock = threading.Lock()  # requests come from the loop, take() runs in the thread
        self._encoder: RenditionEncoder | None = None
        self._size = (0, 0)
        self.frames_out = 0
        self.encode_s = 0.0
        self.failed = False  # its encoder raised: skipped by the thread until the loop drops it

    def _keyframe_wanted(self, stream: Stream) -> None:
        """Merged PLIs of the subscribers (and outputs waiting to start) -> a forced key frame."""
        with self._gate_lock:
            if not self._gate.request():
                self._gate.want()

    def encode(self, picture: av.VideoFrame, timestamp: int) -> list[bytes]:
        """Worker thread: one decoded picture -> the RTP packets of its encoded frame."""
        if self._encoder is None or (picture.width, picture.height) != self._size:
            self._open(picture.width, picture.height)  # a new size starts with a key frame
        assert self._encoder is not None
        with self._gate_lock:
            force = self._gate.take()
        t0 = time.thread_time()
        encoded = self._encoder.encode(picture, timestamp, force)
        self.encode_s += time.thread_time() - t0
        packets: list[bytes] = []
        for frame in encoded:
            if frame.keyframe:
                with self._gate_lock:
                    self._gate.emitted()
            if self.codec == "H264":
                packets += self._packetizer.h264(frame.data, timestamp, mode=0)
            else:
                packets += self._packetizer.vp8(frame.data, timestamp)
            self.frames_out += 1
        return packets

    def _open(self, width: int, height: int) -> None:
        # H.264 in single NAL units (mode 0), like the composite: receivers of either mode decode it
        slice_max = H264_MAX_PAYLOAD if self.codec == "H264" else 0
        rendition = Rendition(
            self.codec, height, bitrate_for(width, height), codec=ENCODERS[self.codec], slice_max=slice_max
        )
        self._encoder = RenditionEncoder(rendition, width, height, ENCODER_FPS, 1, self._meter)
        self._size = (width, height)

    def deliver(self, packets: list[bytes]) -> None:
        """Event loop: the encoded frame into the converted stream (its outputs get it from there)."""
        stream = self.stream
        if not stream.closed:
            for packet in packets:
                stream.on_rtp(packet)

    def stats(self) -> dict[str, Any]:
        return {
            "stream": self.stream.stream_id,
            "frames_out": self.frames_out,
            "encode_ms_per_frame": round(1000 * self.encode_s / self.frames_out, 2) if self.frames_out else None,
            "size": list(self._size),
            "keyframes_forced": self._gate.forced,
            "outputs": len(self.stream.outputs()),
        }


class Transcoder:
    """A source stream decoded once for all its targets (created on the event loop)."""

    def __init__(self, source: Stream) -> None:
        self.source = source
        self.targets: dict[str, Target] = {}  # by codec; changed on the loop only
        self.closed = False
        self.meter = CpuMeter()
        self._loop = asyncio.get_running_loop()
        self._assembler = H264Assembler() if source.codec == "H264" else Vp8Assembler()
        self._decoder = cast(av.VideoCodecContext, av.CodecContext.create(DECODERS[source.codec], "r"))
        self._decoder.thread_count = 1  # no frame threading: no added delay, and the cores are the encoders'
        self._queue: queue.Queue[Frame | None] = queue.Queue(QUEUE_FRAMES)
        self._skip_to_key = False
        self._thread = threading.Thread(target=self._run, name=f"transcode {source.stream_id}", daemon=True)
        self.frames_in = 0
        self.decoded = 0
        self.decode_s = 0.0
        self.dropped_behind = 0  # frames dropped on the loop: the thread was behind
        self.undecodable = 0  # frames the decoder refused (counted in the thread: two counters, no race)
        self._thread.start()
        source.add_tap(self._on_packet)

    def target(self, codec: str) -> Target:
        target = self.targets.get(codec)
        if target is None:
            # its encoder opens on the next decoded picture, with a key frame
            target = self.targets[codec] = Target(self.source, codec, self.meter)
        return target

    def drop_target(self, codec: str) -> None:
        target = self.targets.pop(codec, None)
        if target is not None:
            target.stream.close()

    # -- event loop --------------------------------------------------------------------------

    def _on_packet(self, data: bytes) -> None:
        """Once per source packet (not called while the source is muted)."""
        frame = self._assembler.push(data)
        if frame is None:
            if self._assembler.need_keyframe:
                self.source.request_keyframe()  # merged and rate limited by the stream
            return
        self.frames_in += 1
        if self._skip_to_key:
            if not frame.keyframe:
                self.dropped_behind += 1
                return
            self._skip_to_key = False
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self._behind()

    def _behind(self) -> None:
        """The thread cannot keep up: drop what waits and resume at the next key frame."""
        dropped = 1
        while True:
            try:
                self._queue.get_nowait()
                dropped += 1
            except queue.Empty:
                break
        self.dropped_behind += dropped
        self._skip_to_key = True
        self.source.request_keyframe()

    def _undecodable(self) -> None:
        self._skip_to_key = True
        self.source.request_keyframe()

    # -- worker thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            try:
                self._transcode(frame)
            except Exception:  # a broken encoder must not end the thread silently
                log.exception("transcode of %s", self.source.stream_id)

    def _transcode(self, frame: Frame) -> None:
        t0 = time.thread_time()
        try:
            pictures = self._decoder.decode(av.Packet(frame.payload))
        except av.FFmpegError:
            self.undecodable += 1
            self._loop.call_soon_threadsafe(self._undecodable)
            return
        self.decode_s += time.thread_time() - t0
        for picture in pictures:
            self.decoded += 1
            for target in list(self.targets.values()):
                if target.failed:
                    continue  # being dropped on the loop
                try:
                    packets = target.encode(picture, frame.timestamp)
                except Exception as exc:  # any encoder failure ends that target only
                    self._encoder_failed(target, picture, exc)
                    continue
                if packets:
                    self._loop.call_soon_threadsafe(target.deliver, packets)

    def _encoder_failed(self, target: Target, picture: av.VideoFrame, exc: Exception) -> None:
        """Worker thread: an encoder that cannot open or encode would fail on every frame (30 a
        second) for as long as the source lives; it is dropped instead, with one log line. Its
        outputs pause; a later ``convert`` of that codec tries a new encoder."""
        target.failed = True
        log.error(
            "transcode of %s to %s at %dx%d stopped, its encoder failed: %s",
            self.source.stream_id,
            target.codec,
            picture.width,
            picture.height,
            exc,
        )
        self._loop.call_soon_threadsafe(self._drop_failed, target)

    def _drop_failed(self, target: Target) -> None:
        if self.targets.get(target.codec) is target:  # not already dropped or replaced
            self.drop_target(target.codec)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Untap the source, close the converted streams, let the thread end (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.source.remove_tap(self._on_packet)
        for codec in list(self.targets):
            self.drop_target(codec)
        while True:  # room for the end mark
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put_nowait(None)

    async def stop(self) -> None:
        """close(), then wait (bounded) for the thread to finish the frame it is on."""
        self.close()
        await asyncio.to_thread(self._thread.join, 2.0)

    def stats(self) -> dict[str, Any]:
        return {
            "source": self.source.stream_id,
            "codec": self.source.codec,
            "frames_in": self.frames_in,
            "decoded": self.decoded,
            "dropped": self.dropped_behind + self.undecodable,
            "dropped_behind": self.dropped_behind,
            "undecodable": self.undecodable,
            "decode_ms_per_frame": round(1000 * self.decode_s / self.decoded, 2) if self.decoded else None,
            "targets": {codec: t.stats() for codec, t in self.targets.items()},
        }
