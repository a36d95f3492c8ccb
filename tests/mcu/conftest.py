"""The media node on its own, without signaling (the root conftest's nodes are signaling nodes)."""

import pytest

from mcu.node import LocalMediaNode


@pytest.fixture
async def local_media_node():
    """A started LocalMediaNode with ICE pinned to 127.0.0.1."""
    n = LocalMediaNode(ice_host="127.0.0.1")
    await n.start()
    try:
        yield n
    finally:
        await n.stop()
