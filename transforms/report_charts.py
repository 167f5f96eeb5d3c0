"""The report's charts: inline SVG (no scripts, no fonts), built with ``transforms.markup`` so every
name in them is escaped."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from transforms.markup import Markup, h, join


class Distribution(NamedTuple):
    name: str
    colour: tuple[int, int, int]
    low: float
    q1: float
    median: float
    q3: float
    high: float
    n: int


def css_colour(rgb: Sequence[int]) -> str:
    r, g, b = (min(255, max(0, int(c))) for c in rgb)
    return f"rgb({r},{g},{b})"


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is >= x (axis maxima people can read)."""
    if x <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(x))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= x * (1 - 1e-12):
            return step * power
    return 10 * power


def _compact(n: int) -> str:
    """A count in at most 4 characters (1234 -> 1.2k), so it fits left of a plot."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}".rstrip("0").rstrip(".") + suffix if n < div * 10 else f"{n / div:.0f}{suffix}"
    return f"{n}"


def _svg_open(chart_id: str, width: int, height: int) -> Markup:
    return h('<svg id="{id}" class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
             'width="{w}" height="{h}" viewBox="0 0 {w} {h}">', id=chart_id, w=width, h=height)


def svg_histogram(values: np.ndarray, *, chart_id: str, title: str, bins: int = 24, width: int = 420) -> Markup:
    """Counts of ``values`` in equal-width bins from 0 to a round maximum."""
    height, left, bottom = 170, 44, 34
    plot_w, plot_h = width - left - 10, height - bottom - 22
    top = nice_ceiling(float(values.max()) if values.size else 1.0)
    counts, edges = np.histogram(values, bins=bins, range=(0, top))
    peak = int(counts.max()) if counts.size and counts.max() > 0 else 1
    bar_w = plot_w / bins
    parts = [_svg_open(chart_id, width, height), h('<text x="{}" y="13" class="title">{}</text>', left, title)]
    for i, n in enumerate(counts):
        bar_h = plot_h * n / peak
        parts.append(h('<rect class="bar" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}"><title>{:,.0f}–{:,.0f} px: {:,}</title></rect>',
                       left + i * bar_w + 0.5, 22 + plot_h - bar_h, bar_w - 1, bar_h, edges[i], edges[i + 1], int(n)))
    base = 22 + plot_h
    parts.append(h('<line x1="{}" x2="{}" y1="{base}" y2="{base}" class="axis"/>', left, left + plot_w, base=base))
    for k in range(5):
        v = top * k / 4
        anchor = "end" if k == 4 else "middle"  # the last label ends at the plot's edge instead of past the svg's
        parts.append(h('<text x="{:.1f}" y="{}" text-anchor="{}" class="tick">{:,.0f}</text>', left + plot_w * k / 4, base + 15, anchor, v))
    parts.append(h('<text x="{tick_x}" y="30" text-anchor="end" class="tick">{peak}</text>'
                   '<text x="{tick_x}" y="{base}" text-anchor="end" class="tick">0</text>'
                   '<text x="{mid:.1f}" y="{bottom}" text-anchor="middle" class="tick">pixels</text>'
                   '<text x="10" y="{y_mid:.1f}" text-anchor="middle" class="tick" transform="rotate(-90 10 {y_mid:.1f})">masks</text></svg>',
                   tick_x=left - 4, peak=_compact(peak), base=base, mid=left + plot_w / 2, bottom=height - 2, y_mid=22 + plot_h / 2))
    return join(parts)


# ---------------------------------------------------------------- per-class rows (30-200 classes)
# A class table is a HTML table, one row per class: names wrap in their cell instead of being clipped
# by an SVG edge, and each row carries small SVG cells sharing one x scale, whose axis sits in the
# (sticky) header. A tick label never leaves its SVG: the first is anchored at its start, the last at its end.

CELL_W, CELL_H = 220, 16


def axis_ticks(top: float, *, whole: bool = False) -> list[float]:
    """Round tick values from 0 to ``top``: multiples of a 1/2/2.5/5 x 10^k step, and ``top`` itself when the
    last multiple stops well short of it. ``whole``: integer steps only (counts)."""
    if top <= 0:
        return [0.0]
    step = nice_ceiling(top / 4)
    if whole:
        step = max(1.0, math.ceil(step))
    ticks = [k * step for k in range(int(top / step + 1e-9) + 1)]
    if top - ticks[-1] >= 0.5 * step:
        ticks.append(top)
    return ticks


def _anchor(k: int, last: int) -> str:
    return "start" if k == 0 else "end" if k == last else "middle"


def svg_axis(ticks: Sequence[tuple[float, str]], *, width: int = CELL_W, title: str = "") -> Markup:
    """A horizontal axis for a column of cells: ticks at fractions 0..1 of the width, with their labels."""
    height = 30 if title else 18
    parts = [h('<svg class="axis-cell" role="img" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
               w=width, h=height)]
    if title:
        parts.append(h('<text x="{}" y="10" text-anchor="middle" class="tick">{}</text>', width / 2, title))
    base = height - 1
    parts.append(h('<line x1="0" x2="{}" y1="{y}" y2="{y}" class="axis"/>', width, y=base))
    for k, (at, label) in enumerate(ticks):
        x = min(max(at * width, 0.5), width - 0.5)
        parts.append(h('<line x1="{x:.1f}" x2="{x:.1f}" y1="{}" y2="{}" class="axis"/>'
                       '<text x="{x:.1f}" y="{}" text-anchor="{}" class="tick">{}</text>',
                       base - 4, base, base - 6, _anchor(k, len(ticks) - 1), label, x=x))
    parts.append(Markup("</svg>"))
    return join(parts)


def svg_bar_cell(value: float, top: float, colour: tuple[int, int, int], tooltip: str, *, width: int = CELL_W) -> Markup:
    """One bar of ``value`` on a 0..top scale, in the class's colour."""
    w = max(1.0, width * value / top) if value > 0 and top > 0 else 0.0
    return h('<svg class="cell" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><title>{tip}</title>'
             '<rect x="0" y="0" width="{w}" height="{h}" class="track"/>'
             '<rect class="bar" x="0" y="1" width="{bar_w:.1f}" height="{bar_h}" fill="{fill}"/></svg>',
             tip=tooltip, w=width, h=CELL_H, bar_w=w, bar_h=CELL_H - 2, fill=css_colour(colour))


def svg_box_cell(box: Distribution | None, axis_max: float, *, width: int = CELL_W) -> Markup:
    """A one-row box plot (min/max whiskers, quartile box, median line) on a 0..axis_max scale."""
    if box is None:
        return Markup('<span class="dim">–</span>')

    def x(v: float) -> float:
        return min(width - 1.0, max(1.0, width * v / axis_max))

    mid = CELL_H / 2
    return h(
        '<svg class="cell" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
        '<title>{name} (n={n:,}): min {low:.2%}, quartiles {q1:.2%} / {median:.2%} / {q3:.2%}, max {high:.2%}</title>'
        '<line x1="{x_low:.1f}" x2="{x_high:.1f}" y1="{mid}" y2="{mid}" class="whisker"/>'
        '<rect x="{x_q1:.1f}" y="3" width="{box_w:.1f}" height="{box_h}" fill="{fill}" class="iqr"/>'
        '<line x1="{x_median:.1f}" x2="{x_median:.1f}" y1="1" y2="{bottom}" class="median"/></svg>',
        w=width, h=CELL_H, name=box.name, n=box.n, low=box.low, q1=box.q1, median=box.median, q3=box.q3, high=box.high,
        x_low=x(box.low), x_high=x(box.high), mid=mid, x_q1=x(box.q1), box_w=max(1.5, x(box.q3) - x(box.q1)),
        box_h=CELL_H - 6, fill=css_colour(box.colour), x_median=x(box.median), bottom=CELL_H - 1,
    )
