"""Join/leave churn: N cycles of a subscriber joining, decoding a frame and leaving (or
vanishing), in one process with the media node. Checks that nothing leaks (tasks, file
descriptors, peers, outputs) and reports join-to-first-decoded-frame time.

    .venv/bin/python -m loadtests.sfu_churn --cycles 500 --concurrency 5 [--loop uvloop|asyncio]

Half of the leaves are orderly (client closes, signaling closes the peer); the other half are
"crashes" from the node's point of view: the client's connection goes away and nobody calls
``peer.close()``; the node must notice by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import time

from loadtests import loops
from mcu.node import LocalMediaNode
from tests.support.media_clients import Client, PatternTrack, ToneTrack, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "loadtests", "results")


def alive() -> dict[str, int]:
    """Live objects of the types a leak would keep."""
    names = (
        "LocalPeer",
        "Output",
        "Stream",
        "RTCPeerConnection",
        "RTCDtlsTransport",
        "Connection",
        "IdleTrack",
        "Session",
    )
    counts = dict.fromkeys(names, 0)
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in counts:
            counts[name] += 1
    return counts


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def cycle(node: LocalMediaNode, i: int, times: list[float], failures: list[str]) -> None:
    s = Client(node, "churn", f"s{i}", publish=False)
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(s.join(), 10)
        if await wait_for(lambda: s.video_frames() != [], timeout=5, step=0.01):
            times.append(s.video_frames()[0][0] - t0)
        else:
            failures.append(f"s{i}: no frame")
    except Exception as exc:  # counted, the run goes on
        failures.append(f"s{i}: {exc!r}")
    if i % 2:
        await s.close()
    else:
        await s.pc.close()  # the node is not told; it must notice the DTLS close
        await wait_for(lambda: f"s{i}" not in node.meetings["churn"].peers, timeout=5)
        await s.close()


async def main(args: argparse.Namespace) -> dict:
    node = LocalMediaNode(ice_host="127.0.0.1")
    await node.start()
    pub = Client(node, "churn", "pub", video=PatternTrack(120), audio=ToneTrack(), recv_audio=False, recv_video=False)
    await pub.join()
    await asyncio.sleep(1.0)
    # warm-up cycle so lazily created objects are in the baseline
    await cycle(node, 10**6, [], [])
    await asyncio.sleep(0.5)
    gc.collect()
    base = {"tasks": len(asyncio.all_tasks()), "fds": fds(), "rss_mib": rss_mib(), "objects": alive()}
    times: list[float] = []
    failures: list[str] = []
    t_start = time.monotonic()
    done = 0
    while done < args.cycles and time.monotonic() - t_start < args.max_seconds:
        batch = range(done, min(args.cycles, done + args.concurrency))
        await asyncio.gather(*(cycle(node, i, times, failures) for i in batch))
        done = batch[-1] + 1
    await wait_for(lambda: len(node.peers) == 1, timeout=10)
    await asyncio.sleep(1.0)
    gc.collect()
    stream = next(s for s in node.meetings["churn"].router.streams.values() if s.kind == "video")
    end = {"tasks": len(asyncio.all_tasks()), "fds": fds(), "rss_mib": rss_mib(), "objects": alive()}
    result = {
        "benchmark": "sfu_churn",
        "loop": loops.running(),
        "cycles": done,
        "failures": len(failures),
        "failure_samples": failures[:5],
        "first_frame_median_ms": statistics.median(times) * 1000 if times else None,
        "first_frame_p95_ms": sorted(times)[int(0.95 * (len(times) - 1))] * 1000 if times else None,
        "baseline": base,
        "end": end,
        "peers_left": len(node.peers) - 1,
        "outputs_left_on_stream": len(stream.outputs()),
        "seconds": time.monotonic() - t_start,
    }
    await pub.close()
    await node.stop()
    result["meetings_after_stop"] = len(node.meetings)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=400)
    loops.add_option(parser)
    args = parser.parse_args()
    res = loops.run(main(args), args.loop)
    print(json.dumps(res, indent=2))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"sfu_churn_{time.strftime('%Y%m%dT%H%M%S')}.json"), "w") as f:
        json.dump(res, f, indent=2)
