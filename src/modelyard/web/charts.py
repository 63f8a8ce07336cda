"""Charts for the console: inline SVG rendered on the server, readable without sight.

The console runs no third-party script and its CSP forbids inline styles, so a chart is
plain SVG with presentation attributes only. Each chart is an image with a ``<title>`` and a
``<desc>`` (``role="img"``, ``aria-labelledby`` both) whose description states what the chart
shows and its extremes, and :func:`figure` puts the same numbers in a data table under it:
a screen reader, a keyboard user or a text browser gets everything the picture says.
Series differ by dash pattern and marker as well as by colour.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal

from markupsafe import Markup

PALETTE = ("#1f5fa8", "#b35900", "#1b7a4c", "#a3324f", "#6446a3", "#4d5a63")
"""Colours with at least 4.5:1 contrast on white."""
DASHES = ("", "6 3", "2 3", "8 3 2 3", "4 4", "1 2")
MAX_X_LABELS = 8
_ID = re.compile(r"[^A-Za-z0-9_-]")

Kind = Literal["line", "bar"]


@dataclass(frozen=True)
class Series:
    """One named row of values, one value per label (``None``: no data there)."""

    name: str
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class Chart:
    """What a chart shows; rendered by :func:`line_svg`, :func:`bar_svg` or :func:`figure`."""

    chart_id: str
    title: str
    labels: tuple[str, ...]
    """The categories along the x axis (line) or down the side (bars)."""
    series: tuple[Series, ...]
    x_name: str = ""
    unit: str = ""
    digits: int = 0
    description: str = ""
    intervals: tuple[tuple[float | None, float | None], ...] = field(default_factory=tuple)
    """Optional (low, high) per label for the first series: drawn as whiskers on bars."""

    def __post_init__(self) -> None:
        for s in self.series:
            if len(s.values) != len(self.labels):
                raise ValueError(
                    f"series {s.name!r} has {len(s.values)} values for {len(self.labels)} labels"
                )
        if self.intervals and len(self.intervals) != len(self.labels):
            raise ValueError("one interval per label is needed")

    @property
    def safe_id(self) -> str:
        return _ID.sub("-", self.chart_id) or "chart"


def format_number(value: float | None, digits: int = 0, unit: str = "") -> str:
    """``1,234`` / ``0.125`` with the unit; ``n/a`` for a missing value."""
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _compact(value: float) -> str:
    """Axis labels: ``950``, ``1.2k``, ``3.4M``."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def nice_top(value: float) -> float:
    """The axis maximum: ``value`` rounded up to 1, 2, 2.5 or 5 times a power of ten."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # unreachable: step 10 always fits


def describe(chart: Chart) -> str:
    """The chart in words: what it plots and, per series, its total and its peak."""
    parts = [chart.description.strip()] if chart.description.strip() else []
    if not chart.labels or not chart.series:
        parts.append("No data in this period.")
        return " ".join(parts)
    span = chart.labels[0] if len(chart.labels) == 1 else f"{chart.labels[0]} to {chart.labels[-1]}"
    count = len(chart.labels)
    noun = (chart.x_name.lower() or "point") + ("" if count == 1 else "s")
    parts.append(f"{count} {noun} ({span}).")
    for s in chart.series:
        known = [
            (v, label) for v, label in zip(s.values, chart.labels, strict=True) if v is not None
        ]
        if not known:
            parts.append(f"{s.name}: no data.")
            continue
        peak, where = max(known, key=lambda item: item[0])
        parts.append(
            f"{s.name}: highest {format_number(peak, chart.digits, chart.unit)} at {where}."
        )
    return " ".join(parts)


def _open_svg(chart: Chart, width: int, height: int, kind: Kind) -> list[str]:
    cid = chart.safe_id
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" id="{cid}" '
        f'role="img" aria-labelledby="{cid}-title {cid}-desc" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="{cid}-title">{escape(chart.title)}</title>',
        f'<desc id="{cid}-desc">{escape(describe(chart))}</desc>',
    ]


def _legend(chart: Chart, x: float, y: float) -> list[str]:
    parts = []
    for index, s in enumerate(chart.series):
        colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
        ly = y + index * 18
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{x:.1f}" y1="{ly:.1f}" x2="{x + 22:.1f}" y2="{ly:.1f}" '
            f'stroke="{colour}" stroke-width="3"{dash_attr}/>'
            f'<text x="{x + 28:.1f}" y="{ly + 4:.1f}">{escape(s.name)}</text>'
        )
    return parts


def line_svg(chart: Chart) -> Markup:
    """A line per series over the labels (days), with a marker at every value."""
    width, height = 720, 300
    left, right, top_pad, bottom = 64, 170, 20, 48
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    values = [v for s in chart.series for v in s.values if v is not None]
    top = nice_top(max(values, default=0.0))
    count = len(chart.labels)

    def px(i: int) -> float:
        return left + (plot_w / 2 if count <= 1 else i * plot_w / (count - 1))

    def py(v: float) -> float:
        return top_pad + plot_h - v / top * plot_h

    parts = _open_svg(chart, width, height, "line")
    for step in range(5):
        value = top * step / 4
        y = py(value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="{"#444" if step == 0 else "#d5dade"}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_compact(value)}</text>'
        )
    every = max(1, math.ceil(count / MAX_X_LABELS))
    for i, label in enumerate(chart.labels):
        last = i == count - 1
        if last or (i % every == 0 and count - 1 - i >= every):  # no label crowding the last
            parts.append(
                f'<text x="{px(i):.1f}" y="{top_pad + plot_h + 18}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    if chart.x_name:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
            f"{escape(chart.x_name)}</text>"
        )
    for index, s in enumerate(chart.series):
        colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
        points = [(i, v) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in points)
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<polyline class="series" points="{path}" fill="none" stroke="{colour}" '
                f'stroke-width="2"{dash_attr}/>'
            )
        for i, v in points:
            tip = f"{s.name}, {chart.labels[i]}: {format_number(v, chart.digits, chart.unit)}"
            parts.append(
                f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    parts += _legend(chart, left + plot_w + 18, top_pad + 8)
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_svg(chart: Chart) -> Markup:
    """Horizontal bars: one group per label, one bar per series; whiskers for intervals."""
    per_group = max(1, len(chart.series))
    bar_h, gap, label_w, plot_w, pad = 16, 10, 190, 380, 12
    legend_h = 18 * len(chart.series) if len(chart.series) > 1 else 0
    group_h = per_group * bar_h + gap
    height = pad * 2 + legend_h + group_h * max(1, len(chart.labels))
    width = label_w + plot_w + 130
    highs = [hi for _, hi in chart.intervals if hi is not None]
    values = [v for s in chart.series for v in s.values if v is not None]
    top = nice_top(max([*values, *highs], default=0.0))
    scale = plot_w / top
    parts = _open_svg(chart, width, height, "bar")
    if legend_h:
        parts += _legend(chart, label_w, pad + 6)
    base = pad + legend_h
    parts.append(
        f'<line x1="{label_w}" y1="{base}" x2="{label_w}" y2="{height - pad}" stroke="#444"/>'
    )
    for g, label in enumerate(chart.labels):
        y0 = base + g * group_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y0 + per_group * bar_h / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        for index, s in enumerate(chart.series):
            y = y0 + index * bar_h
            value = s.values[g]
            if value is None:
                parts.append(f'<text x="{label_w + 4}" y="{y + 12}">n/a</text>')
                continue
            w = max(value * scale, 1.0)
            colour = PALETTE[index % len(PALETTE)]
            text = format_number(value, chart.digits, chart.unit)
            parts.append(
                f'<rect class="bar" x="{label_w}" y="{y + 1}" width="{w:.1f}" '
                f'height="{bar_h - 3}" fill="{colour}">'
                f"<title>{escape(f'{s.name}, {label}: {text}')}</title></rect>"
            )
            end = label_w + w
            if index == 0 and chart.intervals:
                low, high = chart.intervals[g]
                if low is not None and high is not None:
                    x1, x2, mid = label_w + low * scale, label_w + high * scale, y + bar_h / 2
                    parts.append(
                        f'<path class="ci" d="M{x1:.1f},{mid - 5:.1f}v10M{x1:.1f},{mid:.1f}'
                        f'H{x2:.1f}M{x2:.1f},{mid - 5:.1f}v10" stroke="#1d2329" '
                        'stroke-width="1.5" fill="none"/>'
                    )
                    end = max(end, x2)
            parts.append(f'<text x="{end + 6:.1f}" y="{y + 12}">{escape(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def data_table(chart: Chart) -> Markup:
    """The chart's numbers as a table: the fallback for anyone the picture does not reach."""
    head = [f'<th scope="col">{escape(chart.x_name or "label")}</th>']
    for s in chart.series:
        head.append(f'<th scope="col">{escape(s.name)}</th>')
    if chart.intervals:
        head.append('<th scope="col">95% interval</th>')
    rows = []
    for i, label in enumerate(chart.labels):
        cells = [f'<th scope="row">{escape(label)}</th>']
        for s in chart.series:
            cells.append(
                f'<td class="num">{escape(format_number(s.values[i], chart.digits, chart.unit))}'
                "</td>"
            )
        if chart.intervals:
            low, high = chart.intervals[i]
            text = (
                "n/a"
                if low is None or high is None
                else f"{format_number(low, chart.digits)} to {format_number(high, chart.digits)}"
            )
            cells.append(f"<td>{escape(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return Markup(
        f'<table class="chart-data" id="{chart.safe_id}-data">'
        f"<caption>{escape(chart.title)}: data</caption>"
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def figure(chart: Chart, kind: Kind = "line") -> Markup:
    """The chart and, under it, its data table (collapsed into a disclosure)."""
    svg = line_svg(chart) if kind == "line" else bar_svg(chart)
    return Markup(
        f'<figure class="chart-figure" aria-labelledby="{chart.safe_id}-caption">'
        f'<figcaption id="{chart.safe_id}-caption">{escape(chart.title)}</figcaption>'
        f'{svg}<details class="chart-table"><summary>Show the data of '
        f"“{escape(chart.title)}” as a table</summary>{data_table(chart)}</details></figure>"
    )


def series_of(name: str, values: Sequence[float | None]) -> Series:
    return Series(name, tuple(values))
