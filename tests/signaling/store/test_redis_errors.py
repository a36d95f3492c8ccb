"""RedisStore turns connection problems into StoreError naming the server."""

from __future__ import annotations

import pytest

from signaling.store import RedisStore, StoreError
from tests.support.redis_server import RedisServer, free_port


@pytest.mark.integration
async def test_refused_port_names_address() -> None:
    port = free_port()  # nothing listens there
    store = RedisStore(f"redis://127.0.0.1:{port}/0", connect_timeout_s=2)
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
        await store.start()
    with pytest.raises(StoreError, match="not started"):
        await store.get("c", "k")
    await store.stop()


async def test_bad_url_is_store_error() -> None:
    store = RedisStore("redis://127.0.0.1:notaport/0")
    with pytest.raises(StoreError, match="127.0.0.1:notaport"):
        await store.start()


@pytest.mark.integration
async def test_password_is_not_shown() -> None:
    port = free_port()
    store = RedisStore(f"redis://user:s3cret@127.0.0.1:{port}/0", connect_timeout_s=2)
    with pytest.raises(StoreError) as info:
        await store.start()
    assert "s3cret" not in str(info.value)
    assert f"127.0.0.1:{port}" in str(info.value)


@pytest.mark.integration
async def test_server_lost_mid_use() -> None:
    with RedisServer() as server:
        store = RedisStore(server.url)
        await store.start()
        await store.put("c", "k", {"v": 1})
        sub = await store.subscribe("events")
        server.stop()
        with pytest.raises(StoreError, match=f"127.0.0.1:{server.port}"):
            await store.get("c", "k")
        assert await sub.get(timeout=5) is None  # the subscription ends instead of hanging
        await store.stop()


@pytest.mark.integration
async def test_prefix_isolates_stores(redis_url: str) -> None:
    a, b = RedisStore(redis_url, prefix="gbtest-a:"), RedisStore(redis_url, prefix="gbtest-b:")
    await a.start()
    await b.start()
    try:
        await a.put("c", "k", {"from": "a"})
        assert await b.get("c", "k") is None
        sub = await b.subscribe("ch")
        await a.publish("ch", {"x": 1})
        assert await sub.get(timeout=0.2) is None
    finally:
        await a.stop()
        await b.stop()
