import pytest

from mcu.node import LocalMediaNode


@pytest.fixture
async def nodes():
    """An origin and an edge node in one process; the edge reaches the origin through its
    origin_factory (real UDP/DTLS/SRTP between the two on 127.0.0.1)."""
    origin = LocalMediaNode("origin", ice_host="127.0.0.1")
    edge = LocalMediaNode("edge", ice_host="127.0.0.1")
    await origin.start()
    await edge.start()
    asked: list[dict] = []

    def factory(info: dict):
        asked.append(info)
        assert info["node_id"] == "origin"
        return origin

    edge.origin_factory = factory
    edge.asked = asked
    try:
        yield origin, edge
    finally:
        await edge.stop()
        await origin.stop()
