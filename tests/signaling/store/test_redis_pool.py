"""The Redis store under a herd (#18): subscriptions share one connection and leave the request
pool alone; a pool that stays dry answers StoreBusy (retry after a few seconds), not a failure.

Each test runs its own redis-server so that the connections it counts are the store's own.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from signaling.store import RedisStore, StoreError
from signaling.store.base import StoreBusy
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

SUBSCRIPTIONS = 200
POOL = 4


async def connected_clients(url: str) -> int:
    probe = aioredis.Redis.from_url(url)
    try:
        info = await probe.info("clients")
        return int(info["connected_clients"]) - 1  # less the probe itself
    finally:
        await probe.aclose()


async def test_many_subscriptions_and_requests_on_a_small_pool() -> None:
    with RedisServer() as server:
        store = RedisStore(server.url, pool_size=POOL, pool_wait_s=2.0)
        await store.start()
        try:
            # 200 subscribers on 100 channels (two per channel, as two sessions of one meeting)
            subs = await asyncio.gather(*(store.subscribe(f"ch{i % 100}") for i in range(SUBSCRIPTIONS)))
            # 300 requests at once on 4 connections: they queue for the pool, none fails
            results = await asyncio.gather(
                *(store.put("docs", f"k{i}", {"i": i}) for i in range(150)),
                *(store.get("docs", f"k{i}") for i in range(150)),
            )
            assert len(results) == 300
            assert len(await store.list("docs")) == 150
            assert await connected_clients(server.url) <= POOL + 1  # the request pool + one pub/sub

            await asyncio.gather(*(store.publish(f"ch{i}", {"n": i}) for i in range(100)))
            got = await asyncio.gather(*(sub.get(timeout=5) for sub in subs))
            assert got == [{"n": i % 100} for i in range(SUBSCRIPTIONS)]

            # the last subscriber of a channel leaving unsubscribes it; the others still hear
            await asyncio.gather(*(sub.stop() for sub in subs[:100]))
            await store.publish("ch7", {"after": 1})
            assert await subs[107].get(timeout=5) == {"after": 1}
            await asyncio.gather(*(sub.stop() for sub in subs[100:]))
            probe = aioredis.Redis.from_url(server.url, decode_responses=True)
            assert await probe.pubsub_channels() == []  # nothing left subscribed at Redis
            await probe.aclose()
        finally:
            await store.stop()


async def test_dry_pool_answers_busy_with_retry_after() -> None:
    with RedisServer() as server:
        store = RedisStore(server.url, pool_size=1, pool_wait_s=0.3)
        await store.start()
        try:
            pool = store._redis().connection_pool
            held = await pool.get_connection()  # what a long request would do: the only connection
            started = time.monotonic()
            with pytest.raises(StoreBusy) as info:
                await store.get("docs", "k")
            assert 0.25 < time.monotonic() - started < 2.0
            assert isinstance(info.value, StoreError)  # callers that catch StoreError still do
            assert 1 <= info.value.retry_after_s <= 3
            assert "busy" in str(info.value) and f"127.0.0.1:{server.port}" in str(info.value)

            sub = await store.subscribe("ch")  # subscribing needs no pooled connection
            await pool.release(held)
            await store.publish("ch", {"ok": True})  # the pool is free again
            assert await sub.get(timeout=5) == {"ok": True}
        finally:
            await store.stop()


async def test_lost_pubsub_connection_ends_subscriptions_and_the_next_one_works() -> None:
    with RedisServer() as server:
        store = RedisStore(server.url)
        await store.start()
        try:
            sub = await store.subscribe("ch")
            probe = aioredis.Redis.from_url(server.url)
            await probe.client_kill_filter(_type="pubsub")
            assert await sub.get(timeout=10) is None  # ended, not hanging
            again = await store.subscribe("ch")
            await probe.publish("gb:ch:ch", '{"x":1}')
            assert await again.get(timeout=5) == {"x": 1}
            await probe.aclose()
        finally:
            await store.stop()


async def test_subscribers_coming_and_going_on_one_channel(redis_url: str) -> None:
    """Sessions of one meeting join and leave at once: SUBSCRIBE/UNSUBSCRIBE interleave on the
    shared connection; every subscribe() that returned hears what is published after it."""
    store = RedisStore(redis_url, prefix="gbtest-churn:")
    await store.start()
    try:

        async def one(i: int) -> dict | None:
            sub = await store.subscribe("meeting")
            await store.publish("meeting", {"from": i})
            while (msg := await sub.get(timeout=5)) is not None and msg != {"from": i}:
                pass
            await sub.stop()
            return msg

        got = await asyncio.gather(*(one(i) for i in range(100)))
        assert got == [{"from": i} for i in range(100)]
    finally:
        await store.stop()


async def test_a_subscribe_cancelled_midway_leaves_the_next_one_whole(redis_url: str) -> None:
    """A join cancelled while its SUBSCRIBE is unconfirmed, then another at once on that channel:
    the second returns only after its own confirmation, and hears what follows."""
    store = RedisStore(redis_url, prefix="gbtest-cancel:")
    await store.start()
    try:
        for round_ in range(20):
            first = asyncio.ensure_future(store.subscribe("ch"))
            for _ in range(round_ % 4):  # cancelled at different points of the way
                await asyncio.sleep(0)
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            if not first.cancelled():
                await first.result().stop()
            second = await store.subscribe("ch")
            await store.publish("ch", {"round": round_})
            assert await second.get(timeout=5) == {"round": round_}
            await second.stop()
    finally:
        await store.stop()
