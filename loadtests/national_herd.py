"""National-size thundering herd on the signaling tier: 1 + P x 210 endpoints (default P=4: 841, the
700-800 endpoints a national body runs) connect their WebSocket and join one briefing (chair ``tw``,
invited ``all``) within ``--spread`` seconds, first against ONE signaling process, then against
``--nodes`` K processes sharing a real Redis (round-robin URLs), both with ``--media none``.

Per layout: joined/total, join time (client start -> ``joined``) median/p95/max, floor fan-out
(chair's ``grant_floor`` -> ``floor`` on every endpoint, across nodes via Redis pub/sub), the
participant check (each client's last ``participants`` list holds every joined endpoint), server
CPU ms per join (per process and total), Redis CPU, RSS, generator CPU share. Server stderr is kept
in ``loadtests/results/national_herd_<time>_logs/``.

    .venv/bin/python -m loadtests.national_herd [--provinces 4] [--nodes 2] [--spread 3] [--loop uvloop|asyncio]

``--loop`` is the generator's loop (uvloop: less of its CPU in the join times); the servers,
``giaoban serve``, run uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from endpoints.directory import load_directory
from loadtests import loops
from loadtests.procstat import machine_cpu
from loadtests.province_cluster import Proc
from loadtests.signaling_herd import VN, post, wait_healthy
from loadtests.svgplot import line_chart
from signaling.cluster.registry import NODE_TTL_S
from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "loadtests" / "results"
SOURCE = ROOT / "config" / "hagiang.yaml"
PASSWORD = "national-admin-password"
HERD_CONNECTIONS = 5000  # limits.connections_per_address: the herd, all from 127.0.0.1, fits below it
CHAIR = "tw"
PROVINCE_NAMES = (
    "Hà Giang",
    "Cao Bằng",
    "Lào Cai",
    "Tuyên Quang",
    "Lạng Sơn",
    "Bắc Kạn",
    "Yên Bái",
    "Lai Châu",
    "Điện Biên",
    "Sơn La",
    "Thái Nguyên",
    "Phú Thọ",
)
GENERATOR_SATURATED = 0.85  # share of one core above which the load generator distorts the timings


def pct(values: list[float], p: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else None


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "median": statistics.median(values) if values else None,
        "p95": pct(values, 95),
        "max": max(values, default=None),
    }


# --- the directory -----------------------------------------------------------------------------
def national_directory(folder: Path, provinces: int) -> tuple[Path, int]:
    """``tw`` + ``provinces`` copies of Hà Giang's province/district/commune subtree, ids prefixed
    ``p<n>-`` and names of their own; returns the file and its endpoint count."""
    src = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    items = src["endpoints"]
    out = [dict(e) for e in items if e.get("tier") == "central"]
    for n in range(1, provinces + 1):
        prov = PROVINCE_NAMES[n - 1] if n <= len(PROVINCE_NAMES) else f"Tỉnh số {n}"
        for e in items:
            if e.get("tier") == "central":
                continue
            c = dict(e)
            c["id"] = f"p{n}-{e['id']}"
            if e.get("parent") and e["parent"] != CHAIR:
                c["parent"] = f"p{n}-{e['parent']}"
            name = e["name"]
            c["name"] = (
                name.replace("Hà Giang", prov) if "Hà Giang" in name else (name if n == 1 else f"{name} ({prov})")
            )
            if "credential" in e:
                c["credential"] = f"p{n}-{e['credential']}"
            out.append(c)
    doc = {
        "version": 1,
        "name": f"Giao ban toàn quốc ({provinces} tỉnh)",
        "slug": "national",
        "defaults": src.get("defaults", {}),
        "endpoints": out,
    }
    path = folder / "national.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=200), encoding="utf-8")
    return path, len(out)


# --- servers ---------------------------------------------------------------------------------------
class Servers:
    """One Redis for the whole run (credentials are issued once) and the signaling processes of the
    current layout; ``close()`` (also at exit) kills whatever is left."""

    def __init__(self, workdir: Path, directory: Path) -> None:
        self.workdir, self.directory = workdir, directory
        self.redis = RedisServer()
        self.redis_proc: Proc | None = None
        self.procs: list[Proc] = []
        self.logs: list[Path] = []
        atexit.register(self.close)

    def start_redis(self) -> None:
        self.redis.start()
        self.redis_proc = Proc("redis", "redis", self.redis._proc.pid)

    def start_layout(self, tag: str, nodes: int) -> list[Proc]:
        self.procs = [self._spawn(f"{tag}-sig-{i + 1}") for i in range(nodes)]
        return self.procs

    def _spawn(self, name: str) -> Proc:
        port = free_port()
        data = self.workdir / name
        data.mkdir(parents=True, exist_ok=True)
        cfg = data / "settings.yaml"
        # the whole herd (841 WebSockets and their logins) comes from 127.0.0.1: lift the per-address cap
        cfg.write_text(
            f"admin_password: {PASSWORD}\nlog_level: warning\nnode_id: {name}\n"
            f"limits:\n  connections_per_address: {HERD_CONNECTIONS}\n",
            encoding="utf-8",
        )
        log = data / "server.log"
        self.logs.append(log)
        cmd = [
            sys.executable,
            "-m",
            "signaling.cli",
            "--config",
            str(cfg),
            "--directory",
            str(self.directory),
            "--data-dir",
            str(data / "var"),
            "--store",
            self.redis.url,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--media",
            "none",
        ]
        popen = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        return Proc(name, "signaling", popen.pid, f"http://127.0.0.1:{port}", popen)

    def stop_layout(self) -> None:
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.terminate()
        for p in self.procs:
            try:
                p.popen.wait(15)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(5)
        self.procs = []

    def close(self) -> None:
        self.stop_layout()
        self.redis.close()


# --- the clients -------------------------------------------------------------------------------------
@dataclass
class Client:
    """One room terminal: WebSocket, hello, join; keeps times and the raw text of its last
    ``participants`` list (parsed once at the end, so the generator stays light)."""

    id: str
    token: str
    url: str
    delay: float
    started: float | None = None
    connected_at: float | None = None
    joined_at: float | None = None  # seconds from its own start
    joined_abs: float | None = None
    floor_at: float | None = None  # seconds from the chair's grant_floor
    participants_raw: str | None = None
    participants_msgs: int = 0
    lists: list[tuple[float, int, float]] = field(default_factory=list)  # (server ts, entries, received at)
    ended_at: float | None = None
    joined_raw: str | None = None
    bytes_in: int = 0
    msgs_in: int = 0
    errors: list[str] = field(default_factory=list)
    ended: str | None = None
    ws: aiohttp.ClientWebSocketResponse | None = None


def _field(text: str, key: str) -> tuple[int, int] | None:
    """Where the value of a top-level ``key`` lies, without parsing: direct messages put v, type,
    ts first (``encode``); room events come through the store's codec with sorted keys, so type,
    ts, v come last."""
    i = text.find(key, 0, 64)
    if i < 0:
        i = text.rfind(key, max(0, len(text) - 96))
    return None if i < 0 else (i + len(key), len(text))


def server_ts(text: str) -> float:
    at = _field(text, '"ts":')
    if at is None:
        return 0.0
    end = min((k for k in (text.find(",", at[0]), text.find("}", at[0])) if k >= 0), default=at[1])
    try:
        return float(text[at[0] : end])
    except ValueError:
        return 0.0


def msg_type(text: str) -> str:
    """The ``type`` of a server message without parsing it (lists of 841 entries are ~160 KB)."""
    at = _field(text, '"type":"')
    if at is None:
        return json.loads(text).get("type", "?")
    return text[at[0] : text.find('"', at[0])]


class Herd:
    def __init__(self, clients: list[Client], meeting_id: str, compress: int, timeout: float) -> None:
        self.clients, self.meeting_id, self.compress, self.timeout = clients, meeting_id, compress, timeout
        self.t0 = 0.0
        self.floor_sent: float | None = None
        self.last_participants_at = 0.0
        self.frozen = False  # set at the check: lists that come after it (leaves) are not kept
        self.session: aiohttp.ClientSession | None = None

    async def run_client(self, c: Client) -> None:
        await asyncio.sleep(c.delay)
        c.started = time.monotonic()
        try:
            ws = await self.session.ws_connect(
                c.url.replace("http", "ws", 1) + "/ws",
                heartbeat=30,
                compress=self.compress,
                max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=2),
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            c.ended = f"connect failed: {type(exc).__name__} {exc}"
            return
        c.ws = ws
        c.connected_at = time.monotonic() - c.started
        await ws.send_str(json.dumps({"v": 1, "type": "hello", "token": c.token}))
        async for raw in ws:
            if raw.type != aiohttp.WSMsgType.TEXT:
                c.ended = f"{raw.type.name} {raw.data!r} {ws.close_code} {ws.exception()!r}"
                c.ended_at = time.monotonic() - self.t0
                return
            text = raw.data
            c.bytes_in += len(text)
            c.msgs_in += 1
            kind = msg_type(text)
            now = time.monotonic()
            if kind == "welcome":
                await ws.send_str(json.dumps({"v": 1, "type": "join", "meeting_id": self.meeting_id}))
            elif kind == "joined":
                c.joined_at, c.joined_abs, c.joined_raw = now - c.started, now - self.t0, text
            elif kind == "participants" and not self.frozen:
                c.participants_raw = text
                c.participants_msgs += 1
                c.lists.append((server_ts(text), text.count('"endpoint_id":'), now - self.t0))
                self.last_participants_at = now
            elif kind == "floor" and self.floor_sent is not None and c.floor_at is None:
                c.floor_at = now - self.floor_sent
            elif kind == "error":
                c.errors.append(json.loads(text).get("message", text)[:200])
        c.ended = f"closed {ws.close_code} {ws.exception()!r}"
        c.ended_at = time.monotonic() - self.t0

    def stats(self) -> tuple[int, int, int]:
        return (
            sum(c.connected_at is not None for c in self.clients),
            sum(c.joined_at is not None for c in self.clients),
            sum(c.floor_at is not None for c in self.clients),
        )


# --- one layout ------------------------------------------------------------------------------------
class Monitor:
    """Once a second: CPU/RSS samples of every process and a progress line."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.machine: list[tuple[float, float, float]] = []
        self.phase = "start"
        self.herd: Herd | None = None
        self.series: list[tuple[float, int]] = []  # (t since herd start, joined)
        self.stop = False
        self.t_start = time.monotonic()

    async def run(self, deadline: float) -> None:
        last: dict[str, tuple[float, float]] = {}
        tty = sys.stdout.isatty()
        while not self.stop and time.monotonic() < deadline:
            now = time.monotonic()
            self.sample(now)
            cpu = []
            for p in self.procs:
                if p.samples and p.samples[-1][0] == now:
                    if p.name in last:
                        t0, c0 = last[p.name]
                        cpu.append(f"{p.name} {(p.samples[-1][1] - c0) / max(1e-6, now - t0) * 100:3.0f}%")
                    last[p.name] = (now, p.samples[-1][1])
            line = f"t={now - self.t_start:6.1f}s {self.phase:<14}"
            if self.herd is not None:
                conn, joined, floor = self.herd.stats()
                n = len(self.herd.clients)
                line += f" ws {conn:>4}/{n} joined {joined:>4}/{n} floor {floor:>4}"
                self.series.append((now - self.herd.t0, joined))
            print(line + "  cpu: " + ", ".join(cpu), end="\r" if tty else "\n", flush=True)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - now)))

    def sample(self, now: float) -> None:
        self.machine.append((now, *machine_cpu()))
        for p in self.procs:
            p.sample(now)

    def set_phase(self, phase: str) -> None:
        if sys.stdout.isatty():
            print()
        self.phase = phase


def cpu_of(p: Proc, t0: float, t1: float) -> float | None:
    return p.cpu_between(t0, t1)


class RegistryWatch:
    """Reads each node's heartbeat document (``nodes`` ephemeral, TTL ``NODE_TTL_S``, written each second) from
    Redis 4 times a second, in a thread of its own (the generator's event loop is busy during the
    herd): the longest time between two beats, and whether the entry was gone (the node then counts
    as dead for every node: its participants are left out of the lists)."""

    def __init__(self, redis_url: str, names: list[str]) -> None:
        import threading

        import redis

        self.r = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=2)
        self.names = names
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="registry-watch", daemon=True)
        self.last_seen: dict[str, float] = {}
        self.max_gap: dict[str, float] = {n: 0.0 for n in names}
        self.gap_at: dict[str, float] = {}
        self.missing: dict[str, list[float]] = {n: [] for n in names}  # s since herd start, entry absent
        self.samples = 0
        self.max_poll_gap = 0.0
        self.t0 = 0.0

    def start(self, t0: float) -> None:
        self.t0 = t0
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(5)
        self.r.close()

    def _run(self) -> None:
        keys = {n: f"gb:eph:{len('nodes')}:nodes:{n}" for n in self.names}
        last = time.monotonic()
        while not self.stop_event.is_set():
            try:
                texts = self.r.mget(list(keys.values()))
            except Exception:  # noqa: BLE001 - a watcher, not a test step
                texts = None
            now = time.monotonic()
            self.max_poll_gap = max(self.max_poll_gap, now - last)
            last = now
            if texts is not None:
                self.samples += 1
                for n, text in zip(keys, texts):
                    if text is None:
                        self.missing[n].append(round(now - self.t0, 2))
                        continue
                    seen = json.loads(text).get("seen", 0.0)
                    if n in self.last_seen and seen - self.last_seen[n] > self.max_gap[n]:
                        self.max_gap[n] = seen - self.last_seen[n]
                        self.gap_at[n] = round(now - self.t0, 1)
                    self.last_seen[n] = seen
            self.stop_event.wait(0.25)

    def result(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "max_poll_gap_s": round(self.max_poll_gap, 2),
            "max_beat_gap_s": {n: round(v, 2) for n, v in self.max_gap.items()},
            "max_beat_gap_seen_at_s": self.gap_at,
            "missing_samples": {n: len(v) for n, v in self.missing.items()},
            "missing_at_s": {n: v[:20] for n, v in self.missing.items() if v},
        }


async def run_layout(
    name: str,
    urls: list[str],
    procs: list[Proc],
    servers: Servers,
    tokens: dict[str, str],
    op: str,
    http: aiohttp.ClientSession,
    args,
    monitor: Monitor,
) -> dict[str, Any]:
    url = urls[0]
    start = (datetime.now(VN) + timedelta(minutes=1)).replace(microsecond=0)
    meeting = await post(
        http,
        url,
        "/api/v1/meetings",
        op,
        title=f"Giao ban toàn quốc ({name})",
        chair=CHAIR,
        invited=["all"],
        start=start.isoformat(),
        duration_minutes=60,
    )
    ids = list(tokens)
    rng = random.Random(7)
    order = ids[:]
    rng.shuffle(order)
    n = len(order)
    clients = [
        Client(ep, tokens[ep], urls[i % len(urls)], args.spread * i / max(1, n - 1)) for i, ep in enumerate(order)
    ]
    by_id = {c.id: c for c in clients}
    herd = Herd(clients, meeting["id"], 15 if args.compress else 0, args.timeout)
    gen = Proc("generator", "generator", os.getpid())
    monitor.procs = [*procs, servers.redis_proc, gen]
    print(f"{name}: {n} endpoints join {meeting['id']} within {args.spread:g} s over {len(urls)} node(s)", flush=True)
    out: dict[str, Any] = {"layout": name, "nodes": len(urls), "meeting_id": meeting["id"], "endpoints": n}
    herd.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    tasks: list[asyncio.Task] = []
    watch: RegistryWatch | None = None
    try:
        monitor.set_phase(f"{name} herd")
        t_herd = time.monotonic()
        monitor.sample(t_herd)
        herd.t0 = t_herd
        out["herd_started_unix"] = time.time()  # to line up server ts (lists) and log lines with herd seconds
        monitor.herd = herd
        tasks = [asyncio.create_task(herd.run_client(c)) for c in clients]
        watch = RegistryWatch(servers.redis.url, [p.name for p in procs])
        watch.start(t_herd)
        spy = start_py_spy(args, procs[0], name) if args.py_spy else None
        deadline = t_herd + args.spread + args.timeout
        while time.monotonic() < deadline:
            conn, joined, _ = herd.stats()
            if joined == n or all(t.done() for t in tasks):
                break
            await asyncio.sleep(0.1)
        t_joined = time.monotonic()
        # the participant lists are coalesced (0.5 s): wait until none has come for 2 s (max 20 s)
        monitor.set_phase(f"{name} settle")
        quiet_deadline = time.monotonic() + 20
        while time.monotonic() < quiet_deadline and time.monotonic() - max(herd.last_participants_at, t_joined) < 2.0:
            await asyncio.sleep(0.1)
        t_settled = time.monotonic()
        monitor.sample(t_settled)
        if spy is not None:
            out["py_spy"] = stop_py_spy(*spy)
        # the floor: the chair gives it to a district of the last province; every endpoint must hear it
        monitor.set_phase(f"{name} floor")
        chair = by_id.get(CHAIR)
        target = next((e for e in reversed(ids) if e != CHAIR and by_id[e].joined_at is not None), None)
        t_floor0 = time.monotonic()
        monitor.sample(t_floor0)
        if chair is not None and chair.ws is not None and not chair.ws.closed and target:
            herd.floor_sent = time.monotonic()
            await chair.ws.send_str(json.dumps({"v": 1, "type": "grant_floor", "endpoint_id": target}))
            joined_set = [c for c in clients if c.joined_at is not None and c.ended is None]
            fd = time.monotonic() + args.floor_timeout
            while time.monotonic() < fd and not all(c.floor_at is not None for c in joined_set):
                await asyncio.sleep(0.02)
        else:
            out["floor_skipped"] = "the chair is not connected"
        await asyncio.sleep(0.3)
        monitor.sample(time.monotonic())
        t_floor1s = time.monotonic()
        monitor.set_phase(f"{name} check")
        herd.frozen = True
        watch.stop()
        out["registry"] = watch.result()
        # what the servers report right now, while everyone is still connected
        try:
            async with http.get(
                f"{url}/api/v1/meetings/{meeting['id']}/live", headers={"Authorization": f"Bearer {op}"}
            ) as r:
                live = await r.json()
            out["live_participants_api"] = len(live.get("participants", []))
        except (aiohttp.ClientError, ValueError) as exc:
            out["live_participants_api"] = f"error: {exc}"
    finally:
        if watch is not None and not watch.stop_event.is_set():
            watch.stop()
        monitor.herd = None
        dropped = {
            c.id: {
                "ended": c.ended,
                "at_s": round(c.ended_at, 2) if c.ended_at else None,
                "joined": c.joined_at is not None,
            }
            for c in clients
            if c.ended is not None
        }
        for c in clients:
            if c.ws is not None and not c.ws.closed:
                await c.ws.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await herd.session.close()
    # --- figures ---
    joined = [c for c in clients if c.joined_at is not None]
    joined_ids = {c.id for c in joined}
    complete, incomplete, counts, no_list = 0, [], [], 0
    for c in joined:
        if c.participants_raw is None:
            no_list += 1
            incomplete.append(c.id)
            continue
        people = {p.get("endpoint_id") for p in json.loads(c.participants_raw).get("participants", [])}
        counts.append(len(people))
        if joined_ids <= people:
            complete += 1
        else:
            incomplete.append(c.id)
    newest = max((l[0] for c in joined for l in c.lists), default=0.0)
    out["lists_diag"] = {
        c.id: {
            "lists": len(c.lists),
            "last": c.lists[-1] if c.lists else None,
            "behind_newest_s": round(newest - c.lists[-1][0], 3) if c.lists else None,
            "ended": c.ended,
        }
        for c in joined
        if c.id in set(incomplete[:40])
    }
    out["lists_newest_ts"] = newest
    empty = sorted({l[0] for c in joined for l in c.lists if l[1] == 0})
    out["empty_lists"] = {
        "received": sum(1 for c in joined for l in c.lists if l[1] == 0),
        "clients": sum(any(l[1] == 0 for l in c.lists) for c in joined),
        "broadcasts": len(empty),
        "first_at_server_ts": empty[:5],
    }
    shrinks, shrink_clients, worst = 0, 0, 0
    for c in joined:  # nobody leaves during the herd: a list computed later (server ts) with fewer
        top, hit = 0, False  # entries than an earlier one has lost participants
        for ts, k, _ in sorted(c.lists):
            if k < top:
                shrinks, hit, worst = shrinks + 1, True, max(worst, top - k)
            if k >= top:
                top = k
        shrink_clients += hit
    out["lists_shrunk"] = {"messages": shrinks, "clients": shrink_clients, "max_missing": worst}
    out["list_broadcasts"] = sorted({(l[0], l[1]) for c in joined for l in c.lists})[-12:]
    joined_list_sizes = [len(json.loads(c.joined_raw).get("participants", [])) for c in joined]
    herd_wall = t_settled - t_herd
    out.update(
        {
            "joined": len(joined),
            "connected": sum(c.connected_at is not None for c in clients),
            "not_joined": sorted(c.id for c in clients if c.joined_at is None)[:30],
            "ended_early": dropped,
            "errors": {c.id: c.errors[:3] for c in clients if c.errors},
            "ws_connect_s": summary([c.connected_at for c in clients if c.connected_at is not None]),
            "join_s": summary([c.joined_at for c in joined]),
            "all_joined_after_s": max((c.joined_abs for c in joined), default=None),
            "herd_window_s": herd_wall,
            "join_phase_s": t_joined - t_herd,
            "floor_target": target,
            "floor_received": sum(c.floor_at is not None for c in joined),
            "floor_ms": {
                k: (v * 1000 if v is not None else None)
                for k, v in summary([c.floor_at for c in joined if c.floor_at is not None]).items()
                if k != "n"
            },
            "floor_missing": sorted(c.id for c in joined if c.floor_at is None)[:30],
            "participants_complete": complete,
            "participants_incomplete": incomplete[:30],
            "participants_incomplete_n": len(incomplete),
            "participants_no_list": no_list,
            "participants_list_min": min(counts, default=None),
            "participants_list_max": max(counts, default=None),
            "participants_msgs_per_client": summary([c.participants_msgs for c in joined]),
            "joined_msg_list_size": summary(joined_list_sizes),
            "mib_in_per_client": statistics.mean([c.bytes_in for c in clients]) / 2**20,
            "mib_in_total": sum(c.bytes_in for c in clients) / 2**20,
        }
    )
    cpu: dict[str, Any] = {}
    nj = max(1, len(joined))
    for p in monitor.procs:
        herd_cpu = cpu_of(p, t_herd, t_settled)
        floor_cpu = cpu_of(p, t_floor0, t_floor1s)
        cpu[p.name] = {
            "role": p.role,
            "herd_cpu_s": herd_cpu,
            "ms_per_join": herd_cpu * 1000 / nj if herd_cpu is not None else None,
            "herd_share": herd_cpu / herd_wall if herd_cpu is not None and herd_wall > 0 else None,
            "floor_cpu_ms": floor_cpu * 1000 if floor_cpu is not None else None,
            "rss_mib": p.samples[-1][2] / 2**20 if p.samples else None,
            "rss_max_mib": p.rss_max() / 2**20,
        }
    servers_cpu = [cpu[p.name]["herd_cpu_s"] or 0.0 for p in procs]
    cpu["servers_total_ms_per_join"] = sum(servers_cpu) * 1000 / nj
    m = [s for s in monitor.machine if t_herd - 0.01 <= s[0] <= t_settled + 0.01]
    if len(m) >= 2 and m[-1][2] > m[0][2]:
        busy = (m[-1][1] - m[0][1]) / (m[-1][2] - m[0][2])  # share of all cores
        measured = sum((cpu[p.name]["herd_cpu_s"] or 0.0) for p in monitor.procs)
        cpu["machine_busy_share"] = busy
        cpu["other_processes_cores"] = max(0.0, busy * (os.cpu_count() or 1) - measured / herd_wall)
    gshare = cpu["generator"]["herd_share"] or 0.0
    cpu["generator_saturated"] = gshare >= GENERATOR_SATURATED
    out["cpu"] = cpu
    out["series"] = [(round(t, 2), j) for t, j in monitor.series]
    monitor.series = []
    try:
        async with http.delete(
            f"{url}/api/v1/meetings/{meeting['id']}", headers={"Authorization": f"Bearer {op}"}
        ) as r:
            out["meeting_deleted"] = r.status
    except aiohttp.ClientError as exc:
        out["meeting_deleted"] = f"error: {exc}"
    return out


def start_py_spy(args, proc: Proc, layout: str) -> tuple[subprocess.Popen, Path] | None:
    """Sample the first server of the layout over the herd (collapsed stacks, py-spy's raw format)."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        print("--py-spy: py-spy is not installed in the venv (pip install py-spy)", flush=True)
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"national_herd_{time.strftime('%Y%m%dT%H%M%S')}_{layout.replace(' ', '')}_{proc.name}.txt"
    popen = subprocess.Popen(
        [
            str(exe),
            "record",
            "--pid",
            str(proc.pid),
            "--rate",
            "50",
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "-o",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    atexit.register(lambda: popen.poll() is None and popen.kill())
    return popen, path


def stop_py_spy(popen: subprocess.Popen, path: Path) -> dict[str, Any]:
    import signal

    if popen.poll() is None:
        popen.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
    try:
        _, err = popen.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        popen.kill()
        _, err = popen.communicate()
    return {
        "file": str(path),
        "rc": popen.returncode,
        "stderr": (err or b"").decode(errors="replace")[-400:],
        "top": top_frames(path),
    }


def top_frames(path: Path, n: int = 15) -> list[tuple[str, float]]:
    """Share of samples in which a function appears anywhere on the stack (inclusive), top n."""
    if not path.exists():
        return []
    total, incl = 0, {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        try:
            k = int(count)
        except ValueError:
            continue
        total += k
        for frame in {
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else f for f in stack.split(";")
        }:
            incl[frame] = incl.get(frame, 0) + k
    return [(f, round(v / total, 3)) for f, v in sorted(incl.items(), key=lambda x: -x[1])[:n]] if total else []


async def provision(http: aiohttp.ClientSession, url: str, op: str, ids: list[str], monitor: Monitor) -> dict[str, str]:
    """Secrets + logins for every endpoint (scrypt twice each: the slow part of the setup)."""
    sem, tokens = asyncio.Semaphore(8), {}

    async def one(ep: str) -> None:
        async with sem:
            secret = (await post(http, url, f"/api/v1/endpoints/{ep}/credentials", op))["secret"]
            tokens[ep] = (await post(http, url, "/api/v1/auth/endpoint", endpoint_id=ep, secret=secret))["token"]

    task = asyncio.gather(*(one(ep) for ep in ids))
    while not task.done():
        monitor.phase = f"provision {len(tokens)}/{len(ids)}"
        await asyncio.wait([task], timeout=0.5)
    await task
    return tokens


def scan_log(path: Path) -> dict[str, Any]:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    levels: dict[str, int] = {}
    samples: list[str] = []
    for line in lines:
        level = "?"
        try:
            level = json.loads(line).get("level", "?")
        except ValueError:
            if "Traceback" in line or "Error" in line:
                level = "text-error"
            else:
                level = "text"
        levels[level] = levels.get(level, 0) + 1
        if level not in ("text", "info", "INFO") and len(samples) < 12:
            samples.append(line[:400])
    return {"lines": len(lines), "levels": levels, "samples": samples}


async def main(args) -> dict[str, Any]:
    t_start = time.monotonic()
    hard_deadline = t_start + args.max_seconds
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out: dict[str, Any] = {
        "benchmark": "national_herd",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cores": os.cpu_count(),
        "args": vars(args),
        "loop": loops.running(),
        "layouts": [],
    }
    monitor = Monitor()
    with tempfile.TemporaryDirectory(prefix="national-") as tmp:
        directory, count = national_directory(Path(tmp), args.provinces)
        d = load_directory(directory)  # validate before any server starts
        tiers: dict[str, int] = {}
        for ep in d:
            tiers[str(ep.tier)] = tiers.get(str(ep.tier), 0) + 1
        print(
            f"directory {directory.name}: {len(d)} endpoints ({', '.join(f'{k} {v}' for k, v in tiers.items())})",
            flush=True,
        )
        out["directory"] = {"endpoints": len(d), "tiers": tiers, "provinces": args.provinces}
        servers = Servers(Path(tmp), directory)
        ticker = asyncio.create_task(monitor.run(hard_deadline))
        try:
            servers.start_redis()
            async with aiohttp.ClientSession() as http:
                layouts = [(f"{k} node" + ("s" if k > 1 else ""), k) for k in args.layouts]
                tokens: dict[str, str] = {}
                op = ""
                for i, (name, nodes) in enumerate(layouts):
                    tag = "a" if i == 0 else "b"
                    monitor.set_phase(f"start {name}")
                    procs = servers.start_layout(tag, nodes)
                    monitor.procs = [*procs, servers.redis_proc]
                    urls = [p.url for p in procs]
                    await asyncio.gather(*(wait_healthy(http, p.url, p.popen) for p in procs))
                    op = (await post(http, urls[0], "/api/v1/auth/login", username="admin", password=PASSWORD))["token"]
                    if not tokens:
                        ids = [ep.id for ep in d]
                        print(
                            f"provisioning {len(ids)} endpoints (scrypt secrets + logins, once for both layouts)...",
                            flush=True,
                        )
                        t0 = time.monotonic()
                        tokens = await provision(http, urls[0], op, ids, monitor)
                        out["provision_s"] = time.monotonic() - t0
                    await asyncio.sleep(1.0)  # let the provisioning's threads and GC settle
                    res = await run_layout(name, urls, procs, servers, tokens, op, http, args, monitor)
                    res["logs"] = {p.name: scan_log(servers.workdir / p.name / "server.log") for p in procs}
                    res["exit_codes"] = {p.name: p.popen.poll() for p in procs}
                    out["layouts"].append(res)
                    print_layout(res)
                    monitor.set_phase(f"stop {name}")
                    servers.stop_layout()
                    if time.monotonic() > hard_deadline - 30:
                        print("out of time (--max-seconds): skipping the remaining layouts", flush=True)
                        break
        finally:
            monitor.stop = True
            await asyncio.gather(ticker, return_exceptions=True)
            servers.close()
            RESULTS.mkdir(parents=True, exist_ok=True)
            keep = RESULTS / f"national_herd_{stamp}_logs"
            keep.mkdir(exist_ok=True)
            for log in servers.logs:
                if log.exists():
                    shutil.copy(log, keep / f"{log.parent.name}.log")
            out["server_logs"] = str(keep)
    out["runtime_s"] = time.monotonic() - t_start
    series = {f"{r['layout']}: joined": r["series"] for r in out["layouts"]}
    if series:
        svg = RESULTS / f"national_herd_{stamp}.svg"
        svg.write_text(
            line_chart(
                f"National herd: {out['directory']['endpoints']} endpoints, one meeting",
                x_label="seconds since the herd started",
                y_label="endpoints joined",
                series=series,
                marks=[(r["herd_window_s"], f"{r['layout']} settled") for r in out["layouts"]],
            ),
            encoding="utf-8",
        )
        out["svg"] = str(svg)
    return out


def f(v, spec: str = ".2f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def print_layout(r: dict[str, Any]) -> None:
    print(
        f"\n{r['layout']}: joined {r['joined']}/{r['endpoints']}, floor {r['floor_received']}/{r['joined']}, "
        f"participants complete {r['participants_complete']}/{r['joined']}",
        flush=True,
    )


def report(out: dict[str, Any]) -> None:
    print()
    print(
        f"national herd: {out['directory']['endpoints']} endpoints ({out['args']['provinces']} provinces), "
        f"spread {out['args']['spread']:g} s, {out['cores']} cores, websocket compression "
        f"{'on' if out['args']['compress'] else 'off'}, generator on {out['loop']}, "
        f"provisioning {f(out.get('provision_s'), '.0f')} s"
    )
    head = (
        f"{'layout':<8} {'joined':>9} {'join med/p95/max s':>20} {'floor med/p95/max ms':>22} "
        f"{'lists ok':>9} {'srv ms/join':>11} {'redis ms/join':>13} {'gen %':>6} {'mach %':>7}"
    )
    print(head + "\n" + "-" * len(head))
    for r in out["layouts"]:
        c = r["cpu"]
        j, fl = r["join_s"], r["floor_ms"]
        print(
            f"{r['layout']:<8} {r['joined']:>4}/{r['endpoints']:<4} "
            f"{f(j['median']):>6}/{f(j['p95']):>5}/{f(j['max']):>6}  "
            f"{f(fl['median'], '.0f'):>7}/{f(fl['p95'], '.0f'):>6}/{f(fl['max'], '.0f'):>6}  "
            f"{r['participants_complete']:>4}/{r['joined']:<4} {c['servers_total_ms_per_join']:>11.2f} "
            f"{f(c['redis']['ms_per_join']):>13} {f((c['generator']['herd_share'] or 0) * 100, '.0f'):>6} "
            f"{f((c.get('machine_busy_share') or 0) * 200, '.0f'):>7}"
        )
    print()
    head = f"{'process':<12} {'CPU s herd':>10} {'ms/join':>8} {'share %':>8} {'floor ms':>9} {'RSS MiB':>8} {'max':>6}"
    print(head + "\n" + "-" * len(head))
    for r in out["layouts"]:
        for name, c in r["cpu"].items():
            if not isinstance(c, dict):
                continue
            print(
                f"{name:<12} {f(c['herd_cpu_s']):>10} {f(c['ms_per_join']):>8} {f((c['herd_share'] or 0) * 100, '.0f'):>8} "
                f"{f(c['floor_cpu_ms'], '.0f'):>9} {f(c['rss_mib'], '.0f'):>8} {f(c['rss_max_mib'], '.0f'):>6}"
            )
        print(
            f"{'':<12} herd window {r['herd_window_s']:.1f} s (all joined after {f(r['all_joined_after_s'], '.1f')} s)"
            f", participants msgs/client median {f(r['participants_msgs_per_client']['median'], '.0f')}, "
            f"received {r['mib_in_per_client']:.2f} MiB/client ({r['mib_in_total']:.0f} MiB total)"
        )
        reg = r.get("registry") or {}
        print(
            f"{'':<12} node heartbeat: longest gap {reg.get('max_beat_gap_s')} s (TTL {NODE_TTL_S:g} s) at "
            f"{reg.get('max_beat_gap_seen_at_s')} s, entry missing in {reg.get('missing_samples')} of "
            f"{reg.get('samples')} samples (watcher's longest poll gap {reg.get('max_poll_gap_s')} s)"
        )
    for r in out["layouts"]:
        c = r["cpu"]
        problems = []
        if r["joined"] < r["endpoints"]:
            problems.append(f"{r['endpoints'] - r['joined']} not joined: {', '.join(r['not_joined'][:8])}")
        if r["floor_received"] < r["joined"]:
            problems.append(
                f"floor missing at {r['joined'] - r['floor_received']}: {', '.join(r['floor_missing'][:8])}"
            )
        if r["participants_incomplete_n"]:
            problems.append(
                f"{r['participants_incomplete_n']} participant lists incomplete "
                f"(sizes {r['participants_list_min']}..{r['participants_list_max']}, "
                f"{r['participants_no_list']} without any list)"
            )
        if r["errors"]:
            problems.append(f"{len(r['errors'])} clients got errors, e.g. {next(iter(r['errors'].items()))}")
        if r["ended_early"]:
            joined_lost = sum(v["joined"] for v in r["ended_early"].values())
            problems.append(
                f"{len(r['ended_early'])} connections ended before the check ({joined_lost} after joining),"
                f" e.g. {next(iter(r['ended_early'].items()))}"
            )
        reg = r.get("registry", {})
        gone = {n: k for n, k in reg.get("missing_samples", {}).items() if k}
        if gone:
            problems.append(
                f"node heartbeat entry missing from Redis (node counted dead) in {gone} of "
                f"{reg['samples']} samples at 4/s; longest beat gap {reg['max_beat_gap_s']} s "
                f"(TTL {NODE_TTL_S:g} s); first at {reg['missing_at_s']}"
            )
        if r.get("empty_lists", {}).get("received"):
            e = r["empty_lists"]
            problems.append(
                f"{e['broadcasts']} participants broadcasts with 0 entries reached {e['clients']} clients "
                f"({e['received']} messages) during the herd"
            )
        sh = r.get("lists_shrunk") or {}
        if sh.get("messages"):
            problems.append(
                f"{sh['messages']} participants lists at {sh['clients']} clients were shorter (by up to "
                f"{sh['max_missing']}) than a list computed earlier (server ts), though no one left (small drops: "
                f"nodes read the list at different times; a node counted dead drops its share)"
            )
        for name, log in r["logs"].items():
            bad = {k: v for k, v in log["levels"].items() if k not in ("info", "text")}
            if bad:
                problems.append(f"{name} log: {bad}; first: {log['samples'][0][:240] if log['samples'] else ''}")
        if c["generator_saturated"]:
            problems.append(
                f"load generator at {c['generator']['herd_share'] * 100:.0f}% of a core in the herd: "
                f"join times include its queueing"
            )
        if c.get("other_processes_cores", 0) > 0.3:
            problems.append(f"processes outside this test used {c['other_processes_cores']:.2f} cores meanwhile")
        for p in problems:
            print(f"! {r['layout']}: {p}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--provinces", type=int, default=4, help="copies of Hà Giang's subtree (210 endpoints each)")
    p.add_argument("--nodes", type=int, default=2, help="signaling processes in the second layout")
    p.add_argument("--spread", type=float, default=3.0, help="seconds over which the endpoints start")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for all joins after the spread")
    p.add_argument("--floor-timeout", dest="floor_timeout", type=float, default=10.0)
    p.add_argument(
        "--no-compress",
        dest="compress",
        action="store_false",
        help="no permessage-deflate (the terminal agent offers it, as aiohttp does by default)",
    )
    p.add_argument("--max-seconds", dest="max_seconds", type=float, default=330.0)
    p.add_argument(
        "--py-spy",
        dest="py_spy",
        action="store_true",
        help="sample the first server of each layout over the herd with py-spy (if installed)",
    )
    p.add_argument("--layouts", help="node counts of the layouts, in order (default 1,<--nodes>)")
    loops.add_option(p, "the generator (the servers run uvloop)")
    args = p.parse_args(argv)
    args.layouts = [int(x) for x in args.layouts.split(",")] if args.layouts else [1, args.nodes]
    if args.provinces < 1 or args.nodes < 1:
        p.error("--provinces and --nodes must be >= 1")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    result = loops.run(main(arguments), arguments.loop)
    report(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"national_herd_{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    print(f"wrote {path}" + (f" and {result['svg']}" if result.get("svg") else ""))
