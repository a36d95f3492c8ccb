"""A LAN client for tests/signaling/test_lan_addresses.py, run in its own network namespace:
``python -m tests.support.lan_client URL WORKDIR``. Through URL (the join links' base that the server
printed) it logs in as admin, issues two endpoints' secrets, opens a meeting for them, and runs
two real agents (aiortc, ICE on every interface, as a terminal's defaults) until each has decoded
video from the other. Prints one JSON line: each agent's media counters."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

from endpoints.agent import Agent, load_config
from tests.support.harness import ADMIN_PASSWORD, VN

ENDPOINTS = ["hg-mv-son-vi", "hg-mv-pa-vi"]
WANT_FRAMES = 20  # decoded video frames each agent must see (about 2 s at 10 fps)


async def healthy(http: aiohttp.ClientSession, url: str, timeout: float = 30) -> None:
    """Wait until the server answers (it prints its addresses before it listens)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with http.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                if r.status == 200:
                    return
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def prepare(url: str, work: Path) -> None:
    async with aiohttp.ClientSession() as http:
        await healthy(http, url)
        async with http.post(url + "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}) as r:
            assert r.status == 200, await r.text()
            auth = {"Authorization": "Bearer " + (await r.json())["token"]}
        for ep in ENDPOINTS:
            async with http.post(f"{url}/api/v1/endpoints/{ep}/credentials", headers=auth) as r:
                assert r.status == 201, await r.text()
                (work / f"{ep}.secret").write_text((await r.json())["secret"] + "\n", encoding="utf-8")
        start = (datetime.now(VN) + timedelta(minutes=1)).replace(microsecond=0)
        body = {
            "title": "Giao ban qua mạng LAN",
            "chair": "hg-meo-vac",
            "invited": [f"ep:{ep}" for ep in ENDPOINTS],
            "start": start.isoformat(),
            "duration_minutes": 30,
        }
        async with http.post(url + "/api/v1/meetings", json=body, headers=auth) as r:
            assert r.status == 201, await r.text()


def agent(url: str, work: Path, ep: str) -> Agent:
    settings = {
        "server": url,
        "endpoint": ep,
        "secret_file": str(work / f"{ep}.secret"),
        "video": "test",
        "audio": "test",
        "video_size": "160x120",
        "fps": 10,
        "control_port": -1,
        "data_dir": str(work / ep),
    }  # ice_host left at its default: every interface of this namespace
    return Agent(load_config(None, settings))


def received_video(a: Agent) -> int:
    media = a.status()["media"] or {}
    return int((media.get("received_frames") or {}).get("video") or 0)


async def main(url: str, work: Path, timeout: float) -> dict:
    await prepare(url, work)
    agents = [agent(url, work, ep) for ep in ENDPOINTS]
    for a in agents:
        await a.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and min(received_video(a) for a in agents) < WANT_FRAMES:
            await asyncio.sleep(0.2)
        return {a.cfg.endpoint: a.status()["media"] for a in agents}
    finally:
        for a in agents:
            await a.stop()


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 60))
    print(json.dumps(result))
