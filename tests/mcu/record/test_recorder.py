"""Recorder: WebM segments + final file, content (colour, tone, duration), metadata."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import pytest

from mcu.audio import AudioMixer
from mcu.compose import Compositor, Rendition
from mcu.record import AudioFeed, Recorder, Timeline
from mcu.record.recorder import INDEX
from mcu.record.util import read_json

from tests.mcu.record.media import BLUE, RED, H, W, assert_colour, clip, decode_all, feed, peak_hz, tone

META = {
    "meeting_id": "m-ubnd-01",
    "title": "Giao ban tuần UBND tỉnh",
    "participants": ["UBND tỉnh (hg-ubnd)", "Xã Sơn Vĩ (hg-mv-son-vi)"],
}


async def test_recording_holds_picture_sound_duration_and_metadata(tmp_path):
    rec = Recorder(tmp_path / "r1", META, None, None, segment_seconds=2)
    await rec.start()
    feed(rec, 3.0)
    await rec.sync()
    index = read_json(tmp_path / "r1" / INDEX)
    assert index["state"] == "recording" and index["started_at"].endswith("+07:00")
    done = [tmp_path / "r1" / s["file"] for s in index["segments"]]
    assert done, "a completed segment is listed while recording"
    video, pcm, _ = decode_all(done[0])  # a finished segment plays on its own
    assert video and pcm.size
    feed(rec, 3.0, start=90)
    rec.add_participants(["Huyện Mèo Vạc (hg-meo-vac)"])
    result = await rec.stop()
    assert await rec.stop() == result  # idempotent
    assert result["state"] == "done" and result["file"] == "recording.webm"
    final = tmp_path / "r1" / "recording.webm"
    assert sorted(p.name for p in final.parent.iterdir()) == ["recording.json", "recording.webm"]
    video, pcm, duration = decode_all(final)
    assert abs(duration - 6.0) <= 0.6, duration
    assert abs(len(video) / 30 - 6.0) <= 0.6, len(video)
    assert abs(pcm.size / 48000 - 6.0) <= 0.6, pcm.size
    assert_colour(video[len(video) // 2], RED)
    assert abs(peak_hz(pcm) - 440) <= 5
    with av.open(str(final)) as c:
        tags = c.metadata
        assert c.streams.video[0].codec_context.name == "vp8"
        assert c.streams.audio[0].codec_context.name == "opus"
    assert tags["title"] == META["title"]
    assert tags["MEETING_ID"] == "m-ubnd-01" and tags["START_TIME"].endswith("+07:00")
    assert "Xã Sơn Vĩ (hg-mv-son-vi)" in tags["PARTICIPANTS"] and "hg-meo-vac" in tags["PARTICIPANTS"]
    assert "m-ubnd-01" in tags["COMMENT"]


async def test_h264_composite_goes_into_matroska(tmp_path):
    rec = Recorder(tmp_path / "r2", META, None, None, segment_seconds=2)
    await rec.start()
    feed(rec, 2.5, codec="h264", rgb=BLUE)
    result = await rec.stop()
    assert result["file"] == "recording.mkv"
    video, _, duration = decode_all(tmp_path / "r2" / "recording.mkv")
    assert abs(duration - 2.5) <= 0.3 and len(video) >= 70
    assert_colour(video[-1], BLUE)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        Recorder(tmp_path, META, None, None, segment_seconds=1)
    with pytest.raises(ValueError):
        Recorder(tmp_path, {"title": "x"}, None, None)


def test_timeline_unwraps_rtp_and_stays_monotonic():
    now = [100.0]
    tl = Timeline(clock=lambda: now[0])
    tb = Fraction(1, 48000)
    start = 2**32 - 960 * 2
    assert [tl.ms("a", (start + k * 960) & 0xFFFFFFFF, tb, 32) for k in range(4)] == [0, 20, 40, 60]
    assert tl.ms("a", (start + 3 * 960) & 0xFFFFFFFF, tb, 32) == 61  # duplicate: still increasing
    now[0] += 5.0
    assert tl.ms("v", 1000, Fraction(1, 30)) == 5000  # anchored at its arrival
    assert tl.ms("v", 10**9, Fraction(1, 30)) == 5001  # a restart re-anchors


async def test_records_from_a_real_compositor_and_mixer(tmp_path):
    now = [0.0]  # media time drives both clocks: fast, yet "real"
    comp = Compositor(
        "speaker",
        width=W,
        height=H,
        fps=15,
        renditions=(Rendition("720p", H, 300_000),),
        workers=1,
        clock=lambda: now[0],
    )
    comp.set_sources(["cam"], names={"cam": ""})
    mixer = AudioMixer(decoder="pyav")
    feed_a = AudioFeed()
    mixer.listener("rec", "fibre", feed_a.on_packet)
    sub = comp.subscribe("720p", maxsize=64)
    rec = Recorder(
        tmp_path / "r3",
        META,
        sub,
        feed_a,
        segment_seconds=2,
        request_keyframe=lambda: comp.request_keyframe("720p"),
        clock=lambda: now[0],
    )
    await rec.start()
    frames, packets = clip("vp8", RED), tone()
    try:
        for i in range(45):  # 3 s at 15 fps
            now[0] = i / 15
            data, key = frames[i % len(frames)]
            comp.push("cam", "vp8", data, key)
            await comp.compose_once(pts=i)
            for j in range(i * 10 // 3, (i + 1) * 10 // 3):
                mixer.push("spk", packets[j % 50], j, j * 960, audio_level=20)
                mixer.tick()
            await asyncio.sleep(0)
    finally:
        sub.close()  # what the service does: close, then drain
        feed_a.close()
        await comp.stop()
        result = await rec.stop(drain_s=2.0)
    video, pcm, duration = decode_all(tmp_path / "r3" / result["file"])
    assert 2.4 <= duration <= 3.4 and len(video) == comp.stats.frames_out["720p"] == 45  # none lost
    assert_colour(video[-1], RED, tol=10)  # the one source fills the speaker layout
    assert abs(peak_hz(pcm) - 440) <= 5
    assert rec.segment_index >= 2  # the cut asked the compositor for a keyframe
