"""Recording in a cluster: the meeting runs on a media node process; the operator and the chair
talk to a signaling node without media, which forwards to the meeting's node. Lists, downloads and
the public HLS stream are answered from any node."""

from __future__ import annotations

import asyncio

import av
import pytest

from tests.support.cluster import cluster_view, join_all, running_cluster
from tests.signaling.cluster.test_media_cluster import MEDIA_PAIR
from tests.support.media_clients import wait_for

pytestmark = pytest.mark.integration


async def test_recording_and_hls_through_a_signaling_node_without_media(tmp_path, redis_url):
    async with running_cluster(tmp_path, redis_url, MEDIA_PAIR) as (sig, _):
        await record_through(sig, tmp_path)


async def record_through(sig, tmp_path) -> None:
    ends = []
    try:
        commune = sig.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
        meeting = await sig.schedule(chair="hg-meo-vac", invited=["tier:commune@hg-meo-vac"])
        mid = meeting["id"]
        status, body = await sig.call("POST", f"/api/v1/meetings/{mid}/recording", json={"action": "start"})
        assert status == 503, body  # no media yet anywhere: the local answer stands
        ends = await join_all(sig, mid, [("hg-meo-vac", 220), (commune, 30)])
        assert await wait_for(lambda: ends[1].frames_since(0) >= 5, timeout=20)
        pinned = (await cluster_view(sig))["pins"][mid]["node"]

        # the operator records through sig-1 (forwarded), the state and the list come back through it
        status, started = await sig.call("POST", f"/api/v1/meetings/{mid}/recording", json={"action": "start"})
        assert status == 201, started
        status, state = await sig.call("GET", f"/api/v1/meetings/{mid}/recording")
        assert status == 200 and state["recording"] is True
        status, again = await sig.call("POST", f"/api/v1/meetings/{mid}/recording", json={"action": "start"})
        assert status == 409, again  # the media node's own answer
        # public HLS through sig-1
        status, _ = await sig.call("POST", f"/api/v1/meetings/{mid}/streaming", json={"action": "start"})
        assert status == 201
        playlist = ""
        for _ in range(60):  # bounded: up to 15 s for two segments
            await asyncio.sleep(0.25)
            async with sig.http.get(f"{sig.url}/live/{mid}/index.m3u8") as resp:
                playlist = await resp.text() if resp.status == 200 else ""
            if playlist.count(".ts") >= 2:
                break
        assert playlist.count(".ts") >= 2, playlist
        await asyncio.sleep(2)
        # the chair stops it over its WebSocket on sig-1 (the media node runs the action)
        await ends[0].ws.send("record", on=False)
        stopped = lambda: [m for m in ends[0].other if m["type"] == "recording" and m["on"] is False]
        assert await wait_for(stopped, timeout=10), [m for m in ends[0].other if m["type"] == "error"]
        status, listed = await sig.call("GET", f"/api/v1/recordings?meeting_id={mid}")
        assert status == 200 and [r["node"] for r in listed["recordings"]] == [pinned]
        rec = listed["recordings"][0]
        async with sig.http.get(
            f"{sig.url}/api/v1/recordings/{rec['id']}", headers={"Authorization": f"Bearer {sig.operator_token}"}
        ) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "video/webm"
            path = tmp_path / "rec.webm"
            path.write_bytes(await resp.read())
        with av.open(str(path)) as container:
            frames = [f for f in container.decode(video=0)]
        assert len(frames) >= 20 and (frames[-1].width, frames[-1].height) == (1280, 720)
        status, body = await sig.call("GET", "/api/v1/recordings/no-such-recording")
        assert status == 404 and "no-such-recording" in body["error"]["message"]
        status, body = await sig.call("DELETE", f"/api/v1/recordings/{rec['id']}")
        assert status == 200 and body["deleted"] == rec["id"]
        status, listed = await sig.call("GET", f"/api/v1/recordings?meeting_id={mid}")
        assert listed["recordings"] == []
    finally:
        for end in ends:
            await end.stop()
