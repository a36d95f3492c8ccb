"""Layouts: rectangles inside the frame, even-aligned for yuv420p, non-overlapping."""

import itertools

import pytest

from mcu.compose.layouts import Layout, Rect, fit, layout_rects

SLOTS = {
    Layout.SPEAKER: 1,
    Layout.SPEAKER_STRIP: 6,
    Layout.GRID_2X2: 4,
    Layout.GRID_3X3: 9,
    Layout.GRID_4X4: 16,
    Layout.PRESENTATION: 5,
}


@pytest.mark.parametrize("layout", list(Layout))
@pytest.mark.parametrize("size", [(1280, 720), (640, 360), (854, 480), (320, 180)])
def test_rects_inside_even_and_disjoint(layout, size):
    w, h = size
    rects = layout_rects(layout, w, h)
    assert len(rects) == SLOTS[layout]
    for r in rects:
        assert r.w > 0 and r.h > 0
        assert 0 <= r.x and r.x + r.w <= w and 0 <= r.y and r.y + r.h <= h
        assert r.x % 2 == r.y % 2 == r.w % 2 == r.h % 2 == 0
    for a, b in itertools.combinations(rects, 2):
        assert not a.overlaps(b), (a, b)


def test_main_slot_is_the_largest():
    for layout in (Layout.SPEAKER_STRIP, Layout.PRESENTATION):
        rects = layout_rects(layout, 1280, 720)
        assert rects[0].w * rects[0].h > 4 * max(r.w * r.h for r in rects[1:])


def test_grid_cells_at_720p():
    assert layout_rects("grid_3x3", 1280, 720)[4] == Rect(426, 240, 426, 240)
    assert layout_rects("grid_4x4", 1280, 720)[-1] == Rect(960, 540, 320, 180)


def test_fit_keeps_aspect_and_stays_in_tile():
    tile = Rect(426, 240, 426, 240)
    r = fit(640, 480, tile)  # 4:3 camera in a 16:9 tile: pillar-boxed
    assert r.h == 240 and r.w == 320 and r.x % 2 == 0
    assert tile.x <= r.x and r.x + r.w <= tile.x + tile.w
    assert fit(640, 360, tile) == Rect(426, 240, 426, 240)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError):
        layout_rects("mosaic", 1280, 720)
    with pytest.raises(ValueError):
        layout_rects(Layout.GRID_2X2, 1279, 720)
