"""The bounded subscription queue: the oldest messages are dropped and counted on overflow."""

from __future__ import annotations

import asyncio

from signaling.store import SqliteStore
from signaling.store.pubsub_local import QueueSubscription


async def _nothing(_sub: QueueSubscription) -> None:
    return None


async def test_overflow_drops_oldest_and_counts() -> None:
    sub = QueueSubscription("ch", _nothing, maxsize=3)
    for n in range(5):
        sub.deliver({"n": n})
    assert sub.dropped == 2
    assert [(await sub.get(timeout=1))["n"] for _ in range(3)] == [2, 3, 4]
    assert await sub.get(timeout=0.05) is None


async def test_slow_subscriber_does_not_block_publisher(tmp_path) -> None:
    store = SqliteStore(tmp_path / "s.db", queue_size=10)
    await store.start()
    slow, fast = await store.subscribe("ch"), await store.subscribe("ch")
    for n in range(25):
        await store.publish("ch", {"n": n})
        assert (await fast.get(timeout=1))["n"] == n
    assert slow.dropped == 15  # type: ignore[attr-defined]
    assert (await slow.get(timeout=1))["n"] == 15
    await store.stop()


async def test_stop_wakes_waiting_get() -> None:
    stopped: list[QueueSubscription] = []

    async def on_stop(sub: QueueSubscription) -> None:
        stopped.append(sub)

    sub = QueueSubscription("ch", on_stop)
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0.01)
    await sub.stop()
    await sub.stop()
    assert await asyncio.wait_for(waiter, 1) is None
    assert stopped == [sub]  # the backend is told once
    sub.deliver({"late": True})
    assert await sub.get(timeout=0.05) is None
