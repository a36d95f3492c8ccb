"""Recording a live meeting end to end: two endpoints publish through WS signaling and the media
node; the operator starts and stops the recording over REST; the file decodes with picture and sound."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from tests.harness import WsClient, start_node
from tests.mcu.clients import Client, PatternTrack, ToneTrack, wait_for
from tests.signaling.test_media_join import WsPeerBridge


@pytest.fixture
async def media_node(tmp_path):
    n = await start_node(tmp_path / "data", media="local")
    yield n
    await n.stop()


async def test_operator_records_a_live_meeting(media_node, tmp_path):
    node = media_node
    district, commune = "hg-meo-vac", node.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
    meeting = await node.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
    clients = []
    for endpoint, shade in ((district, 220), (commune, 30)):
        ws = await WsClient.connect(node, await node.endpoint_token(endpoint))
        await ws.expect("welcome")
        client = Client(WsPeerBridge(ws, meeting["id"]), meeting["id"], endpoint, video=PatternTrack(shade),
                        audio=ToneTrack())
        await client.join()
        clients.append(client)
    try:
        assert await wait_for(lambda: len(clients[1].video_frames()) >= 5, timeout=15)
        status, started = await node.call("POST", f"/api/v1/meetings/{meeting['id']}/recording", json={"action": "start"})
        assert status == 201, started
        await asyncio.sleep(5)
        status, stopped = await node.call("POST", f"/api/v1/meetings/{meeting['id']}/recording", json={"action": "stop"})
        assert status == 200, stopped
        status, listed = await node.call("GET", f"/api/v1/recordings?meeting_id={meeting['id']}")
        rec = listed["recordings"][0]
        async with node.http.get(f"{node.url}/api/v1/recordings/{rec['id']}",
                                 headers={"Authorization": f"Bearer {node.operator_token}"}) as resp:
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
