"""A removed or revoked identity stops broadcasting at once (#11 item 2), against a real server.

A WHIP publisher (a real aiortc peer) holds the floor and a WHEP viewer decodes its picture. Then
the chair removes it, or the operator rotates its secret, or deletes the operator account it
logged in with. Within 1 s the viewer decodes no new frame of it; its WebSocket, WHIP and WHEP
sessions have ended (DELETE answers 404, the media node holds no peer of it); the floor is clear
in the room and on the media node; /live no longer lists it. With two nodes sharing Redis the
sessions on the other node end too. A rotation by the ``giaoban credentials`` command (another
process) ends them as well: at once with Redis, and with SQLite within 1 s too (the node reads
the store's revocation marker every 0.5 s). WHIP and WHEP sessions also end when their meeting is
cancelled.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.support.cluster import flush
from tests.support.cli import giaoban_command
from tests.support.harness import ROOT, Node, WsClient, start_node
from tests.support.media_clients import PatternTrack, ToneTrack, wait_for

pytestmark = pytest.mark.integration

CHAIR, TARGET = "hg-ubnd", "hg-meo-vac"
BRIGHT = 220  # the target's picture; nothing else in the meeting publishes


class HttpPeer:
    """A WHIP publisher or a WHEP viewer: a real aiortc peer, offered over HTTP."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames: list[tuple[float, int]] = []  # (arrival, brightness) of each decoded picture
        self.location = ""
        self._pulls: list[asyncio.Task] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track) -> None:
        async def pull():
            while True:
                frame = await track.recv()
                self.frames.append((time.monotonic(), int(frame.to_ndarray(format="rgb24")[60:].mean())))

        if track.kind == "video":
            self._pulls.append(asyncio.ensure_future(pull()))

    async def open(self, node: Node, kind: str, meeting_id: str, token: str) -> None:
        if kind == "whip":
            self.pc.addTransceiver(ToneTrack(), direction="sendonly")
            self.pc.addTransceiver(PatternTrack(BRIGHT), direction="sendonly")
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
            self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with node.http.post(
            f"{node.url}/{kind}/{meeting_id}",
            data=self.pc.localDescription.sdp.encode(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        ) as r:
            answer = await r.text()
            assert r.status == 201, answer
            self.location = r.headers["Location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def frames_after(self, t: float) -> int:
        return len([f for f in self.frames if f[0] > t])

    async def close(self) -> None:
        for task in self._pulls:
            task.cancel()
        await asyncio.gather(*self._pulls, return_exceptions=True)
        await asyncio.wait_for(self.pc.close(), 10)


async def delete_status(node: Node, location: str, token: str) -> int:
    async with node.http.delete(node.url + location, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def joined(node: Node, token: str, meeting_id: str) -> WsClient:
    ws = await WsClient.connect(node, token)
    await ws.expect("welcome")
    await ws.send("join", meeting_id=meeting_id)
    await ws.expect("joined")
    return ws


async def target_token(node: Node, how: str) -> tuple[str, str]:
    """(token, endpoint id as the room knows it) of the identity the test will remove or revoke."""
    if how != "delete_operator":
        return await node.endpoint_token(TARGET), TARGET
    status, _ = await node.call(
        "POST", "/api/v1/operators", json={"username": "obs.tinh", "password": "mat-khau-obs-1"}
    )
    assert status == 201
    status, login = await node.call(
        "POST", "/api/v1/auth/login", token=None, json={"username": "obs.tinh", "password": "mat-khau-obs-1"}
    )
    assert status == 200
    return login["token"], "obs.tinh"


async def act(node: Node, how: str, chair: WsClient, endpoint_id: str) -> None:
    if how == "cli":  # the operator rotates the secret with the command line, on the server machine
        cfg = node.ctx.settings
        cmd = giaoban_command(cfg.data_dir, "credentials", f"ep:{endpoint_id}", store=cfg.store)
        done = await asyncio.to_thread(subprocess.run, cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and endpoint_id in done.stdout, done.stderr[-2000:]
        node.secrets.pop(endpoint_id, None)
    elif how == "remove":
        await chair.send("remove", endpoint_id=endpoint_id)
    elif how == "rotate":
        status, _ = await node.call("POST", f"/api/v1/endpoints/{endpoint_id}/credentials")
        assert status == 201
        node.secrets.pop(endpoint_id, None)
    else:
        status, _ = await node.call("DELETE", f"/api/v1/operators/{endpoint_id}")
        assert status == 200


def media_floor(node: Node, meeting_id: str):
    meeting = node.ctx.media.meetings.get(meeting_id)
    return meeting.floor if meeting is not None else None


def media_peers_of(node: Node, endpoint_id: str) -> int:
    # a WHEP viewer's peer is "<endpoint>~<session>" on the media node (signaling.api.whip)
    return len([p for p in node.ctx.media.peers if p.endpoint_id.split("~")[0] == endpoint_id])


async def run_scenario(media: Node, entry: Node, how: str, within: float = 1.0) -> dict:
    """The target's WebSocket, WHIP and WHEP sessions are on ``entry``; the chair, the viewer and
    the media are on ``media`` (the same node, or another one sharing Redis). All must end, and
    the floor clear, within ``within`` seconds of the action."""
    meeting = await media.schedule(chair=CHAIR, invited=["tier:district"])
    mid = meeting["id"]
    status, view = await media.call("POST", f"/api/v1/meetings/{mid}/links", json={"name": "Xem", "role": "viewer"})
    chair = await joined(media, await media.endpoint_token(CHAIR), mid)
    entry.secrets = media.secrets
    token, endpoint_id = await target_token(media, how)
    target_ws = await joined(entry, token, mid)
    pub, own_view, viewer = HttpPeer(), HttpPeer(), HttpPeer()
    try:
        await pub.open(entry, "whip", mid, token)
        await own_view.open(entry, "whep", mid, token)
        await viewer.open(media, "whep", mid, view["token"])
        await chair.send("grant_floor", endpoint_id=endpoint_id)
        assert await wait_for(lambda: media_floor(media, mid) == endpoint_id, timeout=5)
        assert await wait_for(lambda: len([f for f in viewer.frames if f[1] > 150]) >= 10, timeout=20), (
            "the viewer never decoded the publisher's picture"
        )
        assert media_peers_of(media, endpoint_id) == 2  # its WHIP and its WHEP peer
        await act(media, how, chair, endpoint_id)
        t0 = time.monotonic()  # the removal is sent, the revocation written (the CLI has exited)
        cleared = await wait_for(lambda: media_floor(media, mid) is None, timeout=within, step=0.01)
        floor_s = time.monotonic() - t0
        await asyncio.sleep(max(0.0, t0 + within + 1.0 - time.monotonic()))  # to see frames that should not come
        late = viewer.frames_after(t0 + within)
        last = max((f[0] for f in viewer.frames), default=t0) - t0
        status, live = await media.call("GET", f"/api/v1/meetings/{mid}/live")
        assert late == 0, f"the viewer decoded {late} frames more than {within:g} s after {how} (last at {last:.2f} s)"
        assert cleared, f"the media node still gives {endpoint_id} the floor {within:g} s after {how}"
        assert live["floor"] is None
        assert endpoint_id not in {p["endpoint_id"] for p in live["participants"]}
        assert media_peers_of(media, endpoint_id) == 0
        for session in (pub, own_view):
            assert await delete_status(entry, session.location, media.operator_token) == 404
        code, _ = await asyncio.wait_for(target_ws.closed(), 5) if how != "remove" else (None, "")
        if how == "remove":
            assert (await target_ws.expect("removed"))["endpoint_id"] == endpoint_id
        else:
            assert code == 4401
        return {"floor_s": floor_s, "last_frame_s": last}
    finally:
        for peer in (pub, own_view, viewer):
            await peer.close()
        await chair.close()
        await target_ws.close()


@pytest.mark.parametrize("how", ["remove", "rotate", "delete_operator"])
async def test_a_removed_or_revoked_publisher_stops_within_a_second(media_node, how):
    figures = await run_scenario(media_node, media_node, how)
    print(
        f"{how}: floor cleared on the media node after {figures['floor_s'] * 1000:.0f} ms; "
        f"the viewer's last frame {figures['last_frame_s'] * 1000:.0f} ms after"
    )


async def test_a_rotation_by_the_command_line_ends_sessions_on_a_sqlite_node(media_node):
    figures = await run_scenario(media_node, media_node, "cli")  # the marker is read every 0.5 s
    print(
        f"CLI rotation, SQLite: floor cleared after {figures['floor_s'] * 1000:.0f} ms; "
        f"the viewer's last frame {figures['last_frame_s'] * 1000:.0f} ms after"
    )


async def test_whip_and_whep_sessions_end_when_their_meeting_is_cancelled(media_node):
    node = media_node
    meeting = await node.schedule(chair=CHAIR, invited=["tier:district"])
    token = await node.endpoint_token(TARGET)
    pub, view = HttpPeer(), HttpPeer()
    try:
        await pub.open(node, "whip", meeting["id"], token)
        await view.open(node, "whep", meeting["id"], token)
        status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
        assert len(live["participants"]) == 2
        # no wait for the scheduler's first pass: entering opened the occurrence (test_cancel_race.py)
        status, body = await node.call(
            "DELETE", f"/api/v1/meetings/{meeting['id']}/occurrences/{live['occurrence_id']}"
        )
        assert status == 200, body
        assert await wait_for(lambda: media_peers_of(node, TARGET) == 0, timeout=5), (
            "the media peers outlived the meeting"
        )
        for session in (pub, view):
            assert await delete_status(node, session.location, token) == 404
    finally:
        await pub.close()
        await view.close()


@pytest.fixture
async def two_media_nodes(tmp_path, redis_url):
    await flush(redis_url)  # the Redis server is shared by the test session
    a = await start_node(tmp_path / "a", store=redis_url, node_id="node-a", media="local")
    b = await start_node(tmp_path / "b", store=redis_url, node_id="node-b", media="none")
    yield a, b
    await b.stop()
    await a.stop()


@pytest.mark.parametrize("how", ["remove", "rotate", "cli"])
async def test_sessions_on_another_node_end_too(two_media_nodes, how):
    """The target is signalled through node b (no media of its own: its peers live on a's media
    node); the chair, the viewer and the REST call are on node a."""
    a, b = two_media_nodes
    figures = await run_scenario(a, b, how)
    print(
        f"two nodes, {how}: floor cleared after {figures['floor_s'] * 1000:.0f} ms; "
        f"last frame {figures['last_frame_s'] * 1000:.0f} ms after"
    )
