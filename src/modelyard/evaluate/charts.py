"""Inline SVG charts (no scripts, no external files): horizontal bars with optional intervals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2f6db5", "#d9822b", "#3d9970", "#b13d5a", "#7a5cb8", "#5f6b73")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    low: float | None = None
    high: float | None = None


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    *,
    unit: str = "",
    chart_id: str = "",
    digits: int = 3,
    floor_max: float = 0.0,
) -> str:
    """A horizontal bar chart; bars with ``low``/``high`` get an interval whisker.

    The axis runs from 0 to the largest value, or to ``floor_max`` if that is larger (1.0
    keeps rate metrics on a 0-1 scale).
    """
    row_h, label_w, plot_w, pad = 28, 180, 360, 12
    height = pad * 2 + 24 + row_h * max(len(bars), 1)
    width = label_w + plot_w + 110
    values = [v for b in bars for v in (b.value, b.high) if v is not None]
    top = max([*values, floor_max]) if values else 1.0
    top = top if top > 0 else 1.0
    scale = plot_w / top
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" '
        f'width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{pad}" y="{pad + 12}" font-weight="bold" font-size="14">{escape(title)}</text>',
    ]
    for index, bar in enumerate(bars):
        y = pad + 24 + index * row_h
        color = PALETTE[index % len(PALETTE)]
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" font-size="12">'
            f"{escape(bar.label)}</text>"
        )
        if bar.value is None:
            parts.append(f'<text x="{label_w + 4}" y="{y + 17}" font-size="12">n/a</text>')
            continue
        w = max(bar.value * scale, 1.0)
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 10}" '
            f'fill="{color}"><title>{escape(bar.label)}: {bar.value:.{digits}f}{unit}</title>'
            "</rect>"
        )
        if bar.low is not None and bar.high is not None:
            x1, x2, mid = label_w + bar.low * scale, label_w + bar.high * scale, y + row_h / 2 - 1
            parts.append(
                f'<path class="ci" d="M{x1:.1f},{mid - 6}v12M{x1:.1f},{mid}H{x2:.1f}'
                f'M{x2:.1f},{mid - 6}v12" stroke="#222" stroke-width="1.5" fill="none"/>'
            )
        end = label_w + max(w, (bar.high or 0) * scale) + 6
        parts.append(
            f'<text x="{end:.1f}" y="{y + 17}" font-size="12">{bar.value:.{digits}f}{unit}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    title: str,
    xs: Sequence[float],
    series: dict[str, Sequence[float | None]],
    *,
    x_label: str,
    y_label: str,
    chart_id: str = "",
) -> str:
    """A small line chart with point markers (used by the bench: metric vs concurrency)."""
    width, height, left, bottom, pad = 560, 300, 60, 40, 20
    plot_w, plot_h = width - left - pad - 120, height - bottom - pad - 20
    values = [v for vs in series.values() for v in vs if v is not None]
    top = max(values) if values else 1.0
    top = top if top > 0 else 1.0
    x_min, x_max = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = (x_max - x_min) or 1.0

    def px(x: float) -> float:
        return left + (x - x_min) / span * plot_w

    def py(y: float) -> float:
        return pad + 20 + plot_h - y / top * plot_h

    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" '
        f'width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="{pad}" font-weight="bold" font-size="14">{escape(title)}</text>',
        f'<line x1="{left}" y1="{py(0):.1f}" x2="{left + plot_w}" y2="{py(0):.1f}" stroke="#444"/>',
        f'<line x1="{left}" y1="{py(0):.1f}" x2="{left}" y2="{py(top):.1f}" stroke="#444"/>',
        f'<text x="{left - 6}" y="{py(top) + 4:.1f}" text-anchor="end" font-size="11">'
        f"{top:.3g}</text>",
        f'<text x="{left - 6}" y="{py(0) + 4:.1f}" text-anchor="end" font-size="11">0</text>',
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
        f'font-size="12">{escape(x_label)}</text>',
        f'<text x="14" y="{pad + 20 + plot_h / 2:.1f}" font-size="12" '
        f'transform="rotate(-90 14 {pad + 20 + plot_h / 2:.1f})" text-anchor="middle">'
        f"{escape(y_label)}</text>",
    ]
    for x in xs:
        parts.append(
            f'<text x="{px(x):.1f}" y="{py(0) + 16:.1f}" text-anchor="middle" font-size="11">'
            f"{x:g}</text>"
        )
    for index, (name, ys) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        points = [(px(x), py(y)) for x, y in zip(xs, ys, strict=True) if y is not None]
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(
                f'<polyline class="series" points="{path}" fill="none" stroke="{color}" '
                f'stroke-width="2"/>'
            )
            parts += [
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in points
            ]
        ly = pad + 30 + index * 18
        parts.append(
            f'<rect x="{left + plot_w + 14}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + plot_w + 28}" y="{ly}" font-size="12">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
