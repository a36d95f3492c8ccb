"""A node process for the liveness tests (#18): a NodeRegistry on a RedisStore with a short TTL,
whose event loop it then blocks with CPU-bound work, as a herd would.

    python -m tests.signaling.cluster.beating_node URL PREFIX NODE_ID TTL_S HEARTBEAT_S STALL_S BLOCK_S

Prints "ready" once listed, "blocking" just before the loop is blocked for BLOCK_S seconds, "free"
after; then runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
import time

from signaling.cluster.registry import NodeRegistry
from signaling.store import RedisStore

KEY = b"liveness-test-key-32-bytes-long!"


def say(word: str) -> None:
    print(word, flush=True)


def burn(seconds: float) -> None:
    """CPU-bound work on the loop's thread: no await, no sleep, nothing else runs."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += sum(i * i for i in range(1000))


async def main(
    url: str, prefix: str, node_id: str, ttl_s: float, heartbeat_s: float, stall_s: float, block_s: float
) -> None:
    store = RedisStore(url, prefix=prefix)
    await store.start()
    registry = NodeRegistry(store, node_id, key=KEY, ttl_s=ttl_s, heartbeat_s=heartbeat_s, stall_s=stall_s)
    await registry.start()
    say("ready")
    await asyncio.sleep(2 * heartbeat_s)
    say("blocking")
    burn(block_s)
    say("free")
    await asyncio.Event().wait()


if __name__ == "__main__":
    url, prefix, node_id, *numbers = sys.argv[1:]
    ttl, beat, stall, block = (float(x) for x in numbers)
    asyncio.run(main(url, prefix, node_id, ttl, beat, stall, block))
