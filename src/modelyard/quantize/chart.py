"""The accuracy/size trade-off as an SVG chart: one point per level, size against perplexity."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from modelyard.atomic_write import write_text
from modelyard.quantize.report import QuantReport

WIDTH, HEIGHT, PAD = 640, 400, 60


def render_svg(report: QuantReport) -> str:
    rows = report.rows
    sizes = [r.size_bytes / 2**20 for r in rows]
    ppls = [r.perplexity for r in rows if math.isfinite(r.perplexity)] or [1.0]
    x_max = max(sizes) * 1.1 or 1.0
    y_min, y_max = min(ppls), max(ppls)
    span = (y_max - y_min) or max(y_max * 0.1, 1.0)
    y_lo, y_hi = y_min - span * 0.15, y_max + span * 0.15

    def x(value: float) -> float:
        return PAD + value / x_max * (WIDTH - 2 * PAD)

    def y(value: float) -> float:
        return HEIGHT - PAD - (value - y_lo) / (y_hi - y_lo) * (HEIGHT - 2 * PAD)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="15">'
        f"{escape(report.name)}: file size vs perplexity (lower is better)</text>",
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="black"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="black"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 20}" text-anchor="middle">file size (MiB)</text>',
        f'<text x="18" y="{HEIGHT / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {HEIGHT / 2})">perplexity</text>',
    ]
    for tick in range(5):
        size = x_max * tick / 4
        ppl = y_lo + (y_hi - y_lo) * tick / 4
        parts.append(
            f'<text x="{x(size):.1f}" y="{HEIGHT - PAD + 16}" text-anchor="middle">'
            f"{size:.0f}</text>"
        )
        parts.append(f'<text x="{PAD - 6}" y="{y(ppl) + 4:.1f}" text-anchor="end">{ppl:.2f}</text>')
    for row, size in zip(rows, sizes, strict=True):
        if not math.isfinite(row.perplexity):
            continue
        cx, cy = x(size), y(row.perplexity)
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="#1f77b4"/>')
        label = f"{row.level} ({row.tokens_per_s:.0f} tok/s)"
        parts.append(f'<text x="{cx + 8:.1f}" y="{cy - 8:.1f}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_chart(report: QuantReport, path: Path) -> Path:
    return write_text(path, render_svg(report), mode=0o644)  # a report for people to open
