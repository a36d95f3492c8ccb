"""Plumbing of the cluster tests: a real Redis flushed per test, `giaoban serve` processes that
register as nodes, a signaling node in this process, and a test terminal that follows media_reset."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from pathlib import Path
import time
from typing import AsyncIterator

import redis.asyncio

from tests.support.cli import serve_command
from tests.support.harness import ROOT, Node, WsClient, free_port, start_node
from tests.support.media_clients import Client, PatternTrack, ToneTrack, WsPeerBridge


async def flush(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.flushdb()  # the Redis server is shared by the test session
    await client.aclose()


def start_process(
    data, redis_url: str, node_id: str, media: str = "local", extra: list[str] = ()
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    options = ["--media", media, "--node-id", node_id, "--log-format", "text", *extra]
    cmd = serve_command(data, port, *options, store=redis_url)
    Path(data).mkdir(parents=True, exist_ok=True)
    with open(Path(data) / "serve.log", "wb") as log:  # the node's own log, for a failure's why
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1")
        )
    return proc, port


async def cluster_view(node) -> dict:
    status, body = await node.call("GET", "/api/v1/cluster")
    assert status == 200, body
    return body


class ResettingEndpoint(WsPeerBridge):
    """A terminal on /ws that, like the agent and the browser page, opens a new peer connection and
    offers again when the server says ``media_reset``."""

    def __init__(self, ws: WsClient, meeting_id: str, endpoint: str, shade: int) -> None:
        super().__init__(ws, meeting_id)
        self.endpoint, self.shade = endpoint, shade
        self.client: Client | None = None
        self.resets: list[float] = []
        self._rejoin: asyncio.Task | None = None
        self._changing = asyncio.Lock()

    async def start(self) -> None:
        await self._new_peer()

    async def close(self) -> None:
        pass  # a Client replaced after media_reset must not close the WebSocket; stop() does

    async def _new_peer(self) -> None:
        async with self._changing:  # one peer change at a time (two resets can come close together)
            if self.client is not None:
                await self.client.close()
            self.client = Client(
                self, self.meeting_id, self.endpoint, video=PatternTrack(self.shade), audio=ToneTrack()
            )
            await self.client.join()

    def on_other(self, msg: dict) -> None:
        if msg["type"] == "media_reset":
            self.resets.append(time.monotonic())
            self._rejoin = asyncio.create_task(self._new_peer())
        else:
            self.other.append(msg)

    def frames_since(self, t: float) -> int:
        return len([f for f in self.client.video_frames() if f[0] > t]) if self.client else 0

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self._rejoin:  # let a peer change finish: aiortc never completes a close that was cut short
            await asyncio.wait([self._rejoin], timeout=20)
        if self.client:
            await asyncio.wait_for(self.client.close(), 10)
        await asyncio.wait_for(self.ws.close(), 10)


# Two `giaoban serve --media local` processes, the smallest cluster that can lose a media node.
MEDIA_PAIR = {"media-1": ("local", []), "media-2": ("local", [])}


@contextlib.asynccontextmanager
async def running_cluster(
    tmp_path, redis_url: str, processes: dict[str, tuple[str, list[str]]], sig_id: str = "sig-1"
) -> AsyncIterator[tuple[Node, dict[str, tuple[subprocess.Popen, int]]]]:
    """A signaling node ``sig_id`` here (no media) and ``processes`` (node id -> (media, extra
    flags)) as their own processes, all registered before the body runs; everything stops after."""
    await flush(redis_url)
    sig = await start_node(tmp_path / sig_id, store=redis_url, node_id=sig_id)
    procs = {
        name: start_process(tmp_path / name, redis_url, name, media, extra)
        for name, (media, extra) in processes.items()
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            view = await cluster_view(sig)
            if set(processes) <= set(view["signaling_nodes"]) and {
                n for n, (m, _) in processes.items() if m == "local"
            } <= set(view["media_nodes"]):
                break
            assert time.monotonic() < deadline, f"nodes did not register in 30 s: {view}"
            assert all(p.poll() is None for p, _ in procs.values()), "a node process exited"
            await asyncio.sleep(0.2)
        yield sig, procs
    finally:
        for proc, _ in procs.values():
            proc.kill()
            proc.wait()
        await asyncio.wait_for(sig.stop(), 30)


async def join_all(sig: Node, meeting_id: str, shades: list[tuple[str, int]]) -> list["ResettingEndpoint"]:
    """Each (endpoint, shade) connects to ``sig``, joins and publishes a pattern of that shade."""
    ends = []
    for endpoint, shade in shades:
        ws = await WsClient.connect(sig, await sig.endpoint_token(endpoint))
        await ws.expect("welcome")
        end = ResettingEndpoint(ws, meeting_id, endpoint, shade)
        await end.start()
        ends.append(end)
    return ends
