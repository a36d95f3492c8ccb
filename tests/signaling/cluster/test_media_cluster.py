"""Several nodes on one real Redis: a signaling node without media reaches media nodes running as
their own `giaoban serve` processes; a meeting is pinned to one of them; kill -9 of that process
moves the meeting to the survivor (media_reset, new offer, decoded video again)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import pytest

from tests.support.cluster import MEDIA_PAIR, cluster_view, flush, join_all, running_cluster
from tests.support.cli import serve_command
from tests.support.harness import ROOT, WsClient, free_port, start_node
from tests.support.media_clients import wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "graceful-stop"])
async def test_meeting_is_pinned_to_one_media_node_and_survives_its_kill(tmp_path, redis_url, how):
    async with running_cluster(tmp_path, redis_url, MEDIA_PAIR) as (sig, procs):
        view = await cluster_view(sig)
        assert set(view["media_nodes"]) == {"media-1", "media-2"} and "sig-1" in view["signaling_nodes"]
        assert all(n["url"].startswith("http://127.0.0.1:") for n in view["media_nodes"].values())
        district, commune = "hg-meo-vac", sig.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
        meeting = await sig.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
        ends = await join_all(sig, meeting["id"], [(district, 220), (commune, 30)])
        try:
            chair, room = ends
            assert await wait_for(lambda: room.frames_since(0) >= 10, timeout=20), (
                "commune got no video via the media node"
            )
            assert sum(v for _, v in room.client.video_frames()[-5:]) / 5 > 150  # the district's bright picture
            pinned = (await cluster_view(sig))["pins"][meeting["id"]]["node"]
            survivor = ({"media-1", "media-2"} - {pinned}).pop()
            proc, port = procs[pinned]
            async with sig.http.get(f"http://127.0.0.1:{port}/metrics") as resp:  # both peers are on the pinned node
                assert "giaoban_media_peers 2.0" in await resp.text()

            killed_at = time.monotonic()
            proc.send_signal(how)  # a crash, or an operator stopping the node (rolling upgrade)
            proc.wait()
            assert await wait_for(lambda: all(e.resets for e in ends), timeout=5), "no media_reset after the kill"
            assert await wait_for(
                lambda: room.frames_since(killed_at + 0.1) >= 10 and chair.frames_since(killed_at + 0.1) >= 10,
                timeout=10,
            ), "video did not come back within 10 s of the kill"
            back_after = time.monotonic() - killed_at
            assert sum(v for _, v in room.client.video_frames()[-5:]) / 5 > 150
            view = await cluster_view(sig)
            assert view["pins"][meeting["id"]]["node"] == survivor
            assert view["pins"][meeting["id"]]["replaces"] == pinned
            async with sig.http.get(sig.url + "/metrics") as resp:  # operators see it happen (process-wide counters)
                counters = {
                    line.split()[0]: float(line.split()[1])
                    for line in (await resp.text()).splitlines()
                    if line.startswith("giaoban_media_")
                }
            assert counters["giaoban_media_failovers_total"] >= 1 and counters["giaoban_media_resets_total"] >= 2
            print(f"media back {back_after:.2f} s after {how.name} of {pinned}")
        finally:
            for end in ends:
                await end.stop()


async def test_internal_media_api_refuses_user_tokens_and_bad_requests(tmp_path, redis_url):
    await flush(redis_url)
    media = await start_node(tmp_path / "m", store=redis_url, node_id="media-a", media="local")
    sig = await start_node(tmp_path / "s", store=redis_url, node_id="sig-a")
    try:
        node_token = sig.ctx.placement.node_token()
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
        ws = await media.http.ws_connect(
            media.url + "/internal/media/peer", headers={"Authorization": f"Bearer {node_token}"}
        )
        replies = []
        for req in (
            {"op": "offer", "id": 1, "sdp": "v=0"},
            {"op": "open", "id": 2, "spec": {"meeting_id": "m1"}},
            {
                "op": "open",
                "id": 3,
                "spec": {
                    "meeting_id": "m1",
                    "endpoint_id": "hg-meo-vac",
                    "display_name": "x",
                    "role": "chair",
                    "link": "fibre",
                    "publish": True,
                },
            },
            {"op": "offer", "id": 4, "sdp": "not an sdp"},
            {"op": "dance", "id": 5},
            [1, 2],
            "{",
        ):
            await ws.send_str(req if isinstance(req, str) else json.dumps(req))
            replies.append(json.loads((await ws.receive(timeout=5)).data))
        assert [r["re"] for r in replies] == [1, 2, 3, 4, 5, None, None]
        assert "send open first" in replies[0]["error"]
        assert "bad spec" in replies[1]["error"]
        assert "error" not in replies[2]
        assert replies[3].get("error") and replies[3]["retry"] is False, replies[3]
        assert "unknown op 'dance'" in replies[4]["error"]
        assert "JSON object" in replies[5]["error"] and "must be JSON" in replies[6]["error"]
        assert len(media.ctx.media.peers) == 1
        await ws.close()
        assert await wait_for(lambda: not media.ctx.media.peers, timeout=5), "closing the socket must close the peer"
    finally:
        await sig.stop()
        await media.stop()


async def test_participants_of_a_killed_signaling_node_drop_out_within_seconds(tmp_path, redis_url):
    async with running_cluster(tmp_path, redis_url, {"sig-doomed": ("none", [])}, sig_id="sig-keep") as (sig, procs):
        proc, port = procs["sig-doomed"]
        meeting = await sig.schedule(chair="hg-meo-vac", invited=["tier:commune@hg-meo-vac"])
        commune = sig.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
        token = await sig.endpoint_token(commune)
        other = type(sig)(f"http://127.0.0.1:{port}", None, None, sig.http)
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
            assert time.monotonic() - killed < 8, "a dead node's participant is still listed after 8 s"
            await asyncio.sleep(0.2)
        await ws.close()


def test_media_serves_must_name_directory_endpoints(tmp_path):
    cmd = serve_command(tmp_path, free_port(), "--media-serves", "hg-meo-vac,hg-atlantis", host=None)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "media_serves names endpoints not in" in done.stderr and "hg-atlantis" in done.stderr
    assert "hg-meo-vac," not in done.stderr  # only the unknown one is named
    assert not (tmp_path / "giaoban.db").exists()  # refused before anything was stored
