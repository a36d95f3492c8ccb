"""Thundering herd on the signaling server: every Hà Giang endpoint (211) connects its WebSocket
and joins one province-wide meeting at once, as room terminals do when a briefing opens.

The server runs as its own process (`giaoban serve --media none`, embedded store, or --store
redis://...) so its CPU time is measured alone. Reports join success and time (median, p95, max),
server CPU per join, fan-out time of one floor change to every endpoint, server memory.

    .venv/bin/python -m loadtests.signaling_herd [--store redis://127.0.0.1:6379/0] [--rounds 2] [--loop uvloop|asyncio]

``--loop`` is the loop of the clients (this process); the server, ``giaoban serve``, runs uvloop.
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp

from loadtests import loops
from loadtests.procstat import cpu_seconds, proc_rss

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "loadtests" / "results"
VN = timezone(timedelta(hours=7))
PASSWORD = "herd-admin-password"
# the servers a load test starts on one Redis share one node key (required there; never stored);
# province_cluster and national_herd import this module, so theirs share it too
os.environ.setdefault("GIAOBAN_NODE_KEY", os.urandom(32).hex())


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def start_server(port: int, data: Path, store: str | None) -> subprocess.Popen:
    cfg = data / "server.yaml"
    # every endpoint of the herd connects from 127.0.0.1: lift the per-address connection cap
    cfg.write_text(
        f"admin_password: {PASSWORD}\nlog_level: warning\nlimits:\n  connections_per_address: 5000\n", encoding="utf-8"
    )
    cmd = [sys.executable, "-m", "signaling.cli", "--config", str(cfg), "--data-dir", str(data / "var")]
    if store:
        cmd += ["--store", store]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--media", "none"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(data / "server.log", "wb"))


async def wait_healthy(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            async with http.get(url + "/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("server not healthy after 30 s")


async def post(http, url, path, token=None, **body):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(url + path, json=body, headers=headers) as r:
        data = await r.json()
        if r.status >= 300:
            raise SystemExit(f"{path}: {r.status} {data}")
        return data


async def provision(http, url: str, op: str, ids: list[str]) -> dict[str, str]:
    """Secrets and session tokens for every endpoint (bounded concurrency, progress shown)."""
    sem, tokens, done = asyncio.Semaphore(16), {}, 0

    async def one(ep: str) -> None:
        nonlocal done
        async with sem:
            secret = (await post(http, url, f"/api/v1/endpoints/{ep}/credentials", op))["secret"]
            tokens[ep] = (await post(http, url, "/api/v1/auth/endpoint", endpoint_id=ep, secret=secret))["token"]
            done += 1
            if done % 50 == 0 or done == len(ids):
                print(f"  provisioned {done}/{len(ids)} endpoints", flush=True)

    await asyncio.gather(*(one(ep) for ep in ids))
    return tokens


async def herd(url: str, tokens: dict[str, str], meeting_id: str, chair: str, timeout: float) -> dict:
    """All endpoints connect + join at once; then the chair gives the floor and we time the fan-out."""
    ws_url = url.replace("http", "ws", 1) + "/ws"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # default caps at 100 sockets
    joined_at: dict[str, float] = {}
    floor_at: dict[str, float] = {}
    conns: dict[str, aiohttp.ClientWebSocketResponse] = {}
    t0 = time.monotonic()

    async def endpoint(ep: str, token: str) -> None:
        ws = await session.ws_connect(ws_url, heartbeat=30)
        conns[ep] = ws
        await ws.send_json({"v": 1, "type": "hello", "token": token})
        await ws.send_json({"v": 1, "type": "join", "meeting_id": meeting_id})
        async for raw in ws:
            if raw.type != aiohttp.WSMsgType.TEXT:
                print(f"  {ep}: connection ended: {raw.type.name} {raw.data}", flush=True)
                return
            msg = json.loads(raw.data)
            if msg["type"] == "joined":
                joined_at[ep] = time.monotonic() - t0
            elif msg["type"] == "floor" and ep not in floor_at and "floor_sent" in marks:
                floor_at[ep] = time.monotonic() - marks["floor_sent"]
            elif msg["type"] == "error":
                print(f"  {ep}: error {msg['message']}", flush=True)

    marks: dict[str, float] = {}
    tasks = [asyncio.create_task(endpoint(ep, tok)) for ep, tok in tokens.items()]
    deadline = time.monotonic() + timeout
    while len(joined_at) < len(tokens) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        print(f"\r  joined {len(joined_at)}/{len(tokens)}  t={time.monotonic() - t0:5.1f}s", end="", flush=True)
    print(flush=True)
    target = next(ep for ep in tokens if ep != chair and ep in joined_at)
    marks["floor_sent"] = time.monotonic()
    await conns[chair].send_json({"v": 1, "type": "grant_floor", "endpoint_id": target})
    while len(floor_at) < len(joined_at) and time.monotonic() < deadline + 10:
        await asyncio.sleep(0.05)
    for ws in list(conns.values()):
        await ws.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()
    joins = list(joined_at.values())
    return {
        "endpoints": len(tokens),
        "joined": len(joins),
        "join_median_s": statistics.median(joins) if joins else None,
        "join_p95_s": pct(joins, 95),
        "join_max_s": max(joins, default=None),
        "floor_fanout_p95_ms": pct(list(floor_at.values()), 95) * 1000,
        "floor_received": len(floor_at),
    }


async def main(args) -> dict:
    port = 18000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, Path(tmp), args.store)
        try:
            async with aiohttp.ClientSession() as http:
                await wait_healthy(http, url, proc)
                op = (await post(http, url, "/api/v1/auth/login", username="admin", password=PASSWORD))["token"]
                async with http.get(url + "/api/v1/directory", headers={"Authorization": f"Bearer {op}"}) as r:
                    ids = [ep["id"] for ep in (await r.json())["endpoints"]]
                print(f"provisioning {len(ids)} endpoints (scrypt secrets + logins)...", flush=True)
                cpu0 = cpu_seconds(proc.pid)
                tokens = await provision(http, url, op, ids)
                cpu_login = (cpu_seconds(proc.pid) - cpu0) / len(ids)
                rounds = []
                for i in range(args.rounds):
                    start = (datetime.now(VN) + timedelta(minutes=1)).replace(microsecond=0)
                    meeting = await post(
                        http,
                        url,
                        "/api/v1/meetings",
                        op,
                        title=f"Giao ban toàn tỉnh {i + 1}",
                        chair="hg-ubnd",
                        invited=["all"],
                        start=start.isoformat(),
                        duration_minutes=60,
                    )
                    print(f"round {i + 1}: {len(ids)} endpoints join {meeting['id']} at once", flush=True)
                    cpu0 = cpu_seconds(proc.pid)
                    result = await herd(url, tokens, meeting["id"], "hg-ubnd", args.timeout)
                    result["server_cpu_ms_per_join"] = (cpu_seconds(proc.pid) - cpu0) * 1000 / max(1, result["joined"])
                    result["server_rss_mib"] = proc_rss(proc.pid) / 2**20
                    rounds.append(result)
                    await asyncio.sleep(1)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            if args.keep_log:
                Path(args.keep_log).write_bytes((Path(tmp) / "server.log").read_bytes())
    return {
        "benchmark": "signaling_herd",
        "store": args.store or "sqlite (embedded)",
        "cores": os.cpu_count(),
        "loop": loops.running(),
        "server_cpu_ms_per_login": cpu_login * 1000,
        "rounds": rounds,
    }


def report(out: dict) -> None:
    print(
        f"\nstore: {out['store']}   clients on {out['loop']}   "
        f"server CPU per provisioning+login: {out['server_cpu_ms_per_login']:.1f} ms"
    )
    head = f"{'round':>5} {'joined':>9} {'median s':>9} {'p95 s':>7} {'max s':>7} {'CPU ms/join':>12} {'floor p95 ms':>13} {'RSS MiB':>8}"
    print(head + "\n" + "-" * len(head))
    for i, r in enumerate(out["rounds"], 1):
        print(
            f"{i:>5} {r['joined']:>4}/{r['endpoints']:<4} {r['join_median_s']:>9.2f} {r['join_p95_s']:>7.2f} "
            f"{r['join_max_s']:>7.2f} {r['server_cpu_ms_per_join']:>12.2f} {r['floor_fanout_p95_ms']:>13.1f} {r['server_rss_mib']:>8.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="redis://... to run the server on an external Redis")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep-log", dest="keep_log", help="copy the server's log here")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for all joins")
    loops.add_option(parser, "the clients (the server runs uvloop)")
    args = parser.parse_args()
    result = loops.run(main(args), args.loop)
    report(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"signaling_herd_{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
