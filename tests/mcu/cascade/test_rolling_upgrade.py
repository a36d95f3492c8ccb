"""Rolling upgrade of the down lines (one per codec and role): an edge of this version under an
origin of the version before, and the reverse, still bring an origin camera to the edge's
viewers (real aiortc peers on 127.0.0.1; the other version's line rules patched in)."""

from __future__ import annotations

import pytest

from mcu.cascade.lines import DOWN, TrunkLines
from mcu.peer.cascade_sdp import CASCADE_CONTENT
from tests.mcu.cascade.helpers import cascade_peers
from tests.mcu.cascade.test_codecs import H264_SHADE, shows, viewer
from tests.support.media_clients import Client, PatternTrack

pytestmark = pytest.mark.integration


async def origin_camera_seen_on_edge(origin, edge) -> list:
    """An H.264 camera at the origin, decoded by an H.264 and a VP8 viewer on the edge; returns the
    roles of the origin's outputs on the trunk."""
    publisher = Client(
        origin, "m", "o-h264", video=PatternTrack(H264_SHADE), recv_video=False, recv_audio=False, video_codecs=["H264"]
    )
    subs = [viewer(edge, "edge-h264", "H264", edge=True), viewer(edge, "edge-vp8", "VP8", edge=True)]
    try:
        for client in (publisher, *subs):
            await client.join()
        for node in (origin, edge):
            await node.set_floor("m", "o-h264")
        for client in subs:
            assert await shows(client, H264_SHADE), client.spec.endpoint_id
        (cascade,) = cascade_peers(origin, "m")
        return sorted(o.role for o in cascade.outputs.values() if o.kind == "video")
    finally:
        for client in (*subs, publisher):
            await client.close()


async def test_a_new_edge_under_an_origin_of_the_version_before(nodes, monkeypatch):
    # the origin before: a=content picked only composite/mix for a cascade
    monkeypatch.setattr("mcu.peer.lines.cascade_role", lambda c: c if c in CASCADE_CONTENT else None)
    origin, edge = nodes
    # the first pair is served as before, the other codec's pair stays unrouted
    assert await origin_camera_seen_on_edge(origin, edge) == ["extra", "extra", "main", "slides"]


async def test_an_edge_of_the_version_before_under_a_new_origin(nodes, monkeypatch):
    # the edge before: one main and one slides line, in its first codec, without a=content
    monkeypatch.setattr(TrunkLines, "down_codecs", property(lambda self: [self.video_codec]))
    monkeypatch.setattr(
        TrunkLines, "_down_content", lambda self, t, role: "" if role in ("main", "slides") else DOWN[role][2]
    )
    origin, edge = nodes
    assert await origin_camera_seen_on_edge(origin, edge) == ["main", "slides"]
