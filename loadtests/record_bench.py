"""Recording benchmark: CPU cost of recording meetings (and of their public HLS stream).

    .venv/bin/python -m loadtests.record_bench --seconds 60 --realtime 10 [--loop uvloop|asyncio]

Input per meeting, as the compositor and the mixer hand it over: a 720p30 VP8 composite at
about 1.2 Mbit/s (a pre-encoded 2 s clip of a moving test pattern, looped: a keyframe every 2 s)
and 20 ms Opus packets of the mix (a tone at 48 kbit/s). The recorder remuxes both into WebM
segments (4 s) and, on stop, concatenates them into the final file. HLS takes a 720p H.264
clip instead and transcodes the audio to AAC.

Two measurements, process CPU time (user+sys, all threads) divided by recorded media seconds:
* "batch": media fed as fast as possible (pure cost of the recorder; feeder included, it is
  tiny); "finalise" is the stop (concatenation of the segments), reported per recorded second.
* "realtime": media fed at its real rate for --realtime seconds (adds event-loop wake-ups,
  per-packet flushes and fsyncs as in production); CPU % of one core.
Meetings at once: 1 and 3 (each its own recorder, interleaved on one event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from fractions import Fraction

from loadtests import loops
from mcu.audio.codec import tone_packets
from mcu.compose.renditions import EncodedFrame
from mcu.compose.testsrc import encode_clip
from mcu.record import HlsWriter, Recorder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "loadtests", "results")
FPS = 30


def clips() -> dict:
    t0 = time.perf_counter()
    vp8 = encode_clip((60, 90, 160), 1280, 720, 2 * FPS, "vp8", FPS, 1_200_000, pattern=True)
    h264 = encode_clip((60, 90, 160), 1280, 720, 2 * FPS, "h264", FPS, 1_200_000, pattern=True)
    opus = tone_packets(440, 100)
    print(
        f"clips encoded in {time.perf_counter() - t0:.1f} s: VP8 "
        f"{sum(len(d) for d, _ in vp8) * 8 / 2 / 1e6:.2f} Mbit/s, H.264 "
        f"{sum(len(d) for d, _ in h264) * 8 / 2 / 1e6:.2f} Mbit/s"
    )
    return {"vp8": vp8, "h264": h264, "opus": opus}


def make_sinks(kind: str, n: int, root: str) -> list:
    if kind == "record":
        return [
            Recorder(
                os.path.join(root, f"m{k}"),
                {"meeting_id": f"m{k}", "title": f"Họp {k}", "participants": ["hg-ubnd"]},
                None,
                None,
                4.0,
            )
            for k in range(n)
        ]
    return [HlsWriter(os.path.join(root, f"h{k}"), 2.0, 6) for k in range(n)]


def push(sinks: list, media: dict, codec: str, i: int) -> None:
    frames, opus = media[codec], media["opus"]
    data, key = frames[i % len(frames)]
    for s in sinks:
        s.push_video(EncodedFrame("720p", codec, data, i, Fraction(1, FPS), key, 1280, 720))
        for j in range(i * 5 // 3, (i + 1) * 5 // 3):
            s.push_audio(opus[j % len(opus)], j * 960)


async def batch(kind: str, n: int, seconds: int, media: dict, root: str) -> dict:
    codec = "vp8" if kind == "record" else "h264"
    sinks = make_sinks(kind, n, root)
    for s in sinks:
        await s.start()
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(seconds * FPS):
        push(sinks, media, codec, i)
    c1 = time.process_time()
    for s in sinks:
        await s.stop()
    c2, w2 = time.process_time(), time.perf_counter()
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(root) for f in fs)
    per = seconds * n
    return {
        "mode": "batch",
        "kind": kind,
        "meetings": n,
        "media_s": seconds,
        "cpu_ms_per_s": round((c2 - c0) * 1000 / per, 3),
        "write_ms_per_s": round((c1 - c0) * 1000 / per, 3),
        "finalise_ms_per_s": round((c2 - c1) * 1000 / per, 3),
        "wall_s": round(w2 - w0, 2),
        "disk_kbit_s": round(size * 8 / per / 1000, 1) if kind == "record" else None,
    }


async def realtime(kind: str, n: int, seconds: int, media: dict, root: str) -> dict:
    codec = "vp8" if kind == "record" else "h264"
    sinks = make_sinks(kind, n, root)
    for s in sinks:
        await s.start()
    loop = asyncio.get_running_loop()
    c0, t0 = time.process_time(), loop.time()
    for i in range(seconds * FPS):
        delay = t0 + i / FPS - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        push(sinks, media, codec, i)
    c1, t1 = time.process_time(), loop.time()
    for s in sinks:
        await s.stop()
    c2 = time.process_time()
    return {
        "mode": "realtime",
        "kind": kind,
        "meetings": n,
        "media_s": seconds,
        "cpu_pct_of_core": round((c1 - c0) / (t1 - t0) * 100, 2),
        "cpu_ms_per_s": round((c2 - c0) * 1000 / (seconds * n), 3),
        "finalise_ms_per_s": round((c2 - c1) * 1000 / (seconds * n), 3),
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=60, help="media seconds per meeting, batch mode")
    ap.add_argument("--realtime", type=int, default=10, help="seconds of the real-time runs (0: skip)")
    ap.add_argument("--meetings", default="1,3")
    ap.add_argument("--no-hls", action="store_true")
    loops.add_option(ap)
    return ap.parse_args()


async def main(args: argparse.Namespace) -> None:
    media = clips()
    rows = []
    for kind in ["record"] + ([] if args.no_hls else ["hls"]):
        for n in [int(x) for x in args.meetings.split(",")]:
            runs = [("batch", args.seconds)] + ([("realtime", args.realtime)] if args.realtime else [])
            for mode, secs in runs:
                root = tempfile.mkdtemp(prefix="record_bench_")
                try:
                    fn = batch if mode == "batch" else realtime
                    rows.append(await fn(kind, n, secs, media, root))
                finally:
                    shutil.rmtree(root, ignore_errors=True)
                r = rows[-1]
                print(
                    f"{kind:6} {mode:8} meetings={n}  {r['cpu_ms_per_s']:7.2f} ms CPU per media s"
                    + (f"  ({r['cpu_pct_of_core']:.2f}% of a core)" if "cpu_pct_of_core" in r else ""),
                    flush=True,
                )
    print(f"\nevent loop: {loops.running()}")
    print("CPU ms/s: process CPU per recorded media second of one meeting (write + final);")
    print("core %: CPU of all the meetings at real time, in % of one core; disk: per meeting")
    print(
        f"{'sink':6} {'mode':8} {'mtgs':>4} {'media s':>7} {'CPU ms/s':>9} {'write':>7} {'final':>7} "
        f"{'core %':>7} {'disk kbit/s':>11}"
    )
    for r in rows:
        print(
            f"{r['kind']:6} {r['mode']:8} {r['meetings']:>4} {r['media_s']:>7} {r['cpu_ms_per_s']:>9.2f} "
            f"{r.get('write_ms_per_s', float('nan')):>7.2f} {r['finalise_ms_per_s']:>7.2f} "
            f"{r.get('cpu_pct_of_core', r['cpu_ms_per_s'] * r['meetings'] / 10):>7.2f} {r.get('disk_kbit_s') or float('nan'):>11}"
        )
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"record_bench_{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(
            {
                "cpus": os.cpu_count(),
                "loop": loops.running(),
                "seconds": args.seconds,
                "realtime": args.realtime,
                "rows": rows,
            },
            f,
            indent=2,
            ensure_ascii=False,
        )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    arguments = parse_args()
    loops.run(main(arguments), arguments.loop)
