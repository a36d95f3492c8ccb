"""Side-by-side fan-out benchmark: our SFU (mcu/) against a reference C SFU (Janus 1.1).

    .venv/bin/python -m loadtests.janus_compare --levels 10,50,100,200 --seconds 5

Same load for both servers, in one run: one 720p VP8 publisher (~1.5 Mbit/s, pre-encoded
frames, no encoding on the client) fanned out to N subscribers that count SRTP packets at the
ICE socket without decrypting or decoding, all on 127.0.0.1. The client side is the one of
loadtests/sfu_fanout.py, imported: the same pre-encoded frames, the same publisher track and
send counter, the same counting hook. Our SFU runs in ``loadtests.sfu_server`` (its own
process, on ``--loop``: uvloop by default, as ``giaoban serve``; the clients run asyncio);
Janus runs from a generated config (loadtests/janus_server.py): videoroom plugin, HTTP
transport on 127.0.0.1, ICE on 127.0.0.1 only.

Per server and level, measured in the same way for both servers: server process CPU time
(user+sys from /proc/<pid>/stat, all threads; also on the finer ns clock of the threads'
schedstat) over a media window, divided by the packets the server had to forward (publisher
RTP packets sent in the window x N), and the delivered ratio (packets counted by the N
subscribers / packets sent x N). A window is --seconds rounded to whole loops of the 4 s,
120-frame clip, so every server and level forwards the same frames (key frames included); it
starts and ends at a quiet point (publisher paused, subscriber counters stable), so every
packet sent in it is received (or lost) in it. Also measured: the server's CPU share while the
N peers are connected but no media flows (idle), this client process's CPU share, the whole
machine's (2 shared cores: other jobs show there) and UDP buffer overflows. Prints a table,
writes JSON and a PNG plot (if matplotlib is installed) to loadtests/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from typing import Any

import aiohttp
from aiortc import RTCSessionDescription

from loadtests import loops
from loadtests.janus_server import JanusApi, JanusError, JanusProcess
from loadtests.procstat import cpu_seconds, machine_cpu, proc_cpu_ns, proc_rss, udp_errors
from loadtests.sfu_fanout import (
    FPS,
    RESULTS,
    ROOT,
    Sub,
    encoded_frames,
    hook_count,
    pct,
    start_publisher,
)
from mcu.peer.ice import pin_host_addresses

ROOM = 4242


# -- our SFU ---------------------------------------------------------------------------------


class OurSfu:
    """``loadtests.sfu_server`` in its own process, driven through its /join HTTP API."""

    name = "giaoban-sfu"

    def __init__(self, http: aiohttp.ClientSession, max_seconds: float, loop: str) -> None:
        self.http = http
        self.max_seconds = max_seconds
        self.loop = loop
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "loadtests.sfu_server",
            "--max-seconds",
            str(self.max_seconds),
            "--loop",
            self.loop,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode()
        if not line.startswith("PORT"):
            raise RuntimeError(f"loadtests.sfu_server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    async def publish(self, frames: list) -> tuple:
        return await start_publisher(self.http, self.url, frames)

    async def subscribe(self, sub: Sub) -> None:
        await sub.join(self.http, self.url)

    async def forwarded(self) -> int | None:
        async with self.http.get(f"{self.url}/stats") as r:
            return (await r.json())["forwarded"]

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


# -- Janus -----------------------------------------------------------------------------------


class _Reply:
    def __init__(self, data: dict) -> None:
        self.data = data

    async def json(self) -> dict:
        return self.data


class _Call:
    """Async context manager that runs a coroutine on enter, like an aiohttp request."""

    def __init__(self, coro: Any) -> None:
        self.coro = coro

    async def __aenter__(self) -> _Reply:
        return _Reply(await self.coro)

    async def __aexit__(self, *exc: Any) -> bool:
        return False


class _JanusPublishDoor:
    """Stands in for the HTTP client in sfu_fanout.start_publisher: its POST /join becomes a
    videoroom ``joinandconfigure``, so the publisher is the very same code for both servers."""

    def __init__(self, target: "JanusSfu") -> None:
        self.target = target

    def post(self, url: str, json: dict) -> _Call:
        return _Call(self.target.join_publisher(json["sdp"]))


class JanusSub(Sub):
    """sfu_fanout's light subscriber, joined the Janus way: Janus offers, aiortc answers."""

    async def join_janus(self, api: JanusApi, feed: int) -> None:
        self.t_join = time.monotonic()
        handle = await api.attach()
        _, offer = await api.message(
            handle, {"request": "join", "ptype": "subscriber", "room": ROOM, "streams": [{"feed": feed}]}
        )
        if offer is None:
            raise JanusError("subscriber join: no offer from Janus")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        hook_count(self.pc, self)
        await api.message(
            handle, {"request": "start", "room": ROOM}, jsep={"type": "answer", "sdp": self.pc.localDescription.sdp}
        )


class JanusSfu:
    def __init__(self, http: aiohttp.ClientSession, max_seconds: float, event_loops: int = 0) -> None:
        self.http = http
        self.name = "janus-1.1" + (f"/el{event_loops}" if event_loops else "")
        self.janus = JanusProcess(debug_level=2, event_loops=event_loops)
        self.api: JanusApi | None = None
        self.feed: int | None = None

    @property
    def pid(self) -> int:
        return self.janus.pid

    async def start(self) -> None:
        await self.janus.start()
        self.api = JanusApi(self.http, self.janus.url)
        await self.api.create_session()
        handle = await self.api.attach()
        await self.api.message(
            handle,
            {
                "request": "create",
                "room": ROOM,
                "publishers": 1,
                "videocodec": "vp8",
                "audiocodec": "opus",
                "bitrate": 0,
                "fir_freq": 0,
                "notify_joining": False,
                "permanent": False,
            },
        )

    async def join_publisher(self, sdp: str) -> dict:
        assert self.api is not None
        handle = await self.api.attach()
        data, answer = await self.api.message(
            handle,
            {"request": "joinandconfigure", "ptype": "publisher", "room": ROOM, "display": "publisher"},
            jsep={"type": "offer", "sdp": sdp},
        )
        if answer is None:
            raise JanusError("publisher joinandconfigure: no answer from Janus")
        self.feed = data["id"]
        self._pub_handle = handle
        return {"sdp": answer["sdp"]}

    async def publish(self, frames: list) -> tuple:
        assert self.api is not None
        out = await start_publisher(_JanusPublishDoor(self), "", frames)  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(self.api.webrtcup[self._pub_handle].wait(), 15)
        except asyncio.TimeoutError:
            raise JanusError(f"publisher PeerConnection not up in 15 s: {self.janus.log_tail()}")
        return out

    async def subscribe(self, sub: Sub) -> None:
        assert self.api is not None and self.feed is not None and isinstance(sub, JanusSub)
        await sub.join_janus(self.api, self.feed)

    def event_summary(self) -> dict[str, int]:
        """Janus API events seen so far (hangup, slowlink, ...), by kind."""
        out: dict[str, int] = {}
        for event in self.api.events if self.api is not None else []:
            out[event.get("janus", "?")] = out.get(event.get("janus", "?"), 0) + 1
        return out

    async def forwarded(self) -> int | None:
        return None  # Janus keeps no such counter in its plain API

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.close()
            self.api = None
        await self.janus.stop()


# -- measurement (the same for both servers) -------------------------------------------------


async def quiet(subs: list[Sub], limit: float = 10.0, still: int = 3) -> None:
    """Wait (publisher paused) until no subscriber counter moves for ``still`` checks in a row
    0.3 s apart: a server starved of CPU by other jobs can pause for more than one check."""
    last = sum(s.count for s in subs)
    calm = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and calm < still:
        await asyncio.sleep(0.3)
        now = sum(s.count for s in subs)
        calm = calm + 1 if now == last else 0
        last = now


def count_media_packets(pc: Any) -> dict:
    """Count the publisher's original VP8 packets apart from retransmissions (RTX), which it
    sends when a server NACKs packets it lost: the denominators use originals only."""
    m = re.search(r"a=rtpmap:(\d+) VP8/90000", pc.localDescription.sdp)
    vp8 = int(m.group(1)) if m else -1
    counts = {"media": 0, "other": 0}
    dtls = pc.getTransceivers()[0].sender.transport
    original = dtls._send_rtp

    async def counting(data: bytes) -> None:
        if not (191 < data[1] < 209):
            counts["media" if data[1] & 0x7F == vp8 else "other"] += 1
        await original(data)

    dtls._send_rtp = counting
    return counts


async def snapshot(target: Any, subs: list[Sub], sent: dict, track: Any) -> dict:
    busy, total = machine_cpu()
    return {
        "t": time.monotonic(),
        "cpu": cpu_seconds(target.pid),
        "cpu_ns": proc_cpu_ns(target.pid),
        "client": time.process_time(),
        "busy": busy,
        "total": total,
        "udp": udp_errors(),
        "counts": [s.count for s in subs],
        "sent": sent["media"],
        "rtx": sent["other"],
        "frames": track._n,
        "keyframes": track.keyframes_forced,
        "forwarded": await target.forwarded(),
    }


async def send_cycles(track: Any, frames: int, limit: float) -> None:
    """Let the publisher send ``frames`` frames (whole loops of the clip), then pause it."""
    n0 = track._n
    deadline = time.monotonic() + limit
    track.running.set()
    while track._n - n0 < frames and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    track.running.clear()


async def measure_server(target: Any, args: argparse.Namespace, frames: list) -> list[dict]:
    await target.start()
    rows: list[dict] = []
    subs: list[Sub] = []
    pub_pc = None
    t_end = time.monotonic() + args.max_seconds
    # whole loops of the 120-frame clip per window: every server and level gets the same packets
    window_frames = max(1, round(args.seconds * FPS / len(frames))) * len(frames)
    try:
        pub_pc, track, _ = await target.publish(frames)
        sent = count_media_packets(pub_pc)
        rss0 = proc_rss(target.pid)
        for level in args.levels:
            if time.monotonic() > t_end:
                print(f"{target.name}: --max-seconds reached, skipping level {level}", flush=True)
                break
            make = JanusSub if isinstance(target, JanusSfu) else Sub
            new = [make(f"sub{i}") for i in range(len(subs), level)]
            for i in range(0, len(new), args.batch):
                await asyncio.gather(*(target.subscribe(s) for s in new[i : i + args.batch]))
            subs.extend(new)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(s.first is None for s in subs):
                await asyncio.sleep(0.1)
            joins = [s.first - s.t_join for s in new if s.first is not None]
            await asyncio.sleep(1.0)
            # idle: N peers connected, publisher paused
            track.running.clear()
            await quiet(subs)
            i0 = await snapshot(target, subs, sent, track)
            await asyncio.sleep(args.idle_seconds)
            # media window between two quiet points
            a = await snapshot(target, subs, sent, track)
            await send_cycles(track, window_frames, window_frames / FPS * 3 + 5)
            await quiet(subs)
            b = await snapshot(target, subs, sent, track)
            track.running.set()
            rows.append(row(target, level, i0, a, b, joins, len(new), (proc_rss(target.pid) - rss0) / max(1, level)))
            print_row(rows[-1])
    finally:
        for s in subs:
            await s.pc.close()
        if pub_pc is not None:
            await pub_pc.close()
        await target.stop()
    return rows


def row(
    target: Any, level: int, i0: dict, a: dict, b: dict, joins: list[float], joined: int, rss_per_sub: float
) -> dict:
    n_sent = b["sent"] - a["sent"]
    expected = n_sent * level
    per_sub = [y - x for x, y in zip(a["counts"], b["counts"])]
    received = sum(per_sub)
    cpu, window = b["cpu"] - a["cpu"], b["t"] - a["t"]
    cpu_ns = (b["cpu_ns"] - a["cpu_ns"]) / 1e9
    idle_share = (a["cpu_ns"] - i0["cpu_ns"]) / 1e9 / (a["t"] - i0["t"])
    machine = (b["busy"] - a["busy"]) / max(1e-9, b["total"] - a["total"]) * (os.cpu_count() or 1)
    client = (b["client"] - a["client"]) / window
    per = (lambda x: x / expected * 1e6) if expected else (lambda x: None)
    return {
        "server": target.name,
        "subscribers": level,
        "publisher_packets": n_sent,
        "publisher_frames": b["frames"] - a["frames"],
        "publisher_retransmissions": b["rtx"] - a["rtx"],
        "expected_forwards": expected,
        "received_by_subscribers": received,
        "server_reported_forwards": None
        if a["forwarded"] is None or b["forwarded"] is None
        else b["forwarded"] - a["forwarded"],
        "us_per_forwarded_packet": per(cpu),
        "us_per_forwarded_packet_schedstat": per(cpu_ns),
        "us_per_forwarded_packet_minus_idle": per(cpu_ns - idle_share * window),
        "us_per_delivered_packet": cpu / received * 1e6 if received else None,
        "delivered_ratio": received / expected if expected else None,
        "subscribers_without_packets": sum(1 for n in per_sub if n == 0),
        "per_subscriber_ratio_min": min(per_sub) / n_sent if n_sent and per_sub else None,
        "per_subscriber_ratio_median": statistics.median(per_sub) / n_sent if n_sent and per_sub else None,
        "server_events": getattr(target, "event_summary", lambda: {})(),
        "server_cpu_s": cpu,
        "window_seconds": window,
        "server_cpu_share": cpu / window,
        "server_idle_cpu_share": idle_share,
        "client_cpu_share": client,
        "machine_cpu_share": machine,
        "other_cpu_share": machine - cpu / window - client,
        "udp_errors_in_window": {k: b["udp"][k] - a["udp"][k] for k in b["udp"]},
        "keyframes_forced_in_window": b["keyframes"] - a["keyframes"],
        "join_first_packet_median_ms": statistics.median(joins) * 1000 if joins else None,
        "join_first_packet_p95_ms": pct(joins, 0.95) * 1000 if joins else None,
        "joined_without_packet": joined - len(joins),
        "server_rss_growth_per_subscriber_kib": rss_per_sub / 1024,
    }


HEADER = (
    f"{'server':<14} {'subs':>5} {'us/pkt':>7} {'us/pkt*':>7} {'deliv%':>7} "
    f"{'pub pkts':>8} {'srv cpu%':>8} {'idle%':>6} {'client%':>7} {'mach%':>6} "
    f"{'udp drop':>8} {'join med':>8}"
)
LEGEND = (
    "us/pkt: server CPU (user+sys, /proc/<pid>/stat) per packet to forward (sent x subs); "
    "us/pkt*: same on the ns clock of /proc/<pid>/task/*/schedstat; idle%: server CPU with "
    "the peers connected and no media; mach%: whole machine (2 cores = 200%); udp drop: "
    "UDP receive/send buffer overflows in the window, machine-wide"
)


def print_row(r: dict) -> None:
    def f(v: float | None, scale: float = 1.0) -> float:
        return float("nan") if v is None else v * scale

    udp = r["udp_errors_in_window"]
    print(
        f"{r['server']:<14} {r['subscribers']:>5} {f(r['us_per_forwarded_packet']):>7.1f} "
        f"{f(r['us_per_forwarded_packet_schedstat']):>7.1f} {f(r['delivered_ratio'], 100):>7.2f} "
        f"{r['publisher_packets']:>8} {r['server_cpu_share'] * 100:>8.1f} "
        f"{r['server_idle_cpu_share'] * 100:>6.1f} {r['client_cpu_share'] * 100:>7.1f} "
        f"{r['machine_cpu_share'] * 100:>6.0f} {udp['RcvbufErrors'] + udp['SndbufErrors']:>8} "
        f"{f(r['join_first_packet_median_ms']):>6.0f}ms",
        flush=True,
    )


def plot(rows: list[dict], path: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in dict.fromkeys(r["server"] for r in rows):
        mine = [r for r in rows if r["server"] == name and r["us_per_forwarded_packet"]]
        x = [r["subscribers"] for r in mine]
        ax1.plot(x, [r["us_per_forwarded_packet"] for r in mine], "o-", label=name)
        ax2.plot(x, [r["server_cpu_share"] * 100 for r in mine], "o-", label=name)
    ax1.set(
        xlabel="subscribers",
        ylabel="server CPU µs per forwarded packet",
        title="Cost per forwarded packet (lower is better)",
    )
    ax2.set(xlabel="subscribers", ylabel="server CPU share, % of one core", title="Server CPU at ~1.5 Mbit/s 720p VP8")
    for ax in (ax1, ax2):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


async def run(args: argparse.Namespace) -> dict:
    frames = encoded_frames()
    kbps = sum(len(d) for d, _ in frames) * 8 / (len(frames) / FPS) / 1000
    pin = pin_host_addresses(["127.0.0.1"])
    rows: list[dict] = []
    failures: dict[str, str] = {}
    try:
        async with aiohttp.ClientSession() as http:
            targets: list[Any] = []
            for name in args.servers:
                if name == "janus":
                    targets += [JanusSfu(http, args.max_seconds, n) for n in args.janus_event_loops]
                else:
                    targets.append(OurSfu(http, args.max_seconds, args.loop))
            for target in targets:
                try:
                    rows += await measure_server(target, args, frames)
                except (JanusError, OSError, RuntimeError, asyncio.TimeoutError) as exc:
                    failures[target.name] = f"{type(exc).__name__}: {exc}"
                    print(f"{target.name} FAILED: {failures[target.name]}", flush=True)
                await asyncio.sleep(1.0)
    finally:
        pin.release()
    return {
        "benchmark": "janus_compare",
        "codec": "VP8",
        "resolution": "1280x720",
        "fps": FPS,
        "stream_kbps": round(kbps),
        "seconds_per_level": args.seconds,
        "janus_event_loops": args.janus_event_loops,
        "loop": args.loop,
        "client_loop": loops.running(),
        "levels": args.levels,
        "cores": os.cpu_count(),
        "cpu_source": "/proc/<pid>/stat utime+stime of the server process (all threads)",
        "denominator": "publisher original RTP packets (RTX excluded) sent in the window x subscribers",
        "rows": rows,
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="10,50,100")
    parser.add_argument("--seconds", type=float, default=5.0, help="media window per level")
    parser.add_argument("--idle-seconds", type=float, default=1.5)
    parser.add_argument("--servers", default="sfu,janus", help="order to run them in")
    parser.add_argument("--batch", type=int, default=10, help="subscribers joining at once")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="per server")
    parser.add_argument(
        "--janus-event-loops",
        default="0",
        help="Janus event_loops, comma-separated to run Janus once per value (0: its default, one thread per handle)",
    )
    loops.add_option(parser, "our SFU (loadtests.sfu_server; the load clients run asyncio)")
    args = parser.parse_args()
    args.levels = sorted(int(x) for x in args.levels.split(","))
    args.janus_event_loops = [int(x) for x in args.janus_event_loops.split(",")]
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if any(s not in ("sfu", "janus") for s in args.servers):
        parser.error("--servers takes sfu and/or janus")
    print(LEGEND)
    print(HEADER)
    result = asyncio.run(run(args))  # the clients of sfu_fanout, on the same loop as there
    os.makedirs(RESULTS, exist_ok=True)
    stem = os.path.join(RESULTS, f"janus_compare_{time.strftime('%Y%m%dT%H%M%S')}")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
    png = plot(result["rows"], stem + ".png")
    print(
        f"stream: {result['stream_kbps']} kbit/s, our SFU on {result['loop']}; results: {stem}.json"
        + (f", plot: {png}" if png else " (no matplotlib: no plot)")
    )
    if result["failures"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
