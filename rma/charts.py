"""Charts drawn on the server as inline SVG (issue 7): horizontal bars, stacked bars and
lines, from plain data. No JavaScript and nothing from a CDN.

Every chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that name it
for screen readers, scales to its container (``viewBox``; fits a 390 px phone), and is
meant to sit next to a table of the same figures (the page shows both). Labels and
titles are escaped: text from the data (a lot named ``<script>``) stays text. Values
may be ``int``, ``float``, ``Decimal`` or None (drawn as nothing: no data).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

Number = int | float | Decimal | None

#: Series colours (colour-blind safe, Okabe-Ito), in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")
HIGHLIGHT = "#D55E00"
WIDTH = 640
_ID = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Series:
    """A named row of values, one per label of the chart."""

    name: str
    values: tuple[Number, ...]


def _num(value: Number) -> float | None:
    return None if value is None else float(value)


def _fmt(value: Number, unit: str = "") -> str:
    if value is None:
        return "\u2014"
    if isinstance(value, int):
        text = f"{value:,}"
    else:
        text = f"{float(value):,.1f}" if unit == "%" else f"{float(value):,.2f}"
    return f"{text}{unit if unit == '%' else (' ' + unit if unit else '')}"


def _nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above ``value`` (an axis end)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-12):
            return step * power
    return 10 * power


def _open(chart_id: str, title: str, description: str, height: int) -> list[str]:
    safe_id = _ID.sub("-", chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{safe_id}" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" preserveAspectRatio="xMinYMin meet" '
        f'aria-labelledby="{safe_id}-title {safe_id}-desc" '
        f'font-family="sans-serif" font-size="12">',
        f'<title id="{safe_id}-title">{escape(title)}</title>',
        f'<desc id="{safe_id}-desc">{escape(description)}</desc>',
    ]


def _legend(series: Sequence[Series], y: int) -> list[str]:
    parts, x = [], 8
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="{y}">{escape(one.name)}</text>')
        x += 28 + 7 * len(one.name)
        if x > WIDTH - 80:
            x, y = 8, y + 18
    return parts


def _svg(parts: list[str]) -> Markup:
    # Every piece of text from the data went through escape() above.
    return Markup("".join(parts))  # noqa: S704 # nosec B704 # our own SVG, data text escaped


def _empty(chart_id: str, title: str, empty_text: str) -> Markup:
    parts = _open(chart_id, title, empty_text, 40)
    parts.append(f'<text x="8" y="24">{escape(empty_text)}</text></svg>')
    return _svg(parts)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[Number], *,
              chart_id: str, unit: str = "", highlight: Sequence[bool] = (),
              empty_text: str = "No data") -> Markup:
    """Horizontal bars, one row per label, each with its value written beside it;
    rows whose ``highlight`` is true are drawn in the highlight colour (a flagged lot)."""
    numbers = [_num(v) for v in values]
    if not labels or all(n is None for n in numbers):
        return _empty(chart_id, title, empty_text)
    row, top, label_w = 22, 8, 150
    height = top + row * len(labels) + 8
    scale_max = _nice_max(max((n for n in numbers if n is not None), default=0))
    bar_w = WIDTH - label_w - 90
    parts = _open(chart_id, title, f"{title}: {len(labels)} bars", height)
    for index, (label, value, number) in enumerate(zip(labels, values, numbers,
                                                       strict=True)):
        y = top + index * row
        text = str(label)
        shown = text if len(text) <= 22 else text[:21] + "\u2026"
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">'
                     f'<title>{escape(text)}</title>{escape(shown)}</text>')
        if number is not None:
            width = max(bar_w * number / scale_max, 0)
            colour = HIGHLIGHT if index < len(highlight) and highlight[index] else PALETTE[0]
            parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="16" '
                         f'fill="{colour}"><title>{escape(text)}: '
                         f'{escape(_fmt(value, unit))}</title></rect>')
        parts.append(f'<text x="{label_w + (bar_w * (number or 0) / scale_max) + 4:.1f}" '
                     f'y="{y + 15}">{escape(_fmt(value, unit))}</text>')
    parts.append("</svg>")
    return _svg(parts)


def _x_labels(labels: Sequence[str], x_of, baseline: int) -> list[str]:
    step = max(1, -(-len(labels) // 12))  # at most 12 labels under the axis
    return [f'<text x="{x_of(i):.1f}" y="{baseline + 16}" text-anchor="middle">'
            f'{escape(str(label))}</text>'
            for i, label in enumerate(labels) if i % step == 0 or i == len(labels) - 1]


def _y_axis(scale_max: float, plot_top: int, plot_h: int, left: int, unit: str) -> list[str]:
    parts = []
    for k in range(5):
        value = scale_max * k / 4
        y = plot_top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#ddd"/>')
        text = f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.1f}"
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{escape(text)}{escape(unit if unit == "%" else "")}</text>')
    return parts


def stacked_bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], *,
                      chart_id: str, unit: str = "", empty_text: str = "No data") -> Markup:
    """Vertical bars per label (e.g. months), each stacked from the series (e.g. product
    models), with a legend. A None value counts as 0."""
    totals = [sum(_num(s.values[i]) or 0 for s in series) for i in range(len(labels))]
    if not labels or not series or not any(totals):
        return _empty(chart_id, title, empty_text)
    left, plot_top, plot_h = 56, 10, 180
    legend_rows = 1 + sum(len(s.name) * 7 + 28 for s in series) // (WIDTH - 80)
    height = plot_top + plot_h + 28 + 18 * legend_rows + 8
    scale_max = _nice_max(max(totals))
    slot = (WIDTH - left - 8) / len(labels)
    bar = max(min(slot * 0.7, 40), 1)
    parts = _open(chart_id, title, f"{title}: {len(labels)} bars of {len(series)} series",
                  height)
    parts += _y_axis(scale_max, plot_top, plot_h, left, unit)

    def x_of(i: int) -> float:
        return left + slot * i + slot / 2

    for i, label in enumerate(labels):
        base = plot_top + plot_h
        for index, one in enumerate(series):
            number = _num(one.values[i]) or 0
            if number <= 0:
                continue
            h = plot_h * number / scale_max
            base -= h
            parts.append(f'<rect x="{x_of(i) - bar / 2:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[index % len(PALETTE)]}"><title>'
                         f'{escape(str(label))} \u00b7 {escape(one.name)}: '
                         f'{escape(_fmt(one.values[i], unit))}</title></rect>')
    parts += _x_labels(labels, x_of, plot_top + plot_h)
    parts += _legend(series, plot_top + plot_h + 44)
    parts.append("</svg>")
    return _svg(parts)


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], *,
               chart_id: str, unit: str = "", y_max: float | None = None,
               empty_text: str = "No data") -> Markup:
    """One line per series over the labels (e.g. months), with a dot per value and a
    legend; a None value breaks the line. ``y_max`` fixes the axis end (100 for a
    share in percent)."""
    numbers = [[_num(v) for v in s.values] for s in series]
    present = [n for row in numbers for n in row if n is not None]
    if not labels or not present:
        return _empty(chart_id, title, empty_text)
    left, plot_top, plot_h = 56, 10, 180
    height = plot_top + plot_h + 28 + 18 * (1 + len(series) // 4) + 8
    scale_max = y_max or _nice_max(max(present))
    slot = (WIDTH - left - 8) / len(labels)
    parts = _open(chart_id, title, f"{title}: {len(series)} lines over {len(labels)} points",
                  height)
    parts += _y_axis(scale_max, plot_top, plot_h, left, unit)

    def x_of(i: int) -> float:
        return left + slot * i + slot / 2

    def y_of(n: float) -> float:
        return plot_top + plot_h - plot_h * min(n, scale_max) / scale_max

    for index, (one, row) in enumerate(zip(series, numbers, strict=True)):
        colour = PALETTE[index % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, n in enumerate(row):
            if n is None:
                runs.append([])
                continue
            runs[-1].append(f"{x_of(i):.1f},{y_of(n):.1f}")
            parts.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(n):.1f}" r="3" '
                         f'fill="{colour}"><title>{escape(str(labels[i]))} \u00b7 '
                         f'{escape(one.name)}: {escape(_fmt(one.values[i], unit))}</title>'
                         f'</circle>')
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" '
                             f'stroke="{colour}" stroke-width="2"/>')
    parts += _x_labels(labels, x_of, plot_top + plot_h)
    parts += _legend(series, plot_top + plot_h + 44)
    parts.append("</svg>")
    return _svg(parts)
