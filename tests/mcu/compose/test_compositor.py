"""Compositor: tiles show their sources, labels, renditions, on-screen-only decoding, keyframes."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from mcu.compose import Compositor, Layout, Rendition
from mcu.compose.layouts import layout_rects
from mcu.compose.labels import make_label
from mcu.compose.testsrc import encode_clip

COLOURS = {"a": (230, 30, 30), "b": (30, 200, 40), "c": (40, 40, 230), "d": (230, 220, 30), "e": (200, 40, 200)}
NAMES = {"a": "Xã Lũng Cú", "b": "Mèo Vạc", "c": "Đồng Văn", "d": "Hoàng Su Phì", "e": "Quản Bạ"}
RENDITIONS = [Rendition("360p", 360, 800_000), Rendition("180p", 180, 250_000), Rendition("audio", 0)]
W, H = 640, 360


@pytest.fixture(scope="module")
def clips():
    return {s: encode_clip(c, 320, 180, 4, pattern=False) for s, c in COLOURS.items()}


def feed(comp, clips, sources, i, codec="vp8"):
    for s in sources:
        payload, key = clips[s][i]
        comp.push(s, codec, payload, key, i)


def decode_all(frames, codec="vp8") -> np.ndarray:
    ctx = av.CodecContext.create(codec, "r")
    ctx.thread_count = 1
    pics = [p for f in frames for p in ctx.decode(av.Packet(f.data))]
    return pics[-1].to_ndarray(format="rgb24")


def drain(sub):
    out = []
    while not sub._queue.empty():
        out.append(sub._queue.get_nowait())
    return [f for f in out if f is not None]  # None: closed


async def test_tiles_show_each_source_colour_and_label_at_every_rendition(clips):
    comp = Compositor(Layout.GRID_2X2, W, H, renditions=RENDITIONS)
    comp.set_sources(["a", "b", "c", "d"], NAMES)
    subs = {t: comp.subscribe(t) for t in ("360p", "180p")}
    for i in range(3):
        feed(comp, clips, "abcd", i)
        await comp.compose_once()
    await comp.stop()
    for rendition, (tw, th) in {"360p": (640, 360), "180p": (320, 180)}.items():
        frames = drain(subs[rendition])
        assert len(frames) == 3 and frames[0].keyframe
        assert all((f.width, f.height) == (tw, th) for f in frames)
        pic = decode_all(frames)
        assert pic.shape == (th, tw, 3)
        k = tw / W
        for rect, s in zip(layout_rects(Layout.GRID_2X2, W, H), "abcd"):
            x, y, w, h = (int(v * k) for v in (rect.x, rect.y, rect.w, rect.h))
            body = pic[y + h // 8 : y + h // 2, x + w // 8 : x + w - w // 8].reshape(-1, 3).mean(0)
            assert np.abs(body - COLOURS[s]).max() < 25, (rendition, s, body)
            if rendition == "360p":
                band_h = make_label(NAMES[s], rect.w, rect.h).band_h
                band = pic[y + h - band_h + 2 : y + h - 2, x : x + w].astype(int)
                diff = np.abs(band - COLOURS[s]).max(axis=2)
                assert (diff > 60).mean() > 0.9  # the band is darkened
                assert (band.min(axis=2) > 170).sum() > 50  # white text is drawn


async def test_only_sources_on_screen_are_decoded(clips):
    asked = []
    comp = Compositor(Layout.GRID_2X2, W, H, renditions=RENDITIONS[1:2], on_keyframe_needed=asked.append)
    comp.set_sources(["a", "b", "c", "d", "e"], NAMES)  # 5 sources, 4 slots: e is hidden
    assert sorted(asked) == ["a", "b", "c", "d"]
    for i in range(2):
        feed(comp, clips, "abcde", i)
        await comp.compose_once()
    src = comp._sources
    assert src["e"].decode_calls == 0 and src["e"].frames_decoded == 0
    assert all(src[s].decode_calls == 2 for s in "abcd")
    comp.set_sources(["e", "b", "c", "d"])  # the chair swaps a for e
    assert asked[-1] == "e"
    feed(comp, clips, "abcde", 2)  # delta frames: e waits for a keyframe
    await comp.compose_once()
    assert src["a"].decode_calls == 2 and src["e"].decode_calls == 0
    feed(comp, clips, "e", 0)  # e's keyframe arrives
    await comp.compose_once()
    assert src["e"].decode_calls == 1 and src["a"].decode_calls == 2
    await comp.stop()


async def test_keyframe_requests_are_merged(clips):
    now = [100.0]
    comp = Compositor(Layout.SPEAKER, W, H, renditions=RENDITIONS[:2], clock=lambda: now[0])
    comp.set_sources(["a"])
    sub = comp.subscribe("360p")
    feed(comp, clips, "a", 0)
    for _ in range(20):  # 660 ms of composites, the first is a keyframe
        await comp.compose_once()
        now[0] += 0.033
        drain(sub)
    before = comp.keyframe_stats("360p")["forced"]  # 1: the new subscriber's keyframe
    forced = []
    for tick in range(30):  # 1 s: 10 requests in the first 100 ms
        if tick < 10:
            comp.request_keyframe("360p")
            now[0] += 0.010
        await comp.compose_once()
        now[0] += 0.033
        forced += [f.keyframe for f in drain(sub)]
    assert sum(forced) == 1 and forced[0], (forced, comp.keyframe_stats("360p"))
    assert comp.keyframe_stats("360p") == {"requests": 10, "merged": 9, "forced": before + 1}
    assert comp.stats.keyframes_out["180p"] == 1  # other renditions are not disturbed
    await comp.stop()


async def test_clock_runs_at_fps_and_stop_is_idempotent(clips):
    comp = Compositor(Layout.GRID_2X2, W, H, fps=30, renditions=RENDITIONS[1:2], workers=2)
    comp.set_sources(["a", "b"], NAMES)
    got = []
    sub = comp.subscribe("180p", callback=got.append)
    queued = comp.subscribe("180p", maxsize=2)
    clip = encode_clip((10, 200, 10), 320, 180, 20)
    await comp.start()
    for i in range(15):  # 0.5 s of input at 30 fps
        comp.push("a", "vp8", *clip[i], i)
        comp.push("b", "vp8", *clips["b"][i % 4 if i < 4 else 3], i) if i < 4 else None
        await asyncio.sleep(1 / 30)
    await comp.stop()
    await comp.stop()
    assert 4 <= len(got) <= 17 and got[0].keyframe  # loose: 2 shared cores
    assert all(a.pts < b.pts for a, b in zip(got, got[1:]))
    assert comp.stats.lag_count > 0 and 0 <= comp.stats.lag_mean <= comp.stats.lag_max < 2.0
    assert sub.closed and queued.closed
    assert queued.dropped > 0  # never read: overflowed and waits for a keyframe
    while await queued.get() is not None:
        pass


async def test_h264_sources_and_h264_rendition():
    clip = encode_clip((230, 30, 30), 320, 180, 3, codec="h264", pattern=False)
    comp = Compositor(Layout.SPEAKER, W, H, renditions=[Rendition("360p", 360, 600_000, codec="h264")])
    comp.set_sources(["a"], {"a": "Phường Quang Trung"})
    sub = comp.subscribe("360p")
    for i in range(3):
        comp.push("a", "h264", *clip[i], i)
        await comp.compose_once()
    await comp.stop()
    pic = decode_all(drain(sub), "h264")
    assert pic.shape == (360, 640, 3)
    assert np.abs(pic[40:200, 100:540].reshape(-1, 3).mean(0) - (230, 30, 30)).max() < 25


async def test_one_size_in_both_codecs_from_a_vp8_and_an_h264_source(clips):
    """Renditions of one height in VP8 and H.264 (the canvas size and a scaled one): each decodes
    to both sources' colours, and a key-frame request of one codec forces no key frame in the other."""
    h264 = encode_clip(COLOURS["b"], 320, 180, 4, codec="h264", pattern=False)
    renditions = [Rendition(n, h, 500_000, codec=c) for n, h, c in RENDITIONS_2X2]
    now = [0.0]
    comp = Compositor(Layout.GRID_2X2, W, H, renditions=renditions, workers=2, clock=lambda: now[0])
    assert sorted(len(g) for g in comp._encode_groups) == [2, 2]  # one size per job, scaled once
    comp.set_sources(["a", "b"])
    subs = {n: comp.subscribe(n) for n, _, _ in RENDITIONS_2X2}
    for i in range(4):
        comp.push("a", "vp8", *clips["a"][i], i)
        comp.push("b", "h264", *h264[i], i)
        if i == 2:
            assert comp.request_keyframe("h264:360p")
        await comp.compose_once()
        now[0] += 1.0
    await comp.stop()
    for name, height, codec in RENDITIONS_2X2:
        frames = drain(subs[name])
        assert [f.keyframe for f in frames] == [True, False, name == "h264:360p", False], name
        pic = decode_all(frames, codec)
        assert pic.shape == (height, height * 16 // 9, 3)
        for col, s in enumerate("ab"):
            tile = pic[height // 8 : height // 4, col * pic.shape[1] // 2 + 10 : (col + 1) * pic.shape[1] // 2 - 10]
            assert np.abs(tile.reshape(-1, 3).mean(0) - COLOURS[s]).max() < 25, (name, s)


RENDITIONS_2X2 = [("360p", 360, "vp8"), ("h264:360p", 360, "h264"), ("180p", 180, "vp8"), ("h264:180p", 180, "h264")]


def test_bad_renditions_are_rejected():
    with pytest.raises(ValueError):
        Compositor(renditions=[Rendition("a", 360), Rendition("b", 360)])
    with pytest.raises(ValueError):
        Compositor(renditions=[Rendition("a", 360), Rendition("a", 180)])
    with pytest.raises(ValueError):
        Compositor(width=640, height=360, renditions=[Rendition("720p", 720, 1_000_000)])


async def test_layout_change_redraws_the_whole_canvas(clips):
    comp = Compositor(Layout.GRID_2X2, W, H, renditions=RENDITIONS[:1])
    comp.set_sources(["a", "b", "c", "d"], NAMES)
    sub = comp.subscribe("360p")
    for i in range(2):
        feed(comp, clips, "abcd", i)
        await comp.compose_once()
    comp.set_layout(Layout.SPEAKER)
    comp.set_sources(["b", "a", "c", "d"])  # b is the speaker, the others are hidden
    for i in range(2, 4):
        feed(comp, clips, "abcd", i)
        await comp.compose_once()
    await comp.stop()
    pic = decode_all(drain(sub))
    for x, y in ((80, 60), (560, 60), (80, 250), (560, 250)):  # every quadrant is now b
        assert np.abs(pic[y - 20 : y + 20, x - 20 : x + 20].reshape(-1, 3).mean(0) - COLOURS["b"]).max() < 25
    assert comp._sources["a"].decode_calls == 2


async def test_corrupt_input_asks_for_a_keyframe_and_recovers(clips):
    asked, now = [], [0.0]
    comp = Compositor(
        Layout.SPEAKER, W, H, renditions=RENDITIONS[1:2], on_keyframe_needed=asked.append, clock=lambda: now[0]
    )
    comp.set_sources(["a"])
    asked.clear()
    now[0] += 1.0  # requests to a sender are rate-limited (0.5 s)
    comp.push("a", "vp8", b"\x00garbage" * 10, True, 0)
    comp.push("a", "vp8", clips["a"][1][0], False, 1)  # skipped: not a keyframe
    await comp.compose_once()
    assert asked == ["a"] and comp._sources["a"].errors == 1
    assert comp._sources["a"].decode_calls == 1
    comp.push("a", "vp8", *clips["a"][0], 2)
    await comp.compose_once()
    assert comp._sources["a"].frames_decoded == 1
    comp.remove_source("a")
    assert "a" not in comp._sources
    await comp.stop()
    with pytest.raises(RuntimeError):
        await comp.compose_once()
