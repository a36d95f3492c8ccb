"""Sources (test pattern, tone, file), the mute gate, and recording what the terminal receives."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from endpoints.agent.sources import Sources
from tests.support.agents import make_agent
from tests.support.waiting import until
from tests.endpoints.agent.test_agent_join import DISTRICT, communes
from tests.support.harness import WsClient


async def test_test_pattern_tone_and_mute_gate():
    src = Sources("test", "test", (160, 120), fps=30)
    try:
        frames = [await src.video.recv() for _ in range(3)]
        assert (frames[0].width, frames[0].height) == (160, 120) and frames[2].pts > frames[1].pts
        assert frames[0].to_ndarray(format="gray").std() > 20  # bars, not a flat picture
        tone = (await src.audio.recv()).to_ndarray()
        assert np.abs(tone).max() > 5000

        src.set_muted("video", True)
        src.set_muted("audio", True)
        black = (await src.video.recv()).to_ndarray(format="gray")
        silent = (await src.audio.recv()).to_ndarray()
        assert black.max() <= 20 and np.abs(silent).max() == 0
        assert src.video.frames == 4 and src.audio.frames == 2
    finally:
        src.stop()


async def test_file_source(tmp_path):
    path = tmp_path / "clip.webm"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, fractions.Fraction(1, 10)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    src = Sources(f"file:{path}", "none")
    try:
        assert src.audio is None
        frame = await src.video.recv()
        assert (frame.width, frame.height) == (64, 48)
    finally:
        src.stop()


@pytest.mark.integration
async def test_records_what_it_receives(mnode, tmp_path):
    a_id, b_id = communes(mnode)[6:8]
    meeting = await mnode.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"])
    chair = await WsClient.connect(mnode, await mnode.endpoint_token(DISTRICT))
    rec = tmp_path / "rec"
    a = await make_agent(mnode, tmp_path, a_id, record_dir=str(rec), video="none", audio="none")
    b = await make_agent(mnode, tmp_path, b_id)
    try:
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await until(lambda: b.meeting is not None and a.peer is not None and a.peer.connected_at, 10, what="both in")
        await chair.send("grant_floor", endpoint_id=b_id)  # b's camera is the main picture
        await until(lambda: a.peer.frames_received("video") > 15, 10, what="a receives b's video")
    finally:
        await a.stop()
        await b.stop()
        await chair.close()
    videos = sorted(rec.glob(f"{meeting['id']}-*-video*.webm"))
    assert videos, list(rec.iterdir())
    with av.open(str(videos[0])) as f:
        decoded = sum(1 for _ in f.decode(video=0))
    assert decoded > 5
