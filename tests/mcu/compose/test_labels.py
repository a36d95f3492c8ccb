"""Tile labels: Vietnamese names render with their diacritics, no missing-glyph boxes."""

import numpy as np
import pytest

from mcu.compose.labels import draw_label, font_path, load_font, make_label, render_text

VIETNAMESE = "ĂăÂâĐđÊêÔôƠơƯưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ"


def test_font_with_vietnamese_glyphs_is_found():
    assert font_path() is not None and font_path().endswith(".ttf")


def test_diacritics_change_the_rendering_above_and_below_the_letters():
    with_marks = render_text("Mèo Vạc", 24)
    plain = render_text("Meo Vac", 24)
    assert with_marks.shape[0] == plain.shape[0]
    w = min(with_marks.shape[1], plain.shape[1])
    diff = with_marks[:, :w].astype(int) - plain[:, :w].astype(int)
    rows = np.nonzero(np.abs(diff).max(axis=1) > 64)[0]
    ascent, _ = load_font(24).getmetrics()
    x_height_top = ascent - int(24 * 0.55)
    assert rows.min() < x_height_top  # the grave accent above "e"
    assert rows.max() >= ascent  # the dot below "a"


def test_no_missing_glyph_boxes_for_vietnamese_letters():
    font = load_font(20)
    notdef = np.asarray(font.getmask("\U0010fffd"))
    for ch in VIETNAMESE:
        mask = np.asarray(font.getmask(ch))
        assert mask.sum() > 0, ch
        same = mask.shape == notdef.shape and np.array_equal(mask, notdef)
        assert not same, f"{ch!r} renders as the missing-glyph box"


def test_label_is_cached_and_fits_the_tile():
    a = make_label("Phường Quang Trung", 426, 240)
    assert a is make_label("Phường Quang Trung", 426, 240)
    assert a.band_h % 2 == 0 and a.band_h < 240 // 4
    long = make_label("Ủy ban nhân dân huyện Hoàng Su Phì, tỉnh Hà Giang", 160, 90)
    assert long.tx + long.alpha.shape[1] <= 160
    assert make_label("", 426, 240) is None


@pytest.mark.parametrize("colour", [(81, 90, 240), (145, 54, 34)])
def test_draw_label_darkens_band_and_writes_white_text(colour):
    y = np.full((240, 426), colour[0], np.uint8)
    u = np.full((120, 213), colour[1], np.uint8)
    v = np.full((120, 213), colour[2], np.uint8)
    label = make_label("Xã Lũng Cú", 426, 240)
    draw_label(y, u, v, 0, 0, 426, 240, label)
    band = y[240 - label.band_h :]
    assert (y[: 240 - label.band_h] == colour[0]).all()  # picture above untouched
    assert band.min() < colour[0] - 20  # darkened band
    assert band.max() > 200  # white text
    assert abs(int(u[-1, -1]) - 128) < abs(colour[1] - 128)  # chroma pulled to grey
