"""Network loss mid-meeting: the terminal's TCP path to the server is cut, then restored.

The agent talks to the server through a real TCP proxy on 127.0.0.1 (tests/endpoints/agent/proxy.py).
Media goes straight over UDP to the media node, but the server drops an endpoint's media peer
when its WebSocket dies, so recovering from a signaling cut means: reconnect, rejoin, new peer
connection, media flowing again - all of which is asserted here, with the time it took.
"""

from __future__ import annotations

import time

import pytest

from tests.support.agents import make_agent
from tests.support.waiting import until, until_async
from tests.endpoints.agent.proxy import TcpProxy
from tests.endpoints.agent.test_agent_join import DISTRICT, _server_packets, communes, live_ids
from tests.support.harness import WsClient

pytestmark = pytest.mark.integration

CUT_S = 2.0


async def attendance_of(node, meeting_id: str, occurrence_id: str, endpoint: str) -> dict:
    status, record = await node.call("GET", f"/api/v1/meetings/{meeting_id}/occurrences/{occurrence_id}/attendance")
    assert status == 200, record
    return next(e for e in record["endpoints"] + record["guests"] if e["endpoint_id"] == endpoint)


async def test_cut_network_path_mid_meeting_recovers_and_media_resumes(mnode, tmp_path):
    a_id, b_id = communes(mnode)[:2]
    meeting = await mnode.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"])
    proxy = await TcpProxy(mnode.runner.addresses[0][1]).start()
    chair = await WsClient.connect(mnode, await mnode.endpoint_token(DISTRICT))
    a = await make_agent(mnode, tmp_path, a_id, server=proxy.url)  # behind the cuttable path
    b = await make_agent(mnode, tmp_path, b_id)  # a second terminal, direct: it watches a's video
    try:
        await chair.send("join", meeting_id=meeting["id"])
        joined = await chair.expect("joined")
        await until(lambda: a.peer is not None and a.peer.connected_at is not None, 10, what="a's media up")
        await until(lambda: b.peer is not None and b.peer.connected_at is not None, 10, what="b's media up")
        await chair.send("grant_floor", endpoint_id=a_id)  # a's camera becomes the main picture
        await chair.expect("floor")
        await until(lambda: b.peer.frames_received("video") > 10, 10, what="b receives a's video")
        first_peer = a.peer

        # --- the commune's uplink goes down for 2 s ---------------------------------------------
        t_cut = time.monotonic()
        await proxy.cut()
        await until(lambda: not a.conn.connected, 2, what="a notices the loss")
        await until_async(lambda: _absent(mnode, meeting["id"], a_id), 5, what="server drops a")
        await until(lambda: a.peer is None, 2, what="a closes its dead peer")
        frames_at_cut = b.peer.frames_received("video")
        await _sleep_until(t_cut + CUT_S)
        t_restore = time.monotonic()
        await proxy.restore()

        # --- it comes back by itself ------------------------------------------------------------
        await until_async(lambda: _present(mnode, meeting["id"], a_id), 10, what="a back in /live")
        t_back = time.monotonic()
        await until(
            lambda: a.peer is not None and a.peer is not first_peer and a.peer.connected_at is not None,
            10,
            what="a's new media connection",
        )
        t_media = time.monotonic()
        # media resumes: the media node receives a's camera again, and b sees it again
        base = _server_packets(mnode, a_id)["video"]
        await until(lambda: _server_packets(mnode, a_id)["video"] > base + 10, 10, what="a's video reaches the node")
        await until(lambda: b.peer.frames_received("video") > frames_at_cut + 10, 10, what="b receives a's video again")
        t_frames = time.monotonic()
        print(
            f"\nreconnect: back in meeting {t_back - t_restore:.2f} s after restore "
            f"({t_back - t_cut:.2f} s after the cut); media connected +{t_media - t_back:.2f} s; "
            f"frames at the second terminal +{t_frames - t_back:.2f} s; agent timings {a.timings}"
        )
        assert t_back - t_restore < 5.0
        assert t_frames - t_restore < 10.0

        att = await attendance_of(mnode, meeting["id"], joined["occurrence_id"], a_id)
        assert att["joins"] == 2 and att["present"] is True
        log = (tmp_path / a_id / "agent.log").read_text(encoding="utf-8")
        assert "Mất kết nối máy chủ" in log and "(connection lost)" in log
        assert log.count("Đã vào cuộc họp") == 2 and "after_loss_s=" in log
    finally:
        await a.stop()
        await b.stop()
        await chair.close()
        await proxy.stop()


async def test_silent_dead_path_is_detected_by_ping_timeout(mnode, tmp_path):
    """The path stays 'open' but carries nothing (no FIN, no RST): only the receive timeout sees it."""
    a_id = communes(mnode)[2]
    meeting = await mnode.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"])
    proxy = await TcpProxy(mnode.runner.addresses[0][1]).start()
    a = await make_agent(mnode, tmp_path, a_id, server=proxy.url, video="none", audio="none", ping_interval_s=0.4)
    try:
        await until(lambda: a.meeting is not None, 5, what="a joined")
        t0 = time.monotonic()
        proxy.blackhole()
        await until(lambda: not a.conn.connected, 3, what="dead path detected")
        detected = time.monotonic() - t0
        await proxy.cut()  # drop the black-holed sockets; the next connection gets a clean path
        await proxy.restore()
        await until(lambda: a.meeting is not None and a.conn.connected, 10, what="a rejoined")
        print(
            f"\ndead path detected after {detected:.2f} s (ping 0.4 s, timeout 1.0 s); back after "
            f"{time.monotonic() - t0:.2f} s"
        )
        assert detected < 2.5
        assert a_id in await live_ids(mnode, meeting["id"])
    finally:
        await a.stop()
        await proxy.stop()


async def test_media_connection_failure_rejoins(mnode, tmp_path):
    """The agent's own peer connection dies (UDP path gone): it rejoins and media flows again."""
    a_id = communes(mnode)[3]
    meeting = await mnode.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"])
    a = await make_agent(mnode, tmp_path, a_id)
    try:
        await until(lambda: a.peer is not None and a.peer.connected_at is not None, 10, what="media up")
        first = a.peer
        t0 = time.monotonic()
        await first.pc.close()  # what a failed ICE check ends in; the agent did not ask for it
        await until(
            lambda: a.peer is not None and a.peer is not first and a.peer.connected_at is not None,
            10,
            what="new media connection",
        )
        base = _server_packets(mnode, a_id)["video"]
        await until(lambda: _server_packets(mnode, a_id)["video"] > base + 10, 10, what="video flows again")
        print(f"\nmedia failure -> media flowing again after {time.monotonic() - t0:.2f} s")
        assert a_id in await live_ids(mnode, meeting["id"])
        assert "(media lost, rejoining)" in (tmp_path / a_id / "agent.log").read_text(encoding="utf-8")
    finally:
        await a.stop()


async def _present(node, meeting_id, endpoint) -> bool:
    return endpoint in await live_ids(node, meeting_id)


async def _absent(node, meeting_id, endpoint) -> bool:
    return endpoint not in await live_ids(node, meeting_id)


async def _sleep_until(t: float) -> None:
    import asyncio

    await asyncio.sleep(max(0.0, t - time.monotonic()))
