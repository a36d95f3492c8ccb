"""HlsWriter: playlist syntax, rolling window, atomic writes, and playback with FFmpeg's HLS demuxer."""

from __future__ import annotations

import re

import av
import pytest

from mcu.record import HlsWriter

from tests.mcu.record.media import BLUE, assert_colour, decode_all, feed, peak_hz

TAG = re.compile(r"^#EXT(M3U|-X-VERSION:\d+|-X-TARGETDURATION:\d+|-X-MEDIA-SEQUENCE:\d+|INF:\d+\.\d{3},|-X-ENDLIST)$")


def parse(text: str) -> dict:
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and text.endswith("\n")
    out = {"segments": [], "ended": False}
    for n, line in enumerate(lines):
        if line.startswith("#"):
            assert TAG.match(line), line
            key, _, value = line[1:].partition(":")
            if key == "EXTINF":
                assert not lines[n + 1].startswith("#")
                out["segments"].append((lines[n + 1], float(value.rstrip(","))))
            elif key == "EXT-X-ENDLIST":
                out["ended"] = True
            elif value:
                out[key] = int(value)
        else:
            assert re.fullmatch(r"seg\d{6}\.ts", line), line
    for _, seconds in out["segments"]:
        assert round(seconds) <= out["EXT-X-TARGETDURATION"]
    return out


async def test_live_playlist_rolls_and_plays(tmp_path):
    hls = HlsWriter(tmp_path / "live", segment_seconds=2, window=3)
    await hls.start()
    feed(hls, 5.0, codec="h264", rgb=BLUE)
    live = parse((tmp_path / "live" / "index.m3u8").read_text())
    assert not live["ended"] and live["EXT-X-VERSION"] == 3 and live["EXT-X-MEDIA-SEQUENCE"] == 0
    assert [s for s, _ in live["segments"]] == ["seg000001.ts", "seg000002.ts"]
    feed(hls, 9.0, codec="h264", rgb=BLUE, start=150)
    live = parse((tmp_path / "live" / "index.m3u8").read_text())
    assert len(live["segments"]) == 3 and live["EXT-X-MEDIA-SEQUENCE"] == 3  # 6 done, last 3 listed
    assert [s for s, _ in live["segments"]] == ["seg000004.ts", "seg000005.ts", "seg000006.ts"]
    await hls.stop()
    await hls.stop()
    final = parse((tmp_path / "live" / "index.m3u8").read_text())
    assert final["ended"] and final["EXT-X-MEDIA-SEQUENCE"] == 4
    names = sorted(p.name for p in (tmp_path / "live").iterdir())
    assert "seg000001.ts" not in names  # rolled out and deleted
    assert not [n for n in names if n.endswith((".tmp", ".part"))]
    listed = sum(s for _, s in final["segments"])
    assert 5.5 <= listed <= 6.5
    video, pcm, _ = decode_all(tmp_path / "live" / "index.m3u8")
    assert abs(len(video) / 30 - listed) <= 0.3
    assert abs(pcm.size / 48000 - listed) <= 0.4
    assert_colour(video[len(video) // 2], BLUE)
    assert abs(peak_hz(pcm) - 440) <= 5
    with av.open(str(tmp_path / "live" / "index.m3u8")) as c:
        assert c.format.name == "hls"
        assert {s.codec_context.name for s in c.streams} == {"h264", "aac"}


async def test_each_segment_plays_alone(tmp_path):
    hls = HlsWriter(tmp_path / "l2", segment_seconds=2, window=4)
    await hls.start()
    feed(hls, 4.5, codec="h264")
    await hls.stop()
    for name, seconds in parse((tmp_path / "l2" / "index.m3u8").read_text())["segments"]:
        video, pcm, _ = decode_all(tmp_path / "l2" / name)
        assert abs(len(video) / 30 - seconds) <= 0.1 and pcm.size > 0


async def test_vp8_is_refused_and_window_checked(tmp_path):
    with pytest.raises(ValueError):
        HlsWriter(tmp_path, window=2)
    hls = HlsWriter(tmp_path / "l3")
    await hls.start()
    with pytest.raises(ValueError, match="H.264"):
        feed(hls, 0.5, codec="vp8")
    assert hls.segment_index == 0
    await hls.stop()
