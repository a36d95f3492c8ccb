"""Waiting in tests for something that happens on its own time (a peer connects, a node notices),
polling on the running loop, with a deadline that fails the test with what was awaited."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable


async def until(predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.05, what: str = "") -> float:
    """Wait until ``predicate()`` is true; returns the seconds it took."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout} s: {what or predicate}")
        await asyncio.sleep(step)
    return time.monotonic() - t0


async def until_async(
    predicate: Callable[[], Awaitable[Any]], timeout: float = 10.0, step: float = 0.1, what: str = ""
) -> float:
    """``until`` for a predicate that is a coroutine function (it asks a node over HTTP, say)."""
    t0 = time.monotonic()
    while not await predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout} s: {what or predicate}")
        await asyncio.sleep(step)
    return time.monotonic() - t0
