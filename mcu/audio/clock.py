"""The mixer's 20 ms clock on asyncio, with drift correction and event-loop lag measurement.

Deadlines are absolute (``start + k * period``), so sleep overshoot never accumulates: a tick
that wakes up late is followed by a shorter sleep. If the loop falls more than ``max_behind``
periods behind (a stall), the clock skips the missed ticks instead of bursting them (the
receivers' jitter buffers would drop a burst anyway) and counts them in ``skipped``.

``offload=True`` runs decode/mix/encode in a dedicated one-thread executor (PyAV releases the
GIL while coding), keeping the loop free for signaling and RTP; ``offload=False`` runs inline.
``lag`` is how late each tick woke up compared to its deadline: the event-loop lag as the
mixer sees it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger(__name__)


class Tickable(Protocol):
    frame_ms: int

    async def tick_async(self, executor: Executor | None = None) -> None: ...


class MixerClock:
    def __init__(self, mixer: Tickable, offload: bool = True, max_behind: int = 5):
        self.mixer = mixer
        self.period = mixer.frame_ms / 1000.0
        self.offload = offload
        self.max_behind = max_behind
        self.ticks = 0
        self.skipped = 0
        self.errors = 0
        self.lags: deque[float] = deque(maxlen=3000)  # seconds, most recent ticks
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is not None:
            return
        if self.offload:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="audio-mix")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audio-mixer-clock")

    async def stop(self) -> None:
        """Idempotent: cancels the clock and waits for an in-flight tick to finish."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        while True:
            deadline = start + k * self.period
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = loop.time() - deadline
            self.lags.append(max(0.0, lag))
            if lag > self.max_behind * self.period:
                behind = int(lag / self.period)
                self.skipped += behind
                k += behind
            try:
                await self.mixer.tick_async(self._executor)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                log.exception("audio mixer tick failed")
            self.ticks += 1
            k += 1

    def lag_stats(self) -> dict[str, float]:
        """Wake-up lag in ms over the recent ticks: mean, p99, max."""
        if not self.lags:
            return {"mean_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        ordered = sorted(self.lags)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return {"mean_ms": 1000 * sum(ordered) / len(ordered), "p99_ms": 1000 * p99, "max_ms": 1000 * ordered[-1]}
