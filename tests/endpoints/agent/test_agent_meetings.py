"""Meeting life cycle seen from the terminal: closed meetings, the next open one, token renewal."""

from __future__ import annotations

import time

import pytest

from tests.support.agents import make_agent
from tests.support.waiting import until, until_async
from tests.endpoints.agent.proxy import TcpProxy
from tests.endpoints.agent.test_agent_join import DISTRICT, communes, live_ids


@pytest.mark.integration
async def test_meeting_closed_then_joins_the_next_open_one(node, tmp_path):
    a_id = communes(node)[4]
    first = await node.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"], minutes_from_now=1)
    second = await node.schedule(chair=DISTRICT, invited=[f"ep:{a_id}"], minutes_from_now=3, title="Tập huấn")
    agent = await make_agent(node, tmp_path, a_id)
    try:
        await until(lambda: agent.meeting is not None, 5, what="joined")
        assert agent.meeting["id"] == first["id"]  # the earliest start first
        occ = agent.meeting["occurrence_id"]
        await until_async(lambda: _opened(node, occ), 5, what="the scheduler opened the occurrence")
        status, body = await node.call("DELETE", f"/api/v1/meetings/{first['id']}/occurrences/{occ}")
        assert status == 200, body
        await until(
            lambda: agent.meeting is not None and agent.meeting["id"] == second["id"],
            5,
            what="moved to the second meeting",
        )
        assert a_id in await live_ids(node, second["id"])
        assert a_id not in await live_ids(node, first["id"])
        log = (tmp_path / a_id / "agent.log").read_text(encoding="utf-8")
        assert "(meeting closed)" in log and "Đã vào cuộc họp Tập huấn (joined)" in log
        assert agent.timings["join_after_open_s"][0] < 1.0
    finally:
        await agent.stop()


@pytest.mark.integration
async def test_expired_or_refused_token_logs_in_again(node, tmp_path):
    a_id = communes(node)[5]
    await node.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"])
    proxy = await TcpProxy(node.runner.addresses[0][1]).start()
    agent = await make_agent(node, tmp_path, a_id, server=proxy.url)
    try:
        await until(lambda: agent.meeting is not None, 5, what="joined")
        agent.conn.token = "not-a-valid-token"  # the server will refuse it at the next hello
        agent.conn.expires_at = time.time() + 3600
        await proxy.cut()
        await until(lambda: not agent.conn.connected, 3, what="loss noticed")
        await proxy.restore()
        await until(lambda: agent.meeting is not None and agent.conn.connected, 10, what="back after a new login")
        assert agent.conn.connects == 2 and agent.conn.token != "not-a-valid-token"

        agent.conn.expires_at = time.time() + 30  # about to expire: renewed before the next connect
        old = agent.conn.token
        await proxy.cut()
        await proxy.restore()
        await until(lambda: agent.conn.connects == 3 and agent.meeting is not None, 10, what="third connection")
        assert agent.conn.token != old and agent.conn.expires_at > time.time() + 3600
    finally:
        await agent.stop()
        await proxy.stop()


async def _opened(node, occurrence_id: str) -> bool:
    doc = await node.ctx.store.get("occurrences", occurrence_id)
    return doc is not None and doc.get("state") == "open"


@pytest.mark.integration
async def test_chair_mute_survives_a_reconnect(node, tmp_path):
    """The server keeps the room's mutes; the rejoined terminal comes back muted."""
    from tests.support.harness import WsClient

    a_id = communes(node)[6]
    meeting = await node.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"])
    proxy = await TcpProxy(node.runner.addresses[0][1]).start()
    chair = await WsClient.connect(node, await node.endpoint_token(DISTRICT))
    agent = await make_agent(node, tmp_path, a_id, server=proxy.url)
    try:
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await until(lambda: agent.meeting is not None, 5, what="joined")
        await chair.send("mute", endpoint_id=a_id, kind="audio", muted=True)
        await until(lambda: agent.muted["audio"], 5, what="muted")
        agent.muted["audio"] = False  # forget it locally: only the server's word counts after the rejoin
        await proxy.cut()
        await until(lambda: not agent.conn.connected, 3, what="loss noticed")
        await proxy.restore()
        await until(lambda: agent.conn.connects == 2 and agent.meeting is not None, 10, what="rejoined")
        assert agent.status()["muted"]["audio"] is True
    finally:
        await agent.stop()
        await chair.close()
        await proxy.stop()


def test_backoff_doubles_with_jitter_up_to_the_cap(tmp_path):
    from endpoints.agent import load_config
    from endpoints.agent.connection import Connection
    from endpoints.agent.oplog import OpLog

    cfg = load_config(None, {"server": "http://127.0.0.1:1", "endpoint": "hg-mv-son-vi", "secret": "s"})
    log = OpLog(tmp_path, "backoff-test")
    try:
        runs = []
        for _ in range(200):
            conn = Connection(cfg, log, print, print, print)
            runs.append([conn._next_delay() for _ in range(8)])
        for i, base in enumerate([0.5, 1, 2, 4, 8, 10, 10, 10]):
            column = [r[i] for r in runs]
            assert all(base / 2 <= d <= base for d in column)
            assert max(column) - min(column) > base / 4  # spread: 200 terminals do not come back together
    finally:
        log.close()


@pytest.mark.integration
async def test_removed_by_the_chair_does_not_rejoin(node, tmp_path):
    from tests.support.harness import WsClient

    a_id = communes(node)[7]
    meeting = await node.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"])
    chair = await WsClient.connect(node, await node.endpoint_token(DISTRICT))
    agent = await make_agent(node, tmp_path, a_id)
    try:
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await until(lambda: agent.meeting is not None, 5, what="joined")
        await chair.send("remove", endpoint_id=a_id)
        await until(lambda: agent.meeting is None and agent.want is None, 5, what="out of the meeting")
        agent.conn._ws and await agent.conn._ws.close()  # even after a reconnect it stays out
        await until(lambda: agent.conn.connects == 2, 10, what="reconnected")
        await until(lambda: meeting["id"] in agent.open_meetings, 5, what="meeting listed again")
        assert agent.meeting is None and agent.want is None
        assert a_id not in await live_ids(node, meeting["id"])
        assert "(removed by the chair)" in (tmp_path / a_id / "agent.log").read_text(encoding="utf-8")
    finally:
        await agent.stop()
        await chair.close()
