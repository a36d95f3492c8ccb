"""Tile labels: an endpoint's name rendered once to a small alpha bitmap, blended per frame.

Text is rendered with Pillow and a TrueType font that has the Vietnamese glyphs (DejaVu
Sans from Debian's fonts-dejavu-core). Each (name, tile size) is rendered once and cached;
per frame the label band at the bottom of the tile is darkened (Y towards black, U/V towards
grey) and the white text is alpha-blended into the Y plane, all with numpy on small slices.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
)
_DARK_Y = 96  # band luma keeps 96/256 of the picture
_DARK_UV = 80  # band chroma keeps 5/16 of its saturation
_TEXT_Y = 235  # white in limited-range luma


@functools.lru_cache(maxsize=8)
def font_path() -> str | None:
    """First font file with Vietnamese glyphs found on this machine, or None."""
    env = os.environ.get("GIAOBAN_LABEL_FONT")
    for path in ((env,) if env else ()) + FONT_CANDIDATES:
        if path and os.path.exists(path):
            return path
    log.warning(
        "no TrueType font with Vietnamese glyphs found (tried %s); tile labels use "
        "Pillow's default font and may show boxes for diacritics",
        FONT_CANDIDATES,
    )
    return None


@functools.lru_cache(maxsize=32)
def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = font_path()
    if path is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(path, size)


def render_text(text: str, size: int) -> np.ndarray:
    """Alpha bitmap (uint8, 0..255) of `text` at `size` pixels, tightly cropped to the ink box
    of the font's full line height (so accents above capitals and dots below fit)."""
    font = load_font(size)
    left, _, right, _ = font.getbbox(text)
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (size, size // 4)
    img = Image.new("L", (max(1, right - left), ascent + descent), 0)
    ImageDraw.Draw(img).text((-left, 0), text, font=font, fill=255)
    return np.asarray(img, dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class Label:
    """A label ready to blend into a tile of (tile_w, tile_h): band height and text alpha."""

    band_h: int  # even; the band covers the bottom band_h rows of the tile
    alpha: np.ndarray  # uint16 (th, tw) in 0..256, the text
    tx: int  # text offset inside the band
    ty: int


def _fit_text(text: str, size: int, max_w: int) -> np.ndarray:
    bitmap = render_text(text, size)
    cut = text
    while bitmap.shape[1] > max_w and len(cut) > 1:
        cut = cut[:-1]
        bitmap = render_text(cut.rstrip() + "…", size)
    return bitmap[:, :max_w]


@functools.lru_cache(maxsize=512)
def make_label(name: str, tile_w: int, tile_h: int) -> Label | None:
    """Label for `name` on a tile of tile_w x tile_h (cached per name and tile size)."""
    if not name or tile_w < 32 or tile_h < 24:
        return None
    size = max(9, min(28, tile_h // 11))
    pad = max(2, size // 4)
    bitmap = _fit_text(name, size, tile_w - 2 * pad)
    band_h = min(tile_h, (bitmap.shape[0] + 2 * pad + 1) & ~1)
    th = min(bitmap.shape[0], band_h)
    alpha = bitmap[:th].astype(np.uint16)
    alpha += alpha >> 7  # 255 -> 256 so full ink is exactly white
    return Label(band_h, alpha, pad, (band_h - th) // 2)


def draw_label(
    y: np.ndarray, u: np.ndarray, v: np.ndarray, x0: int, y0: int, tile_w: int, tile_h: int, label: Label
) -> None:
    """Blend `label` into the tile at (x0, y0) of the canvas planes, in place."""
    by = y0 + tile_h - label.band_h
    band = y[by : y0 + tile_h, x0 : x0 + tile_w]
    band[:] = (band.astype(np.uint16) * _DARK_Y + 16 * (256 - _DARK_Y)) >> 8
    for plane in (u, v):
        cb = plane[by // 2 : (y0 + tile_h) // 2, x0 // 2 : (x0 + tile_w) // 2]
        cb[:] = ((cb.astype(np.int16) - 128) * _DARK_UV >> 8) + 128
    th, tw = label.alpha.shape
    ty, tx = by + label.ty, x0 + label.tx
    text = y[ty : ty + th, tx : tx + tw]
    t = text.astype(np.uint16)
    text[:] = t + (((_TEXT_Y - t) * label.alpha) >> 8)
