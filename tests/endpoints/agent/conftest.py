import pytest

from tests.support.harness import start_node


@pytest.fixture
async def mnode(tmp_path):
    """A whole server node with the in-process media node (ICE pinned to 127.0.0.1)."""
    n = await start_node(tmp_path / "data", media="local", ice_host="127.0.0.1")
    yield n
    await n.stop()
