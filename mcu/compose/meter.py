"""CPU accounting of the compositor's libav calls (decode, scale, encode) and numpy work.

Each timed call reads the calling thread's CPU clock (CLOCK_THREAD_CPUTIME_ID) before and
after; all codecs and scalers run with one thread, so libav's work happens in the calling
thread and is fully captured. Compared with the process CPU time, this gives the share of
compositor CPU spent outside libav (Python glue, numpy composition, the event loop).
"""

from __future__ import annotations

import threading


class CpuMeter:
    CATEGORIES = ("decode", "scale", "encode", "compose")
    LIBAV = ("decode", "scale", "encode")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cpu = dict.fromkeys(self.CATEGORIES, 0.0)
        self._calls = dict.fromkeys(self.CATEGORIES, 0)
        self._detail: dict[str, float] = {}

    def add(self, category: str, seconds: float, detail: str | None = None) -> None:
        """Account `seconds` to `category`; `detail` (e.g. "encode.720p") is also kept apart
        (details are breakdowns, not counted twice in the totals)."""
        with self._lock:
            self._cpu[category] += seconds
            self._calls[category] += 1
            if detail is not None:
                self._detail[detail] = self._detail.get(detail, 0.0) + seconds

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {"cpu_s": dict(self._cpu), "calls": dict(self._calls), "detail_s": dict(self._detail)}

    def libav_seconds(self) -> float:
        with self._lock:
            return sum(self._cpu[c] for c in self.LIBAV)
