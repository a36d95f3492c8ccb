"""A node whose Redis request pool is dry tells its clients "busy, retry", never "internal" (#18).

A real node on a real redis-server with a 2-connection pool; the test holds both connections, as
a herd of slow requests would. A REST client then reads 503, code "busy", a Retry-After header and
``retry_after`` in the body; a WebSocket client's join gets an error with code "busy" and
``retry_after``. Once the pool is free the same requests succeed.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.harness import WsClient, start_node
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


async def drain(pool: Any, n: int) -> list[Any]:
    return [await pool.get_connection() for _ in range(n)]


async def test_dry_pool_is_busy_with_retry_after_for_rest_and_ws(tmp_path) -> None:
    with RedisServer() as server:
        node = await start_node(tmp_path / "n", store=server.url, store_pool_size=2, store_pool_wait_s=0.3)
        try:
            d = node.ctx.directory
            district = d.get("hg-meo-vac").id
            meeting = await node.schedule(chair=district, invited=["tree:hg-meo-vac"])
            chair = await WsClient.connect(node, await node.endpoint_token(district))
            await chair.expect("welcome")

            pool = node.ctx.store._redis().connection_pool
            held = await drain(pool, 2)
            try:
                async with node.http.get(
                    node.url + "/api/v1/meetings", headers={"Authorization": f"Bearer {node.operator_token}"}
                ) as resp:
                    body = await resp.json()
                    assert resp.status == 503, body
                    assert body["error"]["code"] == "busy"
                    assert 1 <= body["error"]["retry_after"] <= 3
                    assert resp.headers["Retry-After"] == str(body["error"]["retry_after"])
                    assert body["error"]["message"].startswith("Máy chủ đang bận")

                ref = await chair.send("join", meeting_id=meeting["id"])
                error = await chair.expect("error", ref=ref)
                assert error["code"] == "busy" and 1 <= error["retry_after"] <= 3, error
            finally:
                for conn in held:
                    await pool.release(conn)

            status, _ = await node.call("GET", "/api/v1/meetings")
            assert status == 200
            await chair.send("join", meeting_id=meeting["id"])
            assert (await chair.expect("joined"))["role"] == "chair"
            await chair.close()
        finally:
            await node.stop()
