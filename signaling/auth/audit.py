"""Audit trail: who changed what, when — every operator/chair mutation over REST or WebSocket.

One append-only store log per day (``audit:YYYY-MM-DD``, Vietnam date) keeps each log small and
lets retention drop whole days.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from signaling.store.base import Store

log = logging.getLogger("giaoban.audit")
VN = timezone(timedelta(hours=7))


def day_key(ts: float) -> str:
    return "audit:" + datetime.fromtimestamp(ts, VN).strftime("%Y-%m-%d")


async def record(store: Store, who: Any, action: str, target: str = "", **detail: Any) -> None:
    """Append one entry; a failing audit write is logged, never turned into a user error."""
    now = time.time()
    entry = {
        "at": round(now, 3),
        "who": f"{who.kind}:{who.id}",
        "name": who.name,
        "action": action,
        "target": target,
        **detail,
    }
    try:
        await store.append(day_key(now), entry)
    except Exception:
        log.exception("audit write failed", extra={"action": action})
