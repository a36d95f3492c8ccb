"""Shared fixtures: a real redis-server started by the tests, and whole signaling nodes."""

from __future__ import annotations

import pytest

from tests.harness import start_node
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_url():
    with RedisServer() as server:
        yield server.url


@pytest.fixture
async def node(tmp_path):
    n = await start_node(tmp_path / "data")
    yield n
    await n.stop()
