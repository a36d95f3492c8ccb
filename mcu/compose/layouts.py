"""Layouts the chair can pick: pure functions from a canvas size to tile rectangles.

Every rectangle is even-aligned (x, y, width and height are even) so that it maps
exactly onto the half-resolution U and V planes of a yuv420p canvas. Slot 0 is the
main picture (the speaker, or the presentation); the caller assigns sources to slots.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Layout(str, enum.Enum):
    SPEAKER = "speaker"  # one source full frame
    SPEAKER_STRIP = "speaker_strip"  # big speaker on top, strip of 5 thumbnails below
    GRID_2X2 = "grid_2x2"
    GRID_3X3 = "grid_3x3"
    GRID_4X4 = "grid_4x4"
    PRESENTATION = "presentation"  # shared slides big, speaker (and 3 more) in a side column


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    def overlaps(self, other: "Rect") -> bool:
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )


def _even(v: float) -> int:
    return int(v) & ~1


def _check(width: int, height: int) -> None:
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"canvas must be even and at least 16x16, got {width}x{height}")


def grid(width: int, height: int, cols: int, rows: int) -> list[Rect]:
    """cols x rows equal cells, centred; leftover pixels (at most a few) become a margin."""
    _check(width, height)
    cw, ch = _even(width / cols), _even(height / rows)
    x0, y0 = _even((width - cols * cw) / 2), _even((height - rows * ch) / 2)
    return [Rect(x0 + c * cw, y0 + r * ch, cw, ch) for r in range(rows) for c in range(cols)]


def speaker_only(width: int, height: int) -> list[Rect]:
    _check(width, height)
    return [Rect(0, 0, width, height)]


def speaker_strip(width: int, height: int, thumbs: int = 5) -> list[Rect]:
    """Speaker in the top 4/5 (centred, canvas aspect), `thumbs` thumbnails in the bottom 1/5."""
    _check(width, height)
    th = _even(height / 5)
    sh = height - th
    sw = _even(width * sh / height)
    main = Rect(_even((width - sw) / 2), 0, sw, sh)
    tw = _even(width / thumbs)
    x0 = _even((width - thumbs * tw) / 2)
    return [main] + [Rect(x0 + i * tw, sh, tw, th) for i in range(thumbs)]


def presentation_speaker(width: int, height: int, side: int = 4) -> list[Rect]:
    """Presentation in the left 4/5 (canvas aspect, centred vertically); slot 1 (the speaker)
    and `side - 1` more sources stacked in the right column."""
    _check(width, height)
    pw = _even(width * 4 / 5)
    ph = _even(pw * height / width)
    py = _even((height - ph) / 2)
    cw = width - pw
    ch = _even(min(cw * height / width, ph / side))
    return [Rect(0, py, pw, ph)] + [Rect(pw, py + i * ch, cw, ch) for i in range(side)]


def layout_rects(layout: Layout | str, width: int, height: int) -> list[Rect]:
    """Tile rectangles of `layout` on a width x height canvas, in slot order."""
    layout = Layout(layout)
    if layout is Layout.SPEAKER:
        return speaker_only(width, height)
    if layout is Layout.SPEAKER_STRIP:
        return speaker_strip(width, height)
    if layout is Layout.PRESENTATION:
        return presentation_speaker(width, height)
    n = {Layout.GRID_2X2: 2, Layout.GRID_3X3: 3, Layout.GRID_4X4: 4}[layout]
    return grid(width, height, n, n)


def fit(src_w: int, src_h: int, tile: Rect) -> Rect:
    """Largest even-aligned rectangle with the source's aspect ratio, centred in `tile`."""
    if src_w <= 0 or src_h <= 0:
        return tile
    scale = min(tile.w / src_w, tile.h / src_h)
    w = max(2, min(tile.w, _even(src_w * scale + 0.5)))
    h = max(2, min(tile.h, _even(src_h * scale + 0.5)))
    return Rect(tile.x + _even((tile.w - w) / 2), tile.y + _even((tile.h - h) / 2), w, h)
