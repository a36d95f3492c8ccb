"""Liveness that load cannot fake (#18), against a real redis-server.

A node process blocks its own event loop with CPU-bound work for 2.5 x its TTL: its heartbeat
thread keeps it listed the whole time (what an observer on another connection sees every 50 ms).
Killed with -9, it leaves the list within the TTL. A loop wedged past the stall limit stops the beat
(the node drops out) and the beat resumes once the loop runs again. ``stop`` ends the thread and
deregisters for good.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
import uuid
from typing import AsyncIterator

import pytest

from signaling.cluster.registry import NodeRegistry
from signaling.store import RedisStore
from tests.signaling.cluster.beating_node import KEY
from tests.support.waiting import until_async

pytestmark = pytest.mark.integration

TTL_S, BEAT_S = 1.0, 0.2
POLL_S = 0.05


async def node_process(redis_url: str, prefix: str, stall_s: float, block_s: float) -> asyncio.subprocess.Process:
    args = [redis_url, prefix, "busy-node", str(TTL_S), str(BEAT_S), str(stall_s), str(block_s)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.signaling.cluster.beating_node", *args, stdout=asyncio.subprocess.PIPE
    )
    return proc


async def line(proc: asyncio.subprocess.Process, want: str, timeout: float = 20.0) -> None:
    assert proc.stdout is not None
    got = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode().strip()
    assert got == want, f"node process said {got!r}, expected {want!r}"


async def listed(observer: NodeRegistry) -> dict | None:
    observer._cache.clear()  # every poll reads the store
    return (await observer.signaling_nodes()).get("busy-node")


@pytest.fixture
async def observer(redis_url: str) -> AsyncIterator[NodeRegistry]:
    store = RedisStore(redis_url, prefix=f"gbtest-{uuid.uuid4().hex[:8]}:")
    await store.start()
    yield NodeRegistry(store, "observer", key=KEY)  # checks signatures; never started: it only reads
    await store.stop()


async def watch(proc: asyncio.subprocess.Process, observer: NodeRegistry, until_line: str) -> list[dict | None]:
    """Poll the list every POLL_S until the process prints ``until_line``."""
    assert proc.stdout is not None
    said = asyncio.ensure_future(proc.stdout.readline())
    seen: list[dict | None] = []
    while not said.done():
        seen.append(await listed(observer))
        await asyncio.sleep(POLL_S)
    assert (await said).decode().strip() == until_line
    return seen


async def test_saturated_loop_stays_listed_and_killed_node_drops_within_ttl(redis_url, observer) -> None:
    block_s = 2.5 * TTL_S
    proc = await node_process(redis_url, observer.store.prefix, stall_s=10.0, block_s=block_s)
    try:
        await line(proc, "ready")
        await line(proc, "blocking")
        started = time.monotonic()
        seen = await watch(proc, observer, "free")
        assert time.monotonic() - started >= block_s - 0.1  # the loop really was blocked that long
        assert len(seen) > 20 and all(entry is not None for entry in seen), seen
        ages = [round(e["seen"] - seen[0]["seen"], 2) for e in seen if e]  # renewed during the block
        assert ages[-1] >= block_s - 2 * BEAT_S, ages

        proc.send_signal(signal.SIGKILL)
        gone_after = await until_async(lambda: listed_none(observer), timeout=3 * TTL_S, step=POLL_S)
        assert gone_after <= TTL_S + 2 * POLL_S, gone_after
        stamps = sorted({e["seen"] for e in seen if e})
        widest = max(b - a for a, b in zip(stamps, stamps[1:]))
        print(
            f"loop blocked {block_s} s (TTL {TTL_S} s): listed at {len(seen)}/{len(seen)} polls, widest gap "
            f"between renewals {widest:.2f} s; killed: gone after {gone_after:.2f} s"
        )
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def listed_none(observer: NodeRegistry) -> bool:
    return await listed(observer) is None


async def test_wedged_loop_stops_the_beat_and_a_running_loop_resumes_it(redis_url, observer) -> None:
    stall_s, block_s = 1.0, 4.0  # wedged well past stall + TTL
    proc = await node_process(redis_url, observer.store.prefix, stall_s=stall_s, block_s=block_s)
    try:
        await line(proc, "ready")
        await line(proc, "blocking")
        seen = await watch(proc, observer, "free")
        gaps = [i for i, entry in enumerate(seen) if entry is None]
        assert gaps, "a wedged node stayed listed"
        assert gaps[0] * POLL_S >= stall_s  # not before the stall limit
        await until_async(lambda: listed_some(observer), timeout=2.0, step=POLL_S)  # beats again
    finally:
        proc.kill()
        await proc.wait()


async def listed_some(observer: NodeRegistry) -> bool:
    return await listed(observer) is not None


async def test_stop_ends_the_thread_and_the_entry_stays_gone(redis_url, observer) -> None:
    store = RedisStore(redis_url, prefix=observer.store.prefix)
    await store.start()
    try:
        node = NodeRegistry(store, "busy-node", key=KEY, ttl_s=TTL_S, heartbeat_s=BEAT_S)
        await node.start()
        assert await listed(observer) is not None
        assert any(t.name == "node-heartbeat:busy-node" for t in threading.enumerate())
        await node.stop()
        assert not any(t.name == "node-heartbeat:busy-node" for t in threading.enumerate())
        assert await listed(observer) is None
        await asyncio.sleep(TTL_S + 2 * BEAT_S)  # a thread still running would have written it back
        assert await listed(observer) is None
    finally:
        await store.stop()
