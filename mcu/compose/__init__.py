"""Video compositor: layouts, tile labels, decode of on-screen sources, encode once per rendition."""

from mcu.compose.compositor import Compositor, Slot, Stats
from mcu.compose.layouts import Layout, Rect, fit, layout_rects
from mcu.compose.renditions import DEFAULT_RENDITIONS, EncodedFrame, KeyframeGate, Subscription, Rendition

__all__ = [
    "Compositor",
    "DEFAULT_RENDITIONS",
    "EncodedFrame",
    "KeyframeGate",
    "Layout",
    "Rect",
    "Slot",
    "Stats",
    "Subscription",
    "Rendition",
    "fit",
    "layout_rects",
]
