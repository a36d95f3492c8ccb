"""Video compositor: layouts, tile labels, decode of on-screen sources, encode once per tier."""

from mcu.compose.compositor import Compositor, Slot, Stats
from mcu.compose.layouts import Layout, Rect, fit, layout_rects
from mcu.compose.renditions import DEFAULT_TIERS, EncodedFrame, KeyframeGate, Subscription, Tier

__all__ = ["Compositor", "DEFAULT_TIERS", "EncodedFrame", "KeyframeGate", "Layout", "Rect",
           "Slot", "Stats", "Subscription", "Tier", "fit", "layout_rects"]
