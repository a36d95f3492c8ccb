"""Floor to an edge-local commune: its camera and microphone go up the trunk, attributed to it."""

import asyncio

import pytest

from tests.mcu.cascade.helpers import cascade_peers, edge_client
from tests.support.media_clients import Client, PatternTrack, ToneTrack, wait_for

pytestmark = pytest.mark.integration

CHAIR_SHADE = 200
COMMUNE_SHADE = 60


def frames_of(client, shade: int) -> list:
    return [f for f in client.video_frames() if abs(f[1] - shade) < 30]


def audio_frames(client) -> int:
    return sum(len(client.frames[t.id]) for t in client.tracks if t.kind == "audio")


async def test_floor_on_edge_commune_reaches_origin_subscriber(nodes):
    origin, edge = nodes
    # the chair has no microphone: any audio the origin's viewer gets came up the trunk
    chair = Client(origin, "m", "chair", video=PatternTrack(CHAIR_SHADE), recv_video=False, recv_audio=False)
    viewer = Client(origin, "m", "province", publish=False)
    commune = edge_client(
        edge, "m", "xa-lung-cu", video=PatternTrack(COMMUNE_SHADE), audio=ToneTrack(), recv_audio=False
    )
    quiet = edge_client(
        edge,
        "m",
        "xa-sung-la",
        video=PatternTrack(120),
        audio=ToneTrack(loud=False),
        recv_video=False,
        recv_audio=False,
    )
    try:
        await chair.join()
        await viewer.join()
        await commune.join()
        await quiet.join()
        for node in (origin, edge):  # signaling sets the floor on the origin and every edge
            await node.set_floor("m", "chair")
        assert await wait_for(lambda: len(frames_of(viewer, CHAIR_SHADE)) >= 5, 15)
        assert await wait_for(lambda: len(frames_of(commune, CHAIR_SHADE)) >= 5, 15)

        for node in (origin, edge):
            await node.set_floor("m", "xa-lung-cu")
        assert await wait_for(lambda: len(frames_of(viewer, COMMUNE_SHADE)) >= 10, 15)
        audio_before = audio_frames(viewer)
        assert await wait_for(lambda: audio_frames(viewer) >= audio_before + 50, 10)

        om = origin.meetings["m"]
        (cascade,) = cascade_peers(origin, "m")
        main = next(o for o in om.peers["province"].outputs.values() if o.role == "main")
        assert main.source.endpoint_id == "xa-lung-cu" and main.source.via == cascade.endpoint_id
        audio = [o.source for o in om.peers["province"].outputs.values() if o.role == "audio" and o.source is not None]
        assert any(s.endpoint_id == "xa-lung-cu" for s in audio)
        assert all(s.via == cascade.endpoint_id for s in audio)  # only the edge has mics
        # the cascade is no camera and no speaker under its own name on the origin
        assert not any(s.endpoint_id == cascade.endpoint_id for s in om._streams("camera"))
        assert not any(s.endpoint_id == cascade.endpoint_id for s in om._streams("mic"))
        assert await wait_for(lambda: om.speaker == "xa-lung-cu", 5)
        # what came up never goes back down: the trunk's main is the chair's camera
        down_main = next(o for o in cascade.outputs.values() if o.role == "main")
        assert down_main.source.endpoint_id == "chair"
        # the floor holder on the edge sees the origin's main (the chair), not itself
        await asyncio.sleep(0.5)
        assert frames_of(commune, CHAIR_SHADE) and not frames_of(commune, COMMUNE_SHADE)
    finally:
        for c in (quiet, commune, viewer, chair):
            await c.close()
