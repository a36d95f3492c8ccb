"""A commune link in user space (no netem here): shaping under one aiortc test client.

``LossyLink.install(pc)`` wraps the client's ICE socket protocols (aioice ``StunProtocol``):

* down (node -> client): a bottleneck of ``down_bps`` with a drop-tail queue of ``queue_s``
  seconds (a packet that would wait longer is dropped), then random loss and ``delay`` s;
* up (client -> node): random loss and ``delay`` s.

Only media (RTP/RTCP, first byte 128..191) is rate limited and lost; STUN and DTLS are only
delayed, so that the connection itself comes up as on a real thin link that works. Every
scheduled delivery is tracked and cancelled by ``close()``. ``delivered`` records (time, bytes)
of media handed to the client: the received bitrate.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any


def _is_media(data: bytes) -> bool:
    return len(data) >= 2 and 128 <= data[0] <= 191


class LossyLink:
    def __init__(
        self, down_bps: int = 384_000, loss: float = 0.03, delay: float = 0.075, queue_s: float = 0.5, seed: int = 7
    ) -> None:
        self.down_bps = down_bps
        self.loss = loss
        self.delay = delay
        self.queue_s = queue_s
        self._rng = random.Random(seed)
        self._free_at = 0.0  # when the bottleneck finishes the packets queued so far
        self._handles: set[asyncio.TimerHandle] = set()
        self.delivered: list[tuple[float, int]] = []
        self.dropped_queue = 0
        self.dropped_random = 0
        self.closed = False

    def install(self, pc: Any) -> None:
        conn = pc.getTransceivers()[0].receiver.transport.transport._connection
        for proto in conn._protocols:
            self._wrap(proto)

    def _wrap(self, proto: Any) -> None:
        receive = proto.datagram_received

        def datagram_received(data: bytes, addr: Any) -> None:
            self._down(data, lambda: receive(data, addr))

        async def send_data(data: bytes, addr: Any) -> None:
            if _is_media(data) and self._rng.random() < self.loss:
                self.dropped_random += 1
                return
            self._later(self.delay, lambda: proto.transport.sendto(data, addr))

        proto.datagram_received = datagram_received
        proto.send_data = send_data

    def _down(self, data: bytes, deliver: Any) -> None:
        if not _is_media(data):
            self._later(self.delay, deliver)
            return
        now = time.monotonic()
        start = max(now, self._free_at)
        if start - now > self.queue_s:
            self.dropped_queue += 1
            return
        self._free_at = start + len(data) * 8 / self.down_bps
        if self._rng.random() < self.loss:
            self.dropped_random += 1
            return
        at = self._free_at - now + self.delay

        def arrive() -> None:
            self.delivered.append((time.monotonic(), len(data)))
            deliver()

        self._later(at, arrive)

    def _later(self, delay: float, fn: Any) -> None:
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def run() -> None:
            self._handles.discard(handle)
            fn()

        handle = loop.call_later(delay, run)
        self._handles.add(handle)

    def kbps(self, t0: float, t1: float) -> float:
        total = sum(n for t, n in self.delivered if t0 <= t < t1)
        return total * 8 / 1000 / max(1e-6, t1 - t0)

    def close(self) -> None:
        self.closed = True
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
