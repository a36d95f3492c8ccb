"""Shared fixtures: a real redis-server started by the tests, and whole signaling nodes."""

from __future__ import annotations

import asyncio
import os

import pytest
import uvloop

from tests.support.harness import start_node
from tests.support.layers import layer_of, start_nothing, unit_test_started
from tests.support.redis_server import RedisServer

# Nodes on one Redis need one node key (settings.node_key, never in the store); the nodes these
# tests start, in this process or as `giaoban serve` children, share this one.
os.environ.setdefault("GIAOBAN_NODE_KEY", "test-node-key-" + "0123456789abcdef" * 2)


# Tests run on the event loop production runs: `giaoban serve` installs uvloop (signaling/cli.py).
# GIAOBAN_TEST_LOOP=asyncio runs them on the default loop instead, to tell a loop's bug from ours.
LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
TEST_LOOP = os.environ.get("GIAOBAN_TEST_LOOP", "uvloop")
if TEST_LOOP not in LOOPS:
    raise pytest.UsageError(f"GIAOBAN_TEST_LOOP={TEST_LOOP!r}: use one of {', '.join(LOOPS)}")


def pytest_asyncio_loop_factories(config, item):
    """Every test on TEST_LOOP; a test that needs a given loop names it with pytest-asyncio's own
    ``@pytest.mark.asyncio(loop_factories=["asyncio"])``, which picks from all of them."""
    marker = item.get_closest_marker("asyncio")
    if marker is not None and "loop_factories" in marker.kwargs:
        return LOOPS
    return {TEST_LOOP: LOOPS[TEST_LOOP]}


def pytest_report_header(config):
    return f"event loop: {TEST_LOOP} (GIAOBAN_TEST_LOOP)"


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


@pytest.fixture
async def mnode(tmp_path):
    """A whole server node with the in-process media node, ICE pinned to 127.0.0.1 (what browsers
    and agents on this machine reach)."""
    n = await start_node(tmp_path / "data", media="local", ice_host="127.0.0.1")
    yield n
    await n.stop()


def pytest_collection_modifyitems(config, items):
    """Mark every test with its layer (rules in tests/support/layers.py): ``pytest -m unit`` is the fast one."""
    for item in items:
        item.add_marker(layer_of(item))


CALL_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[CALL_PASSED] = report.passed
    return report


@pytest.fixture(autouse=True)
def unit_tests_start_nothing(request):
    """A test marked unit fails if it binds or connects a socket or starts a process (tests/support/layers.py)."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    with start_nothing(request.node.nodeid) as offences:
        yield
    if offences and request.node.stash.get(CALL_PASSED, False):  # it passed by catching the error
        pytest.fail(unit_test_started(request.node.nodeid, offences[0]))
