"""A small self-contained SVG line chart for the load tests (no matplotlib needed).

    svg = line_chart(
        "Hà Giang briefing", x_label="seconds", y_label="endpoints",
        series={"in meeting": [(0.0, 0), (1.0, 40), ...], "media flowing": [...]},
        marks=[(62.0, "kill sig-1"), (62.0, "kill media-1")],   # vertical lines
        bands=[(10.0, 34.0, "floor rotation")],                  # shaded spans
    )
    Path("plot.svg").write_text(svg, encoding="utf-8")

Text is escaped; the output opens in any browser.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#8c564b")
MARK_COLOUR = "#d62728"
BAND_COLOUR = "#f2f2f2"


def nice_step(span: float, ticks: int = 6) -> float:
    """A 1/2/5 x 10^n step giving about ``ticks`` intervals over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    base = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * base:
            return m * base
    return 10 * base


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:g}"


def line_chart(
    title: str,
    *,
    x_label: str,
    y_label: str,
    series: dict[str, list[tuple[float, float]]],
    marks: list[tuple[float, str]] = (),
    bands: list[tuple[float, float, str]] = (),
    width: int = 900,
    height: int = 420,
    y_max: float | None = None,
) -> str:
    left, right, top, bottom = 60, 170, 40, 50
    pw, ph = width - left - right, height - top - bottom
    xs = [x for pts in series.values() for x, _ in pts] + [m[0] for m in marks]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 <= x0:
        x1 = x0 + 1
    ys = [y for pts in series.values() for _, y in pts]
    top_y = y_max if y_max is not None else max(ys + [1.0])
    ystep = nice_step(top_y)
    top_y = math.ceil(top_y / ystep) * ystep
    xstep = nice_step(x1 - x0, 10)

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - y / top_y * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for b0, b1, label in bands:
        out.append(
            f'<rect x="{sx(b0):.1f}" y="{top}" width="{max(0.0, sx(b1) - sx(b0)):.1f}" height="{ph}" '
            f'fill="{BAND_COLOUR}"/>'
        )
        out.append(f'<text x="{sx(b0) + 3:.1f}" y="{top + 12}" fill="#777">{escape(label)}</text>')
    y = 0.0
    while y <= top_y + 1e-9:
        out.append(f'<line x1="{left}" y1="{sy(y):.1f}" x2="{left + pw}" y2="{sy(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
        y += ystep
    x = math.ceil(x0 / xstep) * xstep
    while x <= x1 + 1e-9:
        out.append(f'<line x1="{sx(x):.1f}" y1="{top + ph}" x2="{sx(x):.1f}" y2="{top + ph + 4}" stroke="#333"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{top + ph + 18}" text-anchor="middle">{_fmt(x)}</text>')
        x += xstep
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(
        f'<text transform="translate(16,{top + ph / 2}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>'
    )
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        if pts:
            path = " ".join(f"{sx(px):.1f},{sy(min(py, top_y)):.1f}" for px, py in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        ly = top + 10 + i * 18
        out.append(
            f'<line x1="{left + pw + 12}" y1="{ly}" x2="{left + pw + 32}" y2="{ly}" stroke="{colour}" stroke-width="3"/>'
        )
        out.append(f'<text x="{left + pw + 38}" y="{ly + 4}">{escape(name)}</text>')
    for i, (mx, label) in enumerate(marks):
        out.append(
            f'<line x1="{sx(mx):.1f}" y1="{top}" x2="{sx(mx):.1f}" y2="{top + ph}" stroke="{MARK_COLOUR}" '
            f'stroke-width="1.5" stroke-dasharray="5,3"/>'
        )
        out.append(
            f'<text x="{sx(mx) + 4:.1f}" y="{top + ph - 8 - 14 * i}" fill="{MARK_COLOUR}">{escape(label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
