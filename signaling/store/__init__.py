"""State store: one interface (``base.Store``), an embedded SQLite backend, a Redis backend.

``open_store(url)`` picks the backend from a URL:

* ``sqlite:///abs/path.db`` or ``sqlite:/abs/path.db``  -> SqliteStore on an absolute path
* ``sqlite:relative/path.db``                           -> SqliteStore, relative to the cwd
* ``redis://host:port/db`` (also ``rediss://``, ``unix://``) -> RedisStore (prefix ``gb:``)
"""

from __future__ import annotations

from signaling.store.base import Doc, Store, StoreBusy, StoreError, Subscription
from signaling.store.redis_store import POOL_SIZE, POOL_WAIT_S, RedisStore
from signaling.store.sqlite_store import SqliteStore

__all__ = ["Doc", "Store", "StoreBusy", "StoreError", "Subscription", "SqliteStore", "RedisStore", "open_store"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_store(url: str, *, pool_size: int = POOL_SIZE, pool_wait_s: float = POOL_WAIT_S) -> Store:
    """A not-yet-started store for ``url``; ValueError when the URL names no known backend.
    ``pool_size``/``pool_wait_s``: the Redis request pool (settings store_pool_size/_wait_s)."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("store URL is empty; use sqlite:<path> or redis://host:port/db")
    if url.startswith("sqlite:"):
        return SqliteStore(_sqlite_path(url))
    if url.startswith(_REDIS_SCHEMES):
        return RedisStore(url, pool_size=pool_size, pool_wait_s=pool_wait_s)
    raise ValueError(
        f"unsupported store URL {url!r}: use sqlite:<path> (sqlite:///abs/path.db, "
        f"sqlite:relative/path.db) or redis://host:port/db"
    )


def _sqlite_path(url: str) -> str:
    rest = url[len("sqlite:") :]
    if rest.startswith("//"):  # URL form: sqlite://<host>/<path>, and only an empty host makes sense
        rest = rest[2:]
        if not rest.startswith("/"):
            raise ValueError(f"bad SQLite URL {url!r}: use sqlite:///abs/path.db or sqlite:relative/path.db")
    if not rest or rest.endswith("/"):
        raise ValueError(f"bad SQLite URL {url!r}: it names no database file")
    return rest
