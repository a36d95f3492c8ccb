"""Canonical JSON and name checks shared by every store backend.

Both backends store and compare the same canonical text (UTF-8, ``ensure_ascii=False``, sorted
keys, no spaces), so ``compare_and_put`` means the same thing on SQLite and on Redis.
"""

from __future__ import annotations

import json
from typing import Any

from signaling.store.base import Doc, StoreError


def dumps(doc: Any) -> str:
    """Canonical JSON text of ``doc``; ValueError/TypeError for values JSON cannot carry."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(text: str | bytes) -> Doc:
    try:
        value = json.loads(text)
    except ValueError as exc:  # a value written by something else than a store
        raise StoreError(f"corrupt value in store: {exc}") from exc
    if not isinstance(value, dict):
        raise StoreError(f"corrupt value in store: expected a JSON object, got {type(value).__name__}")
    return value


def encode_doc(doc: Doc) -> str:
    if not isinstance(doc, dict):
        raise TypeError(f"a stored document must be a dict, got {type(doc).__name__}")
    return dumps(doc)


def check_name(what: str, name: str) -> str:
    """Collection, key, log, lock and channel names: non-empty strings without NUL."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"{what} must be a non-empty string without NUL, got {name!r}")
    return name


def check_ttl(ttl_s: float) -> float:
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be > 0 seconds, got {ttl_s!r}")
    return float(ttl_s)


def check_step(by: int) -> int:
    """The step of ``incr_ephemeral``: an int (bool and float refused, so counts stay exact)."""
    if not isinstance(by, int) or isinstance(by, bool):
        raise TypeError(f"by must be an int, got {type(by).__name__}")
    return by


def counter_value(text: str | None) -> int:
    """The count of a stored counter document; 0 for none or for a document that is no counter."""
    if text is None:
        return 0
    count = loads(text).get("count")
    return count if isinstance(count, int) and not isinstance(count, bool) else 0
