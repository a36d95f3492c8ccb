"""What stalls an event loop: a watchdog thread samples the loop thread's stack while it is late.

The loop calls ``tick()`` often (loadtests/sfu_server.py: every 5 ms timer). When no tick came
for ``threshold`` seconds, the watchdog records the loop thread's innermost frames every
``interval`` until the loop ticks again; ``report()`` lists the stacks seen most (each sample
stands for ``interval`` seconds of stall). The watchdog needs the GIL, so a stall in C code
that holds it shows up as the Python frame that called into it.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
import traceback


class StallWatch:
    def __init__(self, threshold: float = 0.05, interval: float = 0.01, depth: int = 8) -> None:
        self.threshold, self.interval, self.depth = threshold, interval, depth
        self.samples: collections.Counter[tuple[str, ...]] = collections.Counter()
        self._last = time.monotonic()
        self._ident = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stallwatch", daemon=True)

    def start(self) -> None:
        self._ident = threading.get_ident()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> None:
        self._last = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if time.monotonic() - self._last < self.threshold:
                continue
            frame = sys._current_frames().get(self._ident)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)[-self.depth :]
            self.samples[tuple(f"{s.filename.rsplit('/', 2)[-1]}:{s.lineno} {s.name}" for s in stack)] += 1

    def report(self, top: int = 6) -> str:
        total = sum(self.samples.values())
        lines = [f"loop stalls (> {self.threshold * 1000:.0f} ms): {total} samples, ~{total * self.interval:.2f} s"]
        for stack, n in self.samples.most_common(top):
            lines.append(f"  {n} samples ({n * self.interval:.2f} s):")
            lines.extend(f"      {frame}" for frame in stack)
        return "\n".join(lines)
