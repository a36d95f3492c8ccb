"""Whole-chain fixtures: a server node with the in-process media node, and the browser fixtures
of tests/web (Debian's chromium driven by playwright; skipped where either is missing)."""

from __future__ import annotations

import pytest

from tests.support.harness import start_node
from tests.web.conftest import browser, page  # noqa: F401  (fixtures shared with the page tests)


@pytest.fixture
async def mnode(tmp_path):
    """A whole server node with the in-process media node (ICE pinned to 127.0.0.1)."""
    n = await start_node(tmp_path / "data", media="local", ice_host="127.0.0.1")
    yield n
    await n.stop()
