"""The server side of the province load test: a real Redis and several `giaoban serve` processes
on 127.0.0.1, their CPU/RSS counters, and kill -9.

Layouts:

* ``cluster`` (the nodes share meetings and media over Redis): ``--signaling S`` processes with
  ``--media none`` that the endpoints talk to, and ``--media M`` processes with ``--media local``
  (media nodes; the meeting is pinned to one of them, see ``GET /api/v1/cluster``);
* ``local`` (before the cluster features, or ``--cluster off``): ``S`` processes, each with its
  own in-process media node; a meeting's media lives on the node its clients talk to.

With ``edge`` (district ids, cluster layout only) one more media process, ``edge-1``
(role ``edge``), runs with ``--media-serves <ids>``: the cascade edge for those subtrees. Then
every media process runs under ``loadtests.province_tap`` (counts what its cascade links
receive, in ``<workdir>/<name>/tap.json``).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from loadtests.procstat import cpu_seconds, proc_rss
from loadtests.signaling_herd import wait_healthy
from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "province-admin-password"


@dataclass
class Proc:
    name: str  # sig-1, media-1, edge-1, node-1, redis, generator
    role: str  # signaling | media | edge | both | redis | generator
    pid: int
    url: str = ""
    popen: subprocess.Popen | None = None
    killed_at: float | None = None
    cpu0: float = 0.0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, cpu s, rss bytes)

    @property
    def alive(self) -> bool:
        return self.killed_at is None and (self.popen is None or self.popen.poll() is None)

    def sample(self, t: float) -> None:
        if not self.alive:
            return
        try:
            self.samples.append((t, cpu_seconds(self.pid), proc_rss(self.pid)))
        except (OSError, IndexError, ValueError):
            pass

    def cpu_between(self, t0: float, t1: float) -> float | None:
        """CPU seconds used between the samples nearest to t0 and t1 (None: not alive then)."""
        a = [s for s in self.samples if s[0] >= t0 - 0.01]
        b = [s for s in self.samples if s[0] <= t1 + 0.01]
        if not a or not b or b[-1][0] <= a[0][0]:
            return None
        return b[-1][1] - a[0][1]

    def rss_max(self) -> int:
        return max((s[2] for s in self.samples), default=0)


class Cluster:
    """Redis + server processes; ``close()`` kills whatever is left (call it in a finally)."""

    def __init__(
        self,
        workdir: Path,
        signaling: int,
        media: int,
        clustered: bool,
        log_level: str = "warning",
        edge: list[str] | None = None,
    ) -> None:
        self.workdir, self.n_sig, self.n_media, self.clustered = workdir, signaling, media, clustered
        self.edge = list(edge or []) if clustered else []
        self.log_level = log_level
        self.redis = RedisServer()
        self.procs: list[Proc] = []
        self.admin_token = ""

    # --- lifecycle -------------------------------------------------------------------------------
    def layout(self) -> list[tuple[str, str]]:
        if self.clustered:
            return (
                [(f"sig-{i + 1}", "signaling") for i in range(self.n_sig)]
                + [(f"media-{i + 1}", "media") for i in range(self.n_media)]
                + ([("edge-1", "edge")] if self.edge else [])
            )
        return [(f"node-{i + 1}", "both") for i in range(max(1, self.n_sig))]

    def start(self) -> None:
        atexit.register(self.close)  # even when the run dies before its finally
        self.redis.start()
        self.procs.append(Proc("redis", "redis", self.redis._proc.pid))
        for name, role in self.layout():
            self.procs.append(self._spawn(name, role))

    def _spawn(self, name: str, role: str) -> Proc:
        port = free_port()
        data = self.workdir / name
        data.mkdir(parents=True, exist_ok=True)
        cfg = data / "settings.yaml"
        cfg.write_text(
            f"admin_password: {PASSWORD}\nlog_level: {self.log_level}\nnode_id: {name}\n"
            f"ice_host: 127.0.0.1\n"  # terminals and nodes all come from 127.0.0.1: lift the cap
            f"limits:\n  connections_per_address: 5000\n",
            encoding="utf-8",
        )
        tapped = bool(self.edge) and role in ("media", "edge")
        cmd = [
            sys.executable,
            "-m",
            "loadtests.province_tap" if tapped else "signaling.cli",
            "--config",
            str(cfg),
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
            "none" if role == "signaling" else "local",
        ]
        if role == "edge":
            cmd += ["--media-serves", ",".join(self.edge)]
        env = {**os.environ, "GIAOBAN_TAP": str(data / "tap.json")} if tapped else None
        popen = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(data / "server.log", "wb"), env=env
        )
        return Proc(name, role, popen.pid, f"http://127.0.0.1:{port}", popen)

    async def wait_healthy(self, http: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(wait_healthy(http, p.url, p.popen) for p in self.servers()))

    def servers(self) -> list[Proc]:
        return [p for p in self.procs if p.popen is not None]

    def signaling_urls(self) -> list[str]:
        """The URLs the endpoints are given: the nodes clients talk to."""
        return [p.url for p in self.servers() if p.role in ("signaling", "both")]

    def by_name(self, name: str) -> Proc | None:
        return next((p for p in self.procs if p.name == name), None)

    def kill(self, proc: Proc, t: float) -> None:
        """kill -9, as a crash or a power cut would."""
        if proc.alive:
            os.kill(proc.pid, signal.SIGKILL)
            proc.popen.wait(5)
            proc.killed_at = t

    def close(self) -> None:
        for p in self.servers():
            if p.popen.poll() is None:
                p.popen.terminate()
        for p in self.servers():
            try:
                p.popen.wait(10)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(5)
        self.redis.close()

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / name / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


async def cluster_view(http: aiohttp.ClientSession, url: str, token: str) -> dict | None:
    """``GET /api/v1/cluster`` (None when the node has no such route or is down)."""
    try:
        async with http.get(
            url + "/api/v1/cluster",
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=5),
        ) as r:
            return await r.json() if r.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


async def media_peers(http: aiohttp.ClientSession, url: str) -> int | None:
    """``giaoban_media_peers`` from a node's ``/metrics`` (None when it does not answer)."""
    try:
        async with http.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=5)) as r:
            text = await r.text()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return None
    for line in text.splitlines():
        if line.startswith("giaoban_media_peers "):
            return int(float(line.split()[1]))
    return None


def pinned_node(view: dict | None, meeting_id: str) -> str | None:
    pin = ((view or {}).get("pins") or {}).get(meeting_id)
    return pin.get("node") if isinstance(pin, dict) else pin
