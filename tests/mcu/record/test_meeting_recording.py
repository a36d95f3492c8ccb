"""Recording a live meeting end to end: two endpoints publish through WS signaling and the media
node; the operator starts and stops the recording over REST; the file decodes with picture and sound."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from tests.support.harness import WsClient
from tests.support.media_clients import Client, PatternTrack, ToneTrack, WsPeerBridge, wait_for

pytestmark = pytest.mark.integration


async def live_meeting(node) -> tuple[dict, list[Client]]:
    """A district and a commune publishing camera + tone through WS signaling."""
    district, commune = "hg-meo-vac", node.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
    meeting = await node.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
    clients = []
    for endpoint, shade in ((district, 220), (commune, 30)):
        ws = await WsClient.connect(node, await node.endpoint_token(endpoint))
        await ws.expect("welcome")
        client = Client(
            WsPeerBridge(ws, meeting["id"]), meeting["id"], endpoint, video=PatternTrack(shade), audio=ToneTrack()
        )
        await client.join()
        clients.append(client)
    return meeting, clients


async def test_operator_records_a_live_meeting(media_node, tmp_path):
    node = media_node
    meeting, clients = await live_meeting(node)
    try:
        assert await wait_for(lambda: len(clients[1].video_frames()) >= 5, timeout=15)
        status, started = await node.call(
            "POST", f"/api/v1/meetings/{meeting['id']}/recording", json={"action": "start"}
        )
        assert status == 201, started
        await asyncio.sleep(5)
        status, stopped = await node.call(
            "POST", f"/api/v1/meetings/{meeting['id']}/recording", json={"action": "stop"}
        )
        assert status == 200, stopped
        status, listed = await node.call("GET", f"/api/v1/recordings?meeting_id={meeting['id']}")
        rec = listed["recordings"][0]
        async with node.http.get(
            f"{node.url}/api/v1/recordings/{rec['id']}", headers={"Authorization": f"Bearer {node.operator_token}"}
        ) as resp:
            assert resp.status == 200
            path = tmp_path / "rec.webm"
            path.write_bytes(await resp.read())
    finally:
        for c in clients:
            await c.close()
    with av.open(str(path)) as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}
        assert tags["meeting_id"] == meeting["id"]
        video = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert len(video) >= 20, f"only {len(video)} video frames"
    assert video[-1].shape == (720, 1280)
    assert video[-1].mean() > 20  # the two publishers' tiles, not a black frame
    assert np.abs(audio).max() > 0.01  # the mixed tones


async def test_public_hls_of_a_live_meeting(media_node, tmp_path):
    node = media_node
    meeting, clients = await live_meeting(node)
    try:
        assert await wait_for(lambda: len(clients[1].video_frames()) >= 5, timeout=15)
        status, started = await node.call(
            "POST", f"/api/v1/meetings/{meeting['id']}/streaming", json={"action": "start"}
        )
        assert status in (200, 201), started
        playlist = ""
        for _ in range(40):  # bounded: up to 10 s for two segments
            await asyncio.sleep(0.25)
            async with node.http.get(node.url + started["hls"]) as resp:  # public: no token
                if resp.status == 200:
                    playlist = await resp.text()
                    if playlist.count("#EXTINF") >= 2:
                        break
        assert playlist.startswith("#EXTM3U") and playlist.count("#EXTINF") >= 2, playlist
        segment = [line for line in playlist.splitlines() if line and not line.startswith("#")][0]
        async with node.http.get(node.url + started["hls"].rsplit("/", 1)[0] + "/" + segment) as resp:
            assert resp.status == 200
            (tmp_path / "seg.ts").write_bytes(await resp.read())
        with av.open(str(tmp_path / "seg.ts")) as container:
            kinds = {s.type for s in container.streams}
            frames = [f for f in container.decode(video=0)]
        assert kinds == {"video", "audio"} and frames and frames[0].height == 540
    finally:
        await node.call("POST", f"/api/v1/meetings/{meeting['id']}/streaming", json={"action": "stop"})
        for c in clients:
            await c.close()


async def test_chair_starts_and_stops_recording_over_websocket(media_node):
    node = media_node
    meeting, clients = await live_meeting(node)
    chair_ws = clients[0].node.ws  # the district chairs this meeting
    try:
        assert await wait_for(lambda: len(clients[1].video_frames()) >= 5, timeout=15)
        await chair_ws.send("record", on=True)
        assert await wait_for(
            lambda: any(m["type"] == "recording" and m["on"] for m in clients[1].node.other), timeout=5
        )
        await asyncio.sleep(3)
        await chair_ws.send("record", on=False)
        assert await wait_for(
            lambda: any(m["type"] == "recording" and not m["on"] for m in clients[1].node.other), timeout=10
        )
        ref = await clients[1].node.ws.send("record", on=True)  # a commune cannot
        assert await wait_for(
            lambda: any(m.get("ref") == ref and m.get("code") == "forbidden" for m in clients[1].node.other), timeout=5
        )
        status, listed = await node.call("GET", f"/api/v1/recordings?meeting_id={meeting['id']}")
        assert len(listed["recordings"]) == 1 and listed["recordings"][0]["duration_s"] >= 2, listed
    finally:
        for c in clients:
            await c.close()
