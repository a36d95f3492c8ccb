"""VP8 and H.264 over a cascade trunk: an edge's camera goes up in its own codec, and every
subscriber on either node decodes it, whichever codec it takes (real aiortc peers on 127.0.0.1)."""

from __future__ import annotations

import pytest

from mcu.bridge.transcode import TranscodePool
from mcu.cascade.trunk import CascadeTrunk
from mcu.sfu.subscriber import BASELINE
from tests.mcu.cascade.helpers import cascade_peers, edge_client
from tests.support.media_clients import Client, PatternTrack, wait_for

pytestmark = pytest.mark.integration

H264_SHADE, VP8_SHADE = 200, 60


async def shows(client: Client, shade: int) -> bool:
    """The client's latest decoded pictures have the publisher's colour."""
    return await wait_for(
        lambda: len(client.video_frames()) >= 6 and all(abs(x - shade) < 30 for _, x in client.video_frames()[-3:]),
        timeout=20,
    )


def viewer(node, endpoint: str, codec: str, *, edge: bool = False) -> Client:
    make = edge_client if edge else Client
    return make(node, "m", endpoint, publish=False, recv_audio=False, video_codecs=[codec])


def up_camera(edge) -> object:
    """The trunk's up-camera output carrying media now."""
    trunk = edge.meetings["m"].extension(CascadeTrunk)
    return next(o for o in trunk.lines.outputs.values() if o.role == "up-camera" and o.source is not None)


async def test_edge_publishers_reach_subscribers_of_either_codec_on_both_nodes(nodes):
    origin, edge = nodes
    h264 = edge_client(
        edge, "m", "xa-h264", video=PatternTrack(H264_SHADE), recv_video=False, recv_audio=False, video_codecs=["H264"]
    )
    vp8 = edge_client(
        edge, "m", "xa-vp8", video=PatternTrack(VP8_SHADE), recv_video=False, recv_audio=False, video_codecs=["VP8"]
    )
    subs = {
        "origin-vp8": viewer(origin, "origin-vp8", "VP8"),
        "origin-h264": viewer(origin, "origin-h264", "H264"),
        "edge-vp8": viewer(edge, "edge-vp8", "VP8", edge=True),
        "edge-h264": viewer(edge, "edge-h264", "H264", edge=True),
    }
    try:
        for client in (h264, vp8, *subs.values()):
            await client.join()
        for node in (origin, edge):  # signaling sets the floor on the origin and every edge
            await node.set_floor("m", "xa-h264")
        for name, client in subs.items():
            assert await shows(client, H264_SHADE), name

        # the H.264 camera went up untouched, under H.264's payload type, labelled H.264 at the origin
        up = up_camera(edge)
        published = next(s for s in edge.meetings["m"].peers["xa-h264"].streams.values() if s.kind == "video")
        assert up.source is published and up.pt == up.payload_types["H264"][0]
        (cascade,) = cascade_peers(origin, "m")
        peers = origin.meetings["m"].peers
        main = {
            ep: next(o for o in peers[ep].outputs.values() if o.role == "main") for ep in ("origin-vp8", "origin-h264")
        }
        arrived = main["origin-h264"].source
        assert arrived.codec == "H264" and arrived.via == cascade.endpoint_id and arrived.endpoint_id == "xa-h264"
        assert getattr(main["origin-vp8"].source, "origin", None) is arrived  # transcoded at the origin only

        # a VP8 camera on the edge, seen by the H.264-only subscriber at the origin
        seen = len(subs["origin-h264"].video_frames())
        for node in (origin, edge):
            await node.set_floor("m", "xa-vp8")
        assert await wait_for(lambda: len(subs["origin-h264"].video_frames()) > seen, 10)
        for name, client in subs.items():
            assert await shows(client, VP8_SHADE), name
        up = up_camera(edge)
        assert up.source.endpoint_id == "xa-vp8" and up.source.codec == "VP8" and up.pt == up.payload_types["VP8"][0]
    finally:
        for client in (*subs.values(), vp8, h264):
            await client.close()


def transcodes(node) -> dict:
    """The meeting's transcode pool's stats on that node."""
    return node.meetings["m"].extension(TranscodePool).stats()


def main_of(node, endpoint: str):
    return next(o for o in node.meetings["m"].peers[endpoint].outputs.values() if o.role == "main")


async def test_origin_cameras_come_down_untouched_in_their_codec_and_the_edge_transcodes_once(nodes):
    origin, edge = nodes
    publisher = Client(
        origin, "m", "o-h264", video=PatternTrack(H264_SHADE), recv_video=False, recv_audio=False, video_codecs=["H264"]
    )
    vp8 = Client(
        origin, "m", "o-vp8", video=PatternTrack(VP8_SHADE), recv_video=False, recv_audio=False, video_codecs=["VP8"]
    )
    subs = {
        "edge-h264": viewer(edge, "edge-h264", "H264", edge=True),
        "edge-vp8": viewer(edge, "edge-vp8", "VP8", edge=True),
    }
    try:
        await publisher.join()
        for client in subs.values():
            await client.join()
        for node in (origin, edge):
            await node.set_floor("m", "o-h264")
        for name, client in subs.items():
            assert await shows(client, H264_SHADE), name

        # the origin forwards its H.264 camera untouched in the trunk's H.264 main line, the VP8 one paused
        published = next(s for s in origin.meetings["m"].peers["o-h264"].streams.values() if s.kind == "video")
        (cascade,) = cascade_peers(origin, "m")
        mains = [o for o in cascade.outputs.values() if o.role == "main"]
        assert sorted(o.codec for o in mains) == ["H264", "VP8"]
        assert {o.codec: o.source for o in mains} == {"H264": published, "VP8": None}
        assert transcodes(origin)["started"] == 0

        # the edge's H.264 viewer gets the trunk's H.264 stream itself; the VP8 one its one transcode
        trunk = edge.meetings["m"].extension(CascadeTrunk)
        down = main_of(edge, "edge-h264").source
        assert down in trunk.lines.streams.values() and down.codec == "H264"
        assert getattr(main_of(edge, "edge-vp8").source, "origin", None) is down
        assert down.h264_format == (1, BASELINE)  # the widest the line allows: mode 1 as forwarded
        (xc,) = transcodes(edge)["transcodes"]
        assert xc["source"] == down.stream_id and list(xc["targets"]) == ["VP8"]

        # the floor moves to a VP8 camera at the origin: it comes down in the VP8 line, which the
        # edge takes at once (the line that started last), and the H.264 line goes quiet
        await vp8.join()
        for node in (origin, edge):
            await node.set_floor("m", "o-vp8")
        for name, client in subs.items():
            assert await shows(client, VP8_SHADE), name
        down_vp8 = main_of(edge, "edge-vp8").source
        assert down_vp8 in trunk.lines.streams.values() and down_vp8.codec == "VP8"
        assert main_of(edge, "edge-h264").source.origin is down_vp8
        assert await wait_for(lambda: down.endpoint_id == "", timeout=5)
    finally:
        for client in (*subs.values(), vp8, publisher):
            await client.close()


async def test_edge_h264_screen_share_goes_up_in_its_codec(nodes):
    origin, edge = nodes
    presenter = edge_client(edge, "m", "xa-share", recv_video=False, recv_audio=False, video_codecs=["H264"])
    for shade in (VP8_SHADE, H264_SHADE):  # camera, then screen (the second video line)
        presenter.pc.addTransceiver(PatternTrack(shade), direction="sendonly")
    subs = {"origin-h264": viewer(origin, "origin-h264", "H264"), "origin-vp8": viewer(origin, "origin-vp8", "VP8")}
    try:
        await presenter.join()
        for client in subs.values():
            await client.join()
        for node in (origin, edge):
            await node.set_floor("m", "xa-share")
        screen = next(s for s in edge.meetings["m"].peers["xa-share"].streams.values() if s.source == "screen")
        assert screen.codec == "H264"
        for name, client in subs.items():  # its slides line decodes the screen's colour
            assert await wait_for(lambda c=client: _track_shows(c, H264_SHADE), timeout=20), name
        trunk = edge.meetings["m"].extension(CascadeTrunk)
        up = next(o for o in trunk.lines.outputs.values() if o.role == "up-screen" and o.source is not None)
        assert up.source is screen and up.pt == up.payload_types["H264"][0]
        slides = next(o for o in origin.meetings["m"].peers["origin-h264"].outputs.values() if o.role == "slides")
        assert slides.source.codec == "H264" and slides.source.endpoint_id == "xa-share"
        assert slides.source.source == "screen"
    finally:
        for client in (*subs.values(), presenter):
            await client.close()


def _track_shows(client: Client, shade: int) -> bool:
    """One of the client's received tracks decodes ``shade`` in its latest pictures."""
    for frames in client.frames.values():
        if len(frames) >= 6 and all(abs(x - shade) < 30 for _, x in frames[-3:]):
            return True
    return False
