"""REST: recordings list/download/range/delete, start/stop, public live HLS, errors."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from mcu.audio import AudioMixer
from mcu.compose import Compositor, Rendition
from mcu.node import LocalMediaNode
from mcu.record import RecordingService
from signaling.api import recordings as api_recordings
from signaling.app import build_context, make_app
from signaling.cluster.local_placement import LocalPlacement
from signaling.settings import load_settings
from tests.support.harness import ADMIN_PASSWORD, HAGIANG, Node, free_port

from tests.mcu.record.media import decode_all

pytestmark = pytest.mark.integration


async def _start(data_dir) -> Node:
    """tests.support.harness.start_node, plus the recording routes until app.py lists them."""
    port = free_port()
    cfg = load_settings(
        None,
        {
            "host": "127.0.0.1",
            "port": port,
            "data_dir": str(data_dir),
            "directory": HAGIANG,
            "media": "none",
            "admin_password": ADMIN_PASSWORD,
            "log_format": "text",
        },
    )
    ctx = await build_context(cfg)
    app = make_app(ctx)
    if not any(r.canonical == "/api/v1/recordings" for r in app.router.resources()):
        app.add_routes(api_recordings.routes)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    node = Node(f"http://127.0.0.1:{port}", ctx, runner, aiohttp.ClientSession())
    status, body = await node.call(
        "POST", "/api/v1/auth/login", token=None, json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert status == 200, body
    node.operator_token = body["token"]
    return node


@pytest.fixture
async def rnode(tmp_path):
    node = await _start(tmp_path / "data")
    service = RecordingService(
        tmp_path / "data" / "recordings", retention_days=7, segment_seconds=2, hls_segment_seconds=1, hls_window=3
    )
    node.ctx.recordings = service
    # recording starts where the meeting's media runs: a media node with this service (build_context
    # wires it so, and connects the service to the node's pipelines: here each test connects its own)
    node.ctx.placement = LocalPlacement(LocalMediaNode(recordings=service))
    await service.start()
    media = {}
    yield node, media
    await service.stop()
    for taps in media.values():
        await taps.compositor.stop()
        await taps.mixer.stop()
    await node.stop()


async def _media_for(meeting_id: str, media: dict) -> SimpleNamespace:
    """A running compositor (VP8 'record' rendition + H.264 'hls' rendition) and mixer, like the SFU's."""
    comp = Compositor(
        width=320,
        height=180,
        fps=15,
        workers=1,
        renditions=(Rendition("720p", 180, 300_000), Rendition("hls", 90, 150_000, codec="h264")),
    )
    mixer = AudioMixer(decoder="pyav")
    await comp.start()
    mixer.start()
    media[meeting_id] = SimpleNamespace(compositor=comp, mixer=mixer)
    return media[meeting_id]


async def test_record_list_download_range_delete(rnode):
    node, media = rnode
    meeting = await node.schedule("hg-ubnd", ["tier:district"], minutes_from_now=-1)
    mid = meeting["id"]
    path = f"/api/v1/meetings/{mid}/recording"
    status, body = await node.call("POST", path, json={"action": "start"})
    assert status == 503 and "not wired" in body["error"]["message"]
    await _media_for(mid, media)
    released = []

    async def provider(meeting_id):  # the provider may be async (create the pipeline)
        return media.get(meeting_id)

    node.ctx.recordings.connect_media(provider, released.append)
    status, rec = await node.call("POST", path, json={"action": "start"})
    assert status == 201 and rec["state"] == "recording" and rec["meeting_id"] == mid, rec
    assert rec["title"] == meeting["title"] and "occurrence_id" in rec
    assert (await node.call("POST", path, json={"action": "start"}))[0] == 409
    status, state = await node.call("GET", path)
    assert status == 200 and state["recording"] and state["current"]["id"] == rec["id"]
    status, _ = await node.call("GET", f"/api/v1/recordings/{rec['id']}")
    assert status == 409  # still running
    await asyncio.sleep(2.5)
    status, done = await node.call("POST", path, json={"action": "stop"})
    assert status == 200 and done["state"] == "done" and 1.5 <= done["duration_s"] <= 3.5, done
    assert (await node.call("POST", path, json={"action": "stop"}))[0] == 409
    assert released == [mid]  # one release per start

    status, listing = await node.call("GET", "/api/v1/recordings")
    assert status == 200 and listing["retention_days"] == 7
    assert [r["id"] for r in listing["recordings"]] == [rec["id"]]
    assert listing["recordings"][0]["size_bytes"] > 0

    url = f"{node.url}/api/v1/recordings/{rec['id']}"
    auth = {"Authorization": f"Bearer {node.operator_token}"}
    async with node.http.get(url, headers=auth) as resp:
        assert resp.status == 200 and resp.content_type == "video/webm"
        assert resp.headers["Content-Disposition"].startswith(f'attachment; filename="{rec["id"]}.webm"')
        data = await resp.read()
    (node.ctx.recordings.store.root / "copy.webm").write_bytes(data)
    video, pcm, duration = decode_all(node.ctx.recordings.store.root / "copy.webm")
    assert video and pcm.size and 1.5 <= duration <= 3.5
    async with node.http.get(url, headers={**auth, "Range": "bytes=100-199"}) as resp:
        assert resp.status == 206 and await resp.read() == data[100:200]
        assert resp.headers["Content-Range"] == f"bytes 100-199/{len(data)}"

    assert (await node.call("GET", f"/api/v1/recordings/{rec['id']}", token=None))[0] == 401
    assert (await node.call("GET", "/api/v1/recordings", token=None))[0] == 401
    assert (await node.call("GET", "/api/v1/recordings/nope"))[0] == 404
    assert (await node.call("DELETE", f"/api/v1/recordings/{rec['id']}", token=None))[0] == 401
    assert (await node.call("DELETE", f"/api/v1/recordings/{rec['id']}"))[0] == 200
    assert (await node.call("DELETE", f"/api/v1/recordings/{rec['id']}"))[0] == 404
    assert (await node.call("GET", "/api/v1/recordings"))[1]["recordings"] == []


async def test_action_errors(rnode):
    node, _ = rnode
    mid = (await node.schedule("hg-ubnd", ["tier:district"]))["id"]
    path = f"/api/v1/meetings/{mid}/recording"
    status, body = await node.call("POST", path, json={"action": "pause"})
    assert status == 400 and "action" in body["error"]["message"]
    assert (await node.call("POST", path, json={}))[0] == 400
    assert (await node.call("POST", path, json={"action": "start"}, token=None))[0] == 401
    endpoint = await node.endpoint_token("hg-ubnd")
    assert (await node.call("POST", path, json={"action": "start"}, token=endpoint))[0] == 403
    assert (await node.call("POST", "/api/v1/meetings/nope/recording", json={"action": "start"}))[0] == 404
    assert (await node.call("POST", path, json={"action": "stop"}))[0] == 409
    assert (await node.call("GET", f"/live/{mid}/index.m3u8", token=None))[0] == 404
    node.ctx.recordings = None
    assert (await node.call("GET", "/api/v1/recordings"))[0] == 503


async def test_public_live_hls(rnode):
    node, media = rnode
    mid = (await node.schedule("hg-ubnd", ["tier:district"], minutes_from_now=-1))["id"]
    await _media_for(mid, media)
    node.ctx.recordings.connect_media(media.get)
    spath = f"/api/v1/meetings/{mid}/streaming"
    status, body = await node.call("POST", spath, json={"action": "start", "rtmp_url": "file:///etc/x"})
    assert status == 400 and body["error"]["field"] == "rtmp_url"
    status, body = await node.call("POST", spath, json={"action": "start", "rtmp_url": "rtmp://127.0.0.1:1/live/k"})
    assert status == 201 and body["hls"] == f"/live/{mid}/index.m3u8" and body["rtmp"]
    hls = body["hls"]
    assert (await node.call("POST", spath, json={"action": "start"}))[0] == 409
    for _ in range(60):
        status, text = await node.call("GET", hls, token=None)
        if status == 200 and text.count("#EXTINF") >= 2:
            break
        await asyncio.sleep(0.1)
    assert status == 200 and text.startswith("#EXTM3U") and "#EXT-X-ENDLIST" not in text
    seg = next(line for line in text.splitlines() if line.endswith(".ts"))
    async with node.http.get(f"{node.url}/live/{mid}/{seg}") as resp:
        assert resp.status == 200 and resp.content_type == "video/mp2t"
        assert (await resp.read())[0] == 0x47  # MPEG-TS sync byte
    assert (await node.call("GET", f"/live/{mid}/..%2Fx.ts", token=None))[0] == 404
    assert (await node.call("GET", f"/live/{mid}/seg999999.ts", token=None))[0] == 404
    status, body = await node.call("POST", spath, json={"action": "stop"})
    assert status == 200 and not body["streaming"]
    assert body["rtmp"]["failures"] >= 1  # nothing listens on port 1: retried
    assert (await node.call("GET", hls, token=None))[0] == 404
