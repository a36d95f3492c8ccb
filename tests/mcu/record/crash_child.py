"""Child process of the kill -9 test: records synthetic media in real time until killed.

    python -m tests.mcu.record.crash_child DIR
prints "started" once the recorder runs, then feeds 30 fps video and 20 ms audio forever.
"""

from __future__ import annotations

import asyncio
import sys
import time
from fractions import Fraction

from mcu.compose.renditions import EncodedFrame
from mcu.record import Recorder

from tests.mcu.record.media import FPS, RED, H, W, clip, tone


async def main(folder: str) -> None:
    frames, packets = clip("vp8", RED), tone()
    rec = Recorder(
        folder,
        {"meeting_id": "m-crash", "title": "Crash test", "participants": ["hg-ubnd"]},
        None,
        None,
        segment_seconds=2,
    )
    await rec.start()
    print("started", flush=True)
    t0 = time.monotonic()
    i = j = 0
    while True:
        data, key = frames[i % len(frames)]
        rec.push_video(EncodedFrame("720p", "vp8", data, i, Fraction(1, FPS), key, W, H))
        i += 1
        while j * 0.02 < i / FPS:
            rec.push_audio(packets[j % len(packets)], j * 960)
            j += 1
        await asyncio.sleep(max(0.0, t0 + i / FPS - time.monotonic()))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
