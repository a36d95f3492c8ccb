"""Inputs of a recording or a live stream: timestamp mapping and the audio feed adapter.

Video comes from a compositor rendition (``Compositor.subscribe(rendition)`` gives a ``Subscription``
whose ``get()`` yields ``EncodedFrame`` objects, None once closed). Audio comes from an
``AudioMixer`` listener, which calls ``on_packet(payload, rtp_timestamp)`` on the event loop;
``AudioFeed`` turns those calls into the same ``get()`` shape.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from fractions import Fraction

AUDIO_RATE = 48000
AUDIO_TB = Fraction(1, AUDIO_RATE)
OPUS_PRESKIP = 312  # libopus' usual encoder lookahead at 48 kHz


def opus_head(channels: int = 1, rate: int = AUDIO_RATE) -> bytes:
    """The 19-byte OpusHead (RFC 7845 5.1) a Matroska/WebM Opus track carries as CodecPrivate."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, OPUS_PRESKIP, rate, 0, 0)


class AudioFeed:
    """Bounded queue of (payload, rtp_timestamp) from a mixer listener. A consumer that falls
    more than ``maxsize`` packets behind loses the oldest ones (they are counted)."""

    def __init__(self, maxsize: int = 250) -> None:
        self._queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue(maxsize)
        self.closed = False
        self.dropped = 0

    def on_packet(self, payload: bytes, timestamp: int) -> None:
        if self.closed:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait((payload, timestamp))

    async def get(self) -> tuple[bytes, int] | None:
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)


class Timeline:
    """Maps each stream's own timestamps to milliseconds since the sink started.

    A stream is anchored at its first packet: its offset is that packet's arrival time (wall
    clock) after the start; later packets follow their own timestamps, so jitter in arrival does
    not move them and a source fed faster than real time (tests) keeps its true duration. RTP
    timestamps wrap at 2**32; a jump of more than ``max_jump_s`` (a source restarted) re-anchors
    the stream to its arrival time. Output is strictly increasing per stream.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_jump_s: float = 30.0) -> None:
        self._clock = clock
        self.start = clock()
        self._max_jump = max_jump_s
        self._anchor: dict[str, tuple[int, float]] = {}  # stream -> (first unwrapped ts, offset ms)
        self._last_raw: dict[str, int] = {}
        self._unwrapped: dict[str, int] = {}
        self._last_ms: dict[str, int] = {}

    def ms(self, stream: str, ts: int, time_base: Fraction, wrap_bits: int = 0) -> int:
        now_ms = (self._clock() - self.start) * 1000.0
        if stream in self._last_raw and wrap_bits:
            delta = (ts - self._last_raw[stream]) % (1 << wrap_bits)
            if delta >= 1 << (wrap_bits - 1):
                delta -= 1 << wrap_bits
            value = self._unwrapped[stream] + delta
        else:
            value = ts if stream not in self._unwrapped else self._unwrapped[stream] + ts - self._last_raw[stream]
        self._last_raw[stream], self._unwrapped[stream] = ts, value
        anchor = self._anchor.get(stream)
        if anchor is None:
            anchor = self._anchor[stream] = (value, now_ms)
        out = anchor[1] + float((value - anchor[0]) * time_base) * 1000.0
        last = self._last_ms.get(stream)
        if last is not None and not -1000.0 < out - last < self._max_jump * 1000.0:
            anchor = self._anchor[stream] = (value, max(now_ms, last + 1.0))
            out = anchor[1]
        result = round(out)
        if last is not None and result <= last:
            result = last + 1
        self._last_ms[stream] = result
        return result

    def elapsed_ms(self) -> int:
        return round((self._clock() - self.start) * 1000.0)
