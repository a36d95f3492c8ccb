import pytest

from mcu.node import LocalMediaNode


@pytest.fixture
async def node():
    n = LocalMediaNode(ice_host="127.0.0.1")
    await n.start()
    try:
        yield n
    finally:
        await n.stop()
