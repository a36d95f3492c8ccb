"""Media-node process for the fan-out benchmark (``loadtests.sfu_fanout`` starts it).

    .venv/bin/python -m loadtests.sfu_server [--loop uvloop|asyncio] [--max-seconds 900]

Serves a tiny HTTP control API on 127.0.0.1 so that the load clients live in another process:
POST /join {endpoint, publish, sdp} -> {sdp}; POST /leave {endpoint}; GET /stats -> CPU time of
this process, packets received and forwarded, RSS, and the event loop's lag (how late a 5 ms
timer fires: the time a datagram may wait in the socket's buffer) since the last
``/stats?lag=reset``. Prints ``PORT <n>`` once listening. Exits when stdin closes (the
benchmark died) or after --max-seconds. ``--loop`` (loadtests/loops.py): uvloop by default, the
loop ``giaoban serve`` runs; ``/stats`` says which loop ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

from aiohttp import web

from loadtests import loops
from loadtests.procstat import thread_cpu
from loadtests.stallwatch import StallWatch
from mcu.api import PeerSpec
from mcu.node import LocalMediaNode


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


LAG_TICK = 0.005  # s


async def sample_lag(lags: list[float], watch: StallWatch | None) -> None:
    while True:
        t = time.perf_counter()  # not loop.time(): uvloop's is cached per loop iteration
        await asyncio.sleep(LAG_TICK)
        lags.append(time.perf_counter() - t - LAG_TICK)
        if watch is not None:
            watch.tick()


def converted_streams(node: LocalMediaNode) -> list[dict]:
    """The transcoded streams (whose ``origin`` is another stream, mcu.sfu.router) that feed some output,
    each once: the codecs, packets in and packets x outputs sent."""
    seen: dict[int, Any] = {}
    for meeting in node.meetings.values():
        for member in meeting.peers.values():
            for out in member.outputs.values():
                if out.source is not None and getattr(out.source, "origin", out.source) is not out.source:
                    seen[id(out.source)] = out.source
    return [
        {
            "codec": s.codec,
            "origin_codec": s.origin.codec,
            "packets": s.packets,
            "forwarded": s.forwarded,
            "outputs": len(s.outputs()),
        }
        for s in seen.values()
    ]


async def main(args: argparse.Namespace) -> None:
    node = LocalMediaNode(ice_host="127.0.0.1")  # forwarding only: the codec is each peer's (--codec)
    await node.start()
    lags: list[float] = []
    watch = StallWatch() if args.stall_report else None
    if watch is not None:
        watch.start()
    lag_task = asyncio.get_running_loop().create_task(sample_lag(lags, watch))
    peers: dict[str, object] = {}
    profiler = None

    async def events(msg: dict) -> None:  # the benchmark needs no renegotiation
        return None

    async def join(request: web.Request) -> web.Response:
        body = await request.json()
        spec = PeerSpec(
            meeting_id="bench",
            endpoint_id=body["endpoint"],
            display_name=body["endpoint"],
            role="participant",
            link="fibre",
            publish=bool(body.get("publish")),
        )
        if args.codec:
            spec.extra["video_codecs"] = [args.codec]
        peer = await node.open_peer(spec, events)
        peers[spec.endpoint_id] = peer
        answer = await peer.handle_offer(body["sdp"])
        return web.json_response({"sdp": answer})

    async def leave(request: web.Request) -> web.Response:
        body = await request.json()
        peer = peers.pop(body["endpoint"], None)
        if peer is not None:
            await peer.close()
        return web.json_response({"ok": True})

    async def stats(request: web.Request) -> web.Response:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        received = forwarded = dropped = 0
        for meeting in node.meetings.values():
            for stream in meeting.router.streams.values():
                received += stream.packets
                forwarded += stream.forwarded
                dropped += sum(o.dropped for o in stream.outputs())
        window = sorted(lags) or [0.0]
        if request.query.get("lag") == "reset":
            lags.clear()
        return web.json_response(
            dumps=lambda o: json.dumps(o, default=str),
            data={
                "lag_max_ms": window[-1] * 1000,
                "lag_p99_ms": window[int(0.99 * (len(window) - 1))] * 1000,
                "pid": os.getpid(),
                "loop": loops.running(),
                "codec": args.codec or "",
                "cpu": time.process_time(),
                "utime": ru.ru_utime,
                "stime": ru.ru_stime,
                "received": received,
                "forwarded": forwarded,
                "dropped": dropped,
                "rss": rss_bytes(),
                "peers": len(node.peers),
                "tasks": len(asyncio.all_tasks()),
                "converted": converted_streams(node),
                "av_loaded": "av" in sys.modules,  # PyAV loads with the first transcode or composite
                "threads": thread_cpu(),
                "extensions": {
                    mid: {e.name: e.stats() for e in m.extensions if hasattr(e, "stats")}
                    for mid, m in node.meetings.items()
                },
            },
        )

    async def profile(request: web.Request) -> web.Response:
        nonlocal profiler
        import cProfile
        import io
        import pstats

        body = await request.json()
        if body.get("start"):
            profiler = cProfile.Profile()
            profiler.enable()
            return web.json_response({"ok": True})
        if profiler is None:
            return web.json_response({"text": ""})
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
        profiler = None
        return web.json_response({"text": out.getvalue()})

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/join", join)
    app.router.add_post("/leave", leave)
    app.router.add_get("/stats", stats)
    app.router.add_post("/profile", profile)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {port}", flush=True)

    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()

    def on_stdin() -> None:
        if not sys.stdin.buffer.read1(1024) and not stdin_closed.done():
            stdin_closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    try:
        await asyncio.wait_for(stdin_closed, args.max_seconds)
    except asyncio.TimeoutError:
        pass
    loop.remove_reader(sys.stdin.fileno())
    lag_task.cancel()
    if watch is not None:
        watch.stop()
        print(watch.report(), file=sys.stderr, flush=True)
    await node.stop()
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--codec", help="the meeting's one video codec (VP8, H264); default: the node's")
    parser.add_argument("--max-seconds", type=float, default=900)
    loops.add_option(parser, "the media node")
    parser.add_argument(
        "--stall-report", action="store_true", help="print the stacks the loop was stuck in (loadtests/stallwatch.py)"
    )
    args = parser.parse_args()
    loops.run(main(args), args.loop)
