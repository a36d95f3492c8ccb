"""Stopping without waiting forever: an aiortc RTCPeerConnection whose transports never finish
closing, or a task that never ends (both seen at teardown under load), must not hold up a peer,
an agent or a node that stops."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable

log = logging.getLogger("mcu.bounded_stop")
CLOSE_TIMEOUT_S = 5.0


async def close_pc(pc: Any, what: str) -> None:
    try:
        await asyncio.wait_for(pc.close(), CLOSE_TIMEOUT_S)
    except asyncio.TimeoutError:
        log.warning("peer connection of %s did not close within %g s; dropped", what, CLOSE_TIMEOUT_S)
    except Exception as exc:  # aiortc teardown quirks (a second close, a transport already gone)
        log.debug("closing the peer connection of %s: %s", what, exc)


async def cancel_and_wait(tasks: Iterable[asyncio.Task | None], what: str) -> None:
    """Cancel ``tasks`` and wait for them, but not forever: on Python 3.11 a task can lose its
    cancellation (a wait_for whose inner future finished at the same moment) and run on."""
    pending = [t for t in tasks if t is not None]
    for task in pending:
        task.cancel()
    if pending:
        _, left = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
        if left:
            log.warning("%d task(s) of %s did not stop within %g s", len(left), what, CLOSE_TIMEOUT_S)
