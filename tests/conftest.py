"""Shared fixtures: a real redis-server started by the tests, and whole signaling nodes."""

from __future__ import annotations

import os

import pytest

from tests.support.harness import start_node
from tests.support.layers import layer_of
from tests.support.redis_server import RedisServer

# Nodes on one Redis need one node key (settings.node_key, never in the store); the nodes these
# tests start, in this process or as `giaoban serve` children, share this one.
os.environ.setdefault("GIAOBAN_NODE_KEY", "test-node-key-" + "0123456789abcdef" * 2)


@pytest.fixture(scope="session")
def redis_url():
    with RedisServer() as server:
        yield server.url


@pytest.fixture
async def node(tmp_path):
    n = await start_node(tmp_path / "data")
    yield n
    await n.stop()


@pytest.fixture
async def media_node(tmp_path):
    """A node with its own media node (media: local)."""
    n = await start_node(tmp_path / "data", media="local")
    yield n
    await n.stop()


def pytest_collection_modifyitems(config, items):
    """Mark every test with its layer (tests/support/layers.py): ``pytest -m unit`` is the fast one."""
    for item in items:
        item.add_marker(layer_of(item))
