"""SIP room systems in one meeting (#14): server CPU per connected room, INVITE to first composite frame.

A ``giaoban serve`` process (media local, SIP on) holds one meeting; room systems dial in by its
dial number, cumulatively up to each level (default 1, 10, 50). The first ``--baresips`` are real
baresip 1.0 processes (a camera of one colour each, H.264 via libx264: the composite shows them);
the rest are light rooms (loadtests/sip_light_room.py: PCMU silence out, count what comes in),
placed ``--cps`` calls per second, all from 127.0.0.1 (network only to 127.0.0.1): the server's
``sip.calls_per_address`` and ``sip.invite_rate``/``invite_burst`` are raised above the benchmark's
calls instead, as a province's Kamailio is trusted (``sip.trusted_proxies``). Every room receives the H.264 composite and its N-1 mix.

Per level, after every room has its first video packet and ``--settle`` s: the server's process
CPU (user+sys, /proc) over ``--seconds`` s, as % of one core in all and per room, the marginal cost
of the rooms added since the level before, the video and audio packets each light room received
per second (min over rooms), the machine's busy %. Per call: INVITE sent -> first video RTP packet
received (p50/p95; target p95 <= 1.5 s). Prints a table, writes JSON to loadtests/results/.

    .venv/bin/python -m loadtests.sip_rooms --levels 1,10,50 --baresips 2 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from loadtests import loops
from loadtests.procstat import cpu_seconds, machine_cpu, udp_errors
from loadtests.sip_light_room import LightRoom, RoomDialer
from mcu.rtp.offer import parse_offer
from tests.sip.meeting import CHAIR, sip_directory
from tests.support.baresip import Baresip
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "loadtests" / "results"
PASSWORD = "sip-rooms-admin-password"
COLOURS = [(255, 0, 0), (0, 160, 255), (255, 200, 0)]


def room_id(i: int) -> str:
    return f"room-{i:02d}"


class Server:
    """``giaoban serve`` with SIP on, in its own process (its CPU is what is measured)."""

    def __init__(self, work: Path, rooms: dict[str, str]) -> None:
        self.work, self.http_port, self.sip_port = work, free_port(), free_port()
        self.directory = sip_directory(work / "directory.yaml", rooms, [], sources="127.0.0.1")
        calls = len(rooms) + 10  # every room calls from 127.0.0.1: one address may hold them all
        (work / "server.yaml").write_text(
            f"admin_password: {PASSWORD}\nice_host: 127.0.0.1\nlog_format: text\n"
            f"sip:\n  enabled: true\n  host: 127.0.0.1\n  port: {self.sip_port}\n  transports: [udp]\n"
            f"  calls_per_address: {calls}\n  invite_rate: 100\n  invite_burst: {calls}\n"
        )
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.token = ""

    async def start(self, http: aiohttp.ClientSession) -> None:
        cmd = [sys.executable, "-m", "signaling.cli", "--config", str(self.work / "server.yaml")]
        cmd += ["--directory", str(self.directory), "--data-dir", str(self.work / "data")]
        cmd += ["serve", "--host", "127.0.0.1", "--port", str(self.http_port), "--media", "local"]
        with open(self.work / "serve.log", "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        for _ in range(150):
            try:
                async with http.post(
                    self.url + "/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
                ) as resp:
                    if resp.status == 200:
                        self.token = (await resp.json())["token"]
                        return
            except aiohttp.ClientError:
                pass
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.2)
        raise SystemExit(f"giaoban serve did not start; see {self.work / 'serve.log'}")

    async def call(self, http: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with http.request(method, self.url + path, headers=headers, **kw) as resp:
            return resp.status, await resp.json(content_type=None)

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def open_meeting(server: Server, http: aiohttp.ClientSession, rooms: list[str]) -> dict:
    start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 60))
    body = {"title": "Giao ban SIP tải", "chair": CHAIR, "invited": rooms, "start": start, "duration_minutes": 60}
    status, meeting = await server.call(http, "POST", "/api/v1/meetings", json=body)
    assert status == 201, meeting
    for room in rooms:  # no dial-out in this benchmark: the rooms dial in
        status, body = await server.call(http, "DELETE", f"/api/v1/meetings/{meeting['id']}/sip/{room}")
        assert status in (200, 202, 204), (room, status, body)
    return meeting


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def loop_lag(server: Server, http: aiohttp.ClientSession) -> float:
    """The server's event-loop lag (its /metrics gauge, measured every second)."""
    async with http.get(server.url + "/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("giaoban_event_loop_lag_seconds "):
                return float(line.split()[1])
    return float("nan")


async def measure(server: Server, http: aiohttp.ClientSession, lights: list[LightRoom], seconds: float) -> dict:
    before = [(r.video_packets, r.audio_packets) for r in lights]
    me, lags = os.getpid(), []
    drops0 = udp_errors()["RcvbufErrors"]
    cpu0, mine0, (busy0, total0), t0 = server.cpu(), cpu_seconds(me), machine_cpu(), time.monotonic()
    while time.monotonic() < t0 + seconds:
        await asyncio.sleep(min(1.0, t0 + seconds - time.monotonic()))
        lags.append(await loop_lag(server, http))
    cpu1, mine1, (busy1, total1), t1 = server.cpu(), cpu_seconds(me), machine_cpu(), time.monotonic()
    window = t1 - t0
    video_pps = [(r.video_packets - v0) / window for r, (v0, _) in zip(lights, before)]
    audio_pps = [(r.audio_packets - a0) / window for r, (_, a0) in zip(lights, before)]
    return {
        "server_core_pct": 100 * (cpu1 - cpu0) / window,
        "machine_busy_pct": 100 * (busy1 - busy0) / max(total1 - total0, 1e-9) * (os.cpu_count() or 1),
        "client_core_pct": 100 * (mine1 - mine0) / window,
        "light_video_pps_min": min(video_pps, default=float("nan")),
        "light_video_pps_median": statistics.median(video_pps) if video_pps else float("nan"),
        "light_audio_pps_min": min(audio_pps, default=float("nan")),
        "light_audio_pps_median": statistics.median(audio_pps) if audio_pps else float("nan"),
        "light_audio_pps_each": [round(x, 1) for x in audio_pps],
        "light_video_pps_each": [round(x, 1) for x in video_pps],
        "server_loop_lag_max_s": max(lags, default=float("nan")),
        "udp_rcvbuf_errors": udp_errors()["RcvbufErrors"] - drops0,  # machine-wide: a receiver fell behind
        "window_s": window,
    }


async def run(args: argparse.Namespace) -> dict:
    levels = sorted(int(x) for x in args.levels.split(","))
    top, n_bare = levels[-1], min(args.baresips, levels[-1])
    work = Path(tempfile.mkdtemp(prefix="sip_rooms_"))
    bares = [
        Baresip(work / f"bs{i}", user=room_id(i), colour=COLOURS[i % 3], answermode="manual") for i in range(n_bare)
    ]
    uris = {room_id(i): f"sip:{room_id(i)}@127.0.0.1:9" for i in range(top)}  # port 9: no dial-out
    server = Server(work, uris)
    dialer = RoomDialer()
    rows, joins = [], []
    async with aiohttp.ClientSession() as http:
        try:
            await server.start(http)
            meeting = await open_meeting(server, http, list(uris))
            target = f"sip:{meeting['dial_number']}@127.0.0.1:{server.sip_port}"
            idle = await measure(server, http, [], args.seconds)
            rows.append({"rooms": 0, "baresips": 0, "joins_failed": [], **idle})
            print_row(rows[0], rows)
            lights: list[LightRoom] = []
            joined = 0
            for level in levels:
                tasks = []
                while joined < level:
                    i, joined = joined, joined + 1
                    if i < n_bare:
                        tasks.append(asyncio.create_task(join_baresip(bares[i], target, joins)))
                    else:
                        room = LightRoom(room_id(i), "127.0.0.1", camera=args.light_cameras)
                        lights.append(room)
                        tasks.append(asyncio.create_task(join_light(dialer, room, target, joins)))
                    await asyncio.sleep(1 / args.cps)
                outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), args.join_timeout)
                failed = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
                await asyncio.sleep(args.settle)
                row = {
                    "rooms": level,
                    "baresips": min(level, n_bare),
                    "joins_failed": failed,
                    **await measure(server, http, lights, args.seconds),
                }
                if bares:  # what a room system sees at this level: the composite it decoded
                    row["composite_png"] = await keep_picture(bares[0], work / f"composite_{level}.png")
                rows.append(row)
                print_row(row, rows)
        finally:
            await dialer.stop()
            await asyncio.gather(*(b.stop() for b in bares), return_exceptions=True)
            server.stop()
    return summary(args, rows, joins, work)


async def keep_picture(room: Baresip, path: Path) -> str:
    picture = await room.received_picture()
    if picture is None:
        return ""
    Image.fromarray(picture).save(path)
    return str(path)


async def join_baresip(room: Baresip, target: str, joins: list[dict]) -> None:
    t0 = time.monotonic()
    await room.start(dial=target)
    await room.wait_event("CALL_ESTABLISHED", timeout=15)
    event = await until_video_rtp(room)
    joins.append({"room": room.user, "kind": "baresip", "invite_to_first_video_s": event - t0})


async def until_video_rtp(room: Baresip) -> float:
    """When baresip reported the first video RTP packet (its CALL_RTPESTAB event for video)."""
    for _ in range(300):
        if any(e.type == "CALL_RTPESTAB" and "video" in e.param for e in room.events):
            return time.monotonic()
        await asyncio.sleep(0.01)
    raise AssertionError(f"{room.user}: no video RTP within 3 s of the call; {room.log_tail()}")


async def join_light(dialer: RoomDialer, room: LightRoom, target: str, joins: list[dict]) -> None:
    join = await dialer.dial(room, target)
    video = parse_offer(join.answer).first("video")
    joins.append(
        {
            "room": room.endpoint_id,
            "kind": "light",
            "video": f"{video.formats[0].name} {video.formats[0].fmtp}" if video and video.formats else "none",
            "invite_to_answer_s": join.answered_at - join.invite_at,
            "invite_to_first_video_s": join.first_video_at - join.invite_at,
        }
    )


def print_row(row: dict, rows: list[dict]) -> None:
    prev = rows[-2] if len(rows) > 1 else None
    nan = float("nan")
    row["per_room_core_pct"] = row["server_core_pct"] / row["rooms"] if row["rooms"] else nan
    row["marginal_core_pct"] = (
        (row["server_core_pct"] - prev["server_core_pct"]) / (row["rooms"] - prev["rooms"]) if prev else nan
    )
    print(
        f"{row['rooms']:>5} {row['baresips']:>4} {row['server_core_pct']:>8.1f} {row['per_room_core_pct']:>8.2f}"
        f" {row['marginal_core_pct']:>9.2f} {row['light_video_pps_median']:>6.1f}/{row['light_video_pps_min']:<5.1f}"
        f" {row['light_audio_pps_median']:>6.1f}/{row['light_audio_pps_min']:<5.1f}"
        f" {row['client_core_pct']:>7.0f} {row['machine_busy_pct']:>6.0f} {1000 * row['server_loop_lag_max_s']:>7.0f}"
        f" {row['udp_rcvbuf_errors']:>6} {len(row['joins_failed']):>6}",
        flush=True,
    )


def summary(args: argparse.Namespace, rows: list[dict], joins: list[dict], work: Path) -> dict:
    times = [j["invite_to_first_video_s"] for j in joins]
    answers = [j["invite_to_answer_s"] for j in joins if "invite_to_answer_s" in j]
    out = {
        "benchmark": "sip_rooms",
        "loop": loops.running(),
        "server_loop": "uvloop (giaoban serve)",
        "args": vars(args),
        "levels": rows,
        "joins": joins,
        "invite_to_first_video_p50_s": pct(times, 0.5),
        "invite_to_first_video_p95_s": pct(times, 0.95),
        "invite_to_first_video_max_s": max(times, default=float("nan")),
        "invite_to_200_p50_s": pct(answers, 0.5),  # light rooms: the gateway's admission + media leg
        "invite_to_200_p95_s": pct(answers, 0.95),
        "workdir": str(work),
    }
    print(
        f"INVITE -> first composite frame over {len(times)} calls: p50 {out['invite_to_first_video_p50_s']:.3f} s,"
        f" p95 {out['invite_to_first_video_p95_s']:.3f} s, max {out['invite_to_first_video_max_s']:.3f} s"
        f" (mean {statistics.fmean(times) if times else float('nan'):.3f} s);"
        f" INVITE -> 200 p50 {out['invite_to_200_p50_s']:.3f} s, p95 {out['invite_to_200_p95_s']:.3f} s"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"sip_rooms_{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"written {path}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--levels", default="1,10,50", help="room counts, cumulative (default 1,10,50)")
    p.add_argument("--baresips", type=int, default=2, help="real baresip rooms first (1-3; default 2)")
    p.add_argument("--seconds", type=float, default=8.0, help="CPU window per level")
    p.add_argument("--settle", type=float, default=3.0, help="wait after the last join of a level")
    p.add_argument("--cps", type=float, default=8.0, help="calls placed per second")
    p.add_argument("--join-timeout", type=float, default=60.0, help="a level's joins must finish within this")
    p.add_argument(
        "--light-cameras", action="store_true", help="light rooms send a camera too (default: they only receive video)"
    )
    p.add_argument("--max-seconds", type=float, default=400.0, help="the whole run is stopped after this")
    loops.add_option(p, "the room clients (the server runs uvloop)")
    args = p.parse_args()
    print(
        f"{'rooms':>5} {'bare':>4} {'srv%core':>8} {'%/room':>8} {'marginal':>9} {'v pps med/min':>12} {'a pps med/min':>12} {'client%':>7} {'mach%':>6} {'lag ms':>7} {'drops':>6} {'failed':>6}"
    )

    async def bounded() -> dict:
        return await asyncio.wait_for(run(args), args.max_seconds)

    loops.run(bounded(), args.loop)


if __name__ == "__main__":
    main()
