"""Closing an aiortc RTCPeerConnection without waiting forever: a close whose transports never
finish (seen under load at teardown) must not hold up a peer, an agent or a node that stops."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("mcu.pcclose")
CLOSE_TIMEOUT_S = 5.0


async def close_pc(pc: Any, what: str) -> None:
    try:
        await asyncio.wait_for(pc.close(), CLOSE_TIMEOUT_S)
    except asyncio.TimeoutError:
        log.warning("peer connection of %s did not close within %g s; dropped", what, CLOSE_TIMEOUT_S)
    except Exception as exc:  # aiortc teardown quirks (a second close, a transport already gone)
        log.debug("closing the peer connection of %s: %s", what, exc)
