"""Several nodes on one real Redis: a signaling node without media reaches media nodes running as
their own `giaoban serve` processes; a meeting is pinned to one of them; kill -9 of that process
moves the meeting to the survivor (media_reset, new offer, decoded video again)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis.asyncio

from tests.harness import ROOT, HAGIANG, WsClient, free_port, start_node
from tests.mcu.clients import Client, PatternTrack, ToneTrack, wait_for


async def flush(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.flushdb()  # the Redis server is shared by the test session
    await client.aclose()


def start_process(data, redis_url: str, node_id: str, media: str = "local",
                  extra: list[str] = ()) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, "-m", "signaling.cli", "--directory", HAGIANG, "--data-dir", str(data),
           "--store", redis_url, "serve", "--host", "127.0.0.1", "--port", str(port), "--media", media,
           "--node-id", node_id, "--log-format", "text", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return proc, port


async def cluster_view(node) -> dict:
    status, body = await node.call("GET", "/api/v1/cluster")
    assert status == 200, body
    return body


class ResettingEndpoint:
    """A terminal on /ws that, like the agent and the browser page, opens a new peer connection and
    offers again when the server says ``media_reset``."""

    def __init__(self, ws: WsClient, meeting_id: str, endpoint: str, shade: int) -> None:
        self.ws, self.meeting_id, self.endpoint, self.shade = ws, meeting_id, endpoint, shade
        self.client: Client | None = None
        self.resets: list[float] = []
        self._answer: asyncio.Future | None = None
        self._reader: asyncio.Task | None = None
        self._rejoin: asyncio.Task | None = None

    # the bridge the test Client talks to (it stands in for a media node)
    async def open_peer(self, spec, on_event):
        self._on_event = on_event
        return self

    async def handle_offer(self, sdp: str) -> str:
        self._answer = asyncio.get_running_loop().create_future()
        await self.ws.send("offer", sdp=sdp)
        return await asyncio.wait_for(self._answer, 20)

    async def handle_answer(self, sdp: str) -> None:
        await self.ws.send("answer", sdp=sdp)

    async def close(self) -> None:
        pass

    async def start(self) -> None:
        await self.ws.send("join", meeting_id=self.meeting_id)
        await self.ws.expect("joined")
        self._reader = asyncio.create_task(self._read())
        await self._new_peer()

    async def _new_peer(self) -> None:
        if self.client is not None:
            await self.client.close()
        self.client = Client(self, self.meeting_id, self.endpoint, video=PatternTrack(self.shade), audio=ToneTrack())
        await self.client.join()

    async def _read(self) -> None:
        async for raw in self.ws.ws:
            msg = json.loads(raw.data)
            if msg["type"] == "answer" and self._answer and not self._answer.done():
                self._answer.set_result(msg["sdp"])
            elif msg["type"] == "offer":
                await self._on_event({"type": "offer", "sdp": msg["sdp"]})
            elif msg["type"] == "media_reset":
                self.resets.append(time.monotonic())
                self._rejoin = asyncio.create_task(self._new_peer())
            else:
                self.ws.received.append(msg)

    def frames_since(self, t: float) -> int:
        return len([f for f in self.client.video_frames() if f[0] > t]) if self.client else 0

    async def stop(self) -> None:
        for task in (self._reader, self._rejoin):
            if task:
                task.cancel()
        if self.client:
            await self.client.close()
        await self.ws.close()


@pytest.fixture
async def media_cluster(tmp_path, redis_url):
    """A signaling-only node in this process and two media nodes as processes."""
    await flush(redis_url)
    sig = await start_node(tmp_path / "sig", store=redis_url, node_id="sig-1")
    procs = {name: start_process(tmp_path / name, redis_url, name) for name in ("media-1", "media-2")}
    try:
        deadline = time.monotonic() + 30
        while len((await cluster_view(sig))["media_nodes"]) < 2:
            assert time.monotonic() < deadline, "media nodes did not register in 30 s"
            assert all(p.poll() is None for p, _ in procs.values()), "a media node process exited"
            await asyncio.sleep(0.2)
        yield sig, procs
    finally:
        for proc, _ in procs.values():
            proc.kill()
            proc.wait()
        await sig.stop()


async def test_meeting_is_pinned_to_one_media_node_and_survives_its_kill(media_cluster):
    sig, procs = media_cluster
    view = await cluster_view(sig)
    assert set(view["media_nodes"]) == {"media-1", "media-2"} and "sig-1" in view["signaling_nodes"]
    assert all(n["url"].startswith("http://127.0.0.1:") for n in view["media_nodes"].values())
    district, commune = "hg-meo-vac", sig.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
    meeting = await sig.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
    ends = []
    try:
        for endpoint, shade in ((district, 220), (commune, 30)):
            ws = await WsClient.connect(sig, await sig.endpoint_token(endpoint))
            await ws.expect("welcome")
            end = ResettingEndpoint(ws, meeting["id"], endpoint, shade)
            await end.start()
            ends.append(end)
        chair, room = ends
        assert await wait_for(lambda: room.frames_since(0) >= 10, timeout=20), "commune got no video via the media node"
        assert sum(v for _, v in room.client.video_frames()[-5:]) / 5 > 150  # the district's bright picture
        pinned = (await cluster_view(sig))["pins"][meeting["id"]]["node"]
        survivor = ({"media-1", "media-2"} - {pinned}).pop()
        # both peers are on the pinned node: its own metrics count them
        proc, port = procs[pinned]
        async with sig.http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert "giaoban_media_peers 2.0" in await resp.text()

        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert await wait_for(lambda: all(e.resets for e in ends), timeout=5), "no media_reset after the kill"
        assert await wait_for(lambda: room.frames_since(killed_at + 0.1) >= 10 and chair.frames_since(killed_at + 0.1) >= 10,
                              timeout=10), "video did not come back within 10 s of the kill"
        back_after = time.monotonic() - killed_at
        assert sum(v for _, v in room.client.video_frames()[-5:]) / 5 > 150
        view = await cluster_view(sig)
        assert view["pins"][meeting["id"]]["node"] == survivor
        assert view["pins"][meeting["id"]]["replaces"] == pinned
        async with sig.http.get(sig.url + "/metrics") as resp:  # operators see it happen (process-wide counters)
            counters = {line.split()[0]: float(line.split()[1]) for line in (await resp.text()).splitlines()
                        if line.startswith("giaoban_media_")}
        assert counters["giaoban_media_failovers_total"] >= 1 and counters["giaoban_media_resets_total"] >= 2
        print(f"media back {back_after:.2f} s after kill -9 of {pinned}")
    finally:
        for end in ends:
            await end.stop()


async def test_internal_media_api_refuses_user_tokens_and_bad_requests(tmp_path, redis_url):
    await flush(redis_url)
    media = await start_node(tmp_path / "m", store=redis_url, node_id="media-a", media="local")
    sig = await start_node(tmp_path / "s", store=redis_url, node_id="sig-a")
    try:
        node_token = sig.ctx.router.node_token()
        # a user's token is not a node token, and a node token is not a user's
        status, body = await media.call("POST", "/internal/media/meetings/m1/floor", json={"endpoint_id": None})
        assert status == 401 and "signature" in body["error"]["message"]
        status, body = await media.call("GET", "/api/v1/meetings", token=node_token)
        assert status == 401
        status, body = await media.call("POST", "/internal/media/meetings/m1/floor", token=None)
        assert status == 401 and "Bearer" in body["error"]["message"]
        # a node without media says so
        status, body = await sig.call("POST", "/internal/media/meetings/m1/floor", token=node_token, json={})
        assert status == 503 and "without media" in body["error"]["message"]
        status, body = await media.call("POST", "/internal/media/meetings/m1/teleport", token=node_token, json={})
        assert status == 404 and "teleport" in body["error"]["message"]
        status, body = await media.call("POST", "/internal/media/meetings/m1/floor", token=node_token, data=b"[1,")
        assert status == 400 and "JSON" in body["error"]["message"]
        # the peer socket answers every bad request with an error naming it, and keeps going
        ws = await media.http.ws_connect(media.url + "/internal/media/peer",
                                         headers={"Authorization": f"Bearer {node_token}"})
        replies = []
        for req in ({"op": "offer", "id": 1, "sdp": "v=0"}, {"op": "open", "id": 2, "spec": {"meeting_id": "m1"}},
                    {"op": "open", "id": 3, "spec": {"meeting_id": "m1", "endpoint_id": "hg-meo-vac",
                                                     "display_name": "x", "role": "chair", "link": "fibre",
                                                     "publish": True}},
                    {"op": "offer", "id": 4, "sdp": "not an sdp"}, {"op": "dance", "id": 5}):
            await ws.send_str(json.dumps(req))
            replies.append(json.loads((await ws.receive(timeout=5)).data))
        assert [r["re"] for r in replies] == [1, 2, 3, 4, 5]
        assert "send open first" in replies[0]["error"]
        assert "bad spec" in replies[1]["error"]
        assert "error" not in replies[2]
        assert replies[3].get("error") and replies[3]["retry"] is False, replies[3]
        assert "unknown op 'dance'" in replies[4]["error"]
        assert len(media.ctx.media.peers) == 1
        await ws.close()
        assert await wait_for(lambda: not media.ctx.media.peers, timeout=5), "closing the socket must close the peer"
    finally:
        await sig.stop()
        await media.stop()


async def test_participants_of_a_killed_signaling_node_drop_out_within_seconds(tmp_path, redis_url):
    await flush(redis_url)
    sig = await start_node(tmp_path / "s", store=redis_url, node_id="sig-keep")
    proc, port = start_process(tmp_path / "other", redis_url, "sig-doomed", media="none")
    try:
        meeting = await sig.schedule(chair="hg-meo-vac", invited=["tier:commune@hg-meo-vac"])
        commune = sig.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
        token = await sig.endpoint_token(commune)
        other = type(sig)(f"http://127.0.0.1:{port}", None, None, sig.http)
        deadline = time.monotonic() + 30
        while "sig-doomed" not in (await cluster_view(sig))["signaling_nodes"]:
            assert time.monotonic() < deadline and proc.poll() is None, "second node did not start"
            await asyncio.sleep(0.2)
        ws = await WsClient.connect(other, token)
        await ws.expect("welcome")
        await ws.send("join", meeting_id=meeting["id"])
        await ws.expect("joined")

        async def live_ids() -> set[str]:
            status, body = await sig.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
            return {p["endpoint_id"] for p in body["participants"]}

        assert commune in await live_ids()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        while commune in await live_ids():
            assert time.monotonic() - killed < 6, "a dead node's participant is still listed after 6 s"
            await asyncio.sleep(0.2)
        await ws.close()
    finally:
        proc.kill()
        proc.wait()
        await sig.stop()


def test_media_serves_must_name_directory_endpoints(tmp_path):
    cmd = [sys.executable, "-m", "signaling.cli", "--directory", HAGIANG, "--data-dir", str(tmp_path),
           "serve", "--port", str(free_port()), "--media-serves", "hg-meo-vac,hg-atlantis"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "media_serves names endpoints not in" in done.stderr and "hg-atlantis" in done.stderr
    assert "hg-meo-vac," not in done.stderr  # only the unknown one is named
    assert not (tmp_path / "giaoban.db").exists()  # refused before anything was stored
