"""Fixtures for the store tests: a started store of each backend; the Redis ones on the session's
redis-server (tests/conftest.py), kept apart by unique key prefixes."""

from __future__ import annotations

import uuid
from typing import AsyncIterator

import pytest

from signaling.store import RedisStore, SqliteStore, Store

# The Redis runs use a redis-server: integration; a SQLite file on tmp_path is a unit test's store.
BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.integration)]


def make_store(kind: str, tmp_path, redis_url: str) -> Store:
    if kind == "sqlite":
        return SqliteStore(tmp_path / "store.db")
    return RedisStore(redis_url, prefix=f"gbtest-{uuid.uuid4().hex[:8]}:")


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path) -> AsyncIterator[Store]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    s = make_store(request.param, tmp_path, redis_url)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture(params=BACKENDS)
async def store_pair(request, tmp_path) -> AsyncIterator[tuple[Store, Store]]:
    """Two started stores sharing state (same file / same Redis prefix), like two callers or nodes."""
    if request.param == "sqlite":
        a, b = SqliteStore(tmp_path / "store.db"), SqliteStore(tmp_path / "store.db")
    else:
        url, prefix = request.getfixturevalue("redis_url"), f"gbtest-{uuid.uuid4().hex[:8]}:"
        a, b = RedisStore(url, prefix=prefix), RedisStore(url, prefix=prefix)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()
