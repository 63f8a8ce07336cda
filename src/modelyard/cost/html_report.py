"""A self-contained HTML page for a chargeback: a table and inline SVG bar charts."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from modelyard.cost.chargeback import Chargeback, ChargeLine

BAR_HEIGHT = 22
CHART_WIDTH = 640
LABEL_WIDTH = 180


def _bars(title: str, items: Sequence[tuple[str, float, str]], chart_id: str) -> str:
    """Horizontal bars: (label, value, text shown after the bar)."""
    top = max((value for _, value, _ in items), default=0.0) or 1.0
    height = BAR_HEIGHT * len(items) + 30
    span = CHART_WIDTH - LABEL_WIDTH - 120
    parts = [
        f'<svg id="{chart_id}" role="img" aria-label="{escape(title)}" '
        f'width="{CHART_WIDTH}" height="{height}" viewBox="0 0 {CHART_WIDTH} {height}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (label, value, text) in enumerate(items):
        y = 26 + index * BAR_HEIGHT
        width = max(1.0, value / top * span)
        colour = "#bbbbbb" if label.startswith("(") else "#3b6ea5"
        parts.append(
            f'<text x="0" y="{y + 14}" font-size="12">{escape(label)}</text>'
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{y + 2}" width="{width:.1f}" '
            f'height="{BAR_HEIGHT - 6}" fill="{colour}"><title>{escape(text)}</title></rect>'
            f'<text x="{LABEL_WIDTH + width + 6:.1f}" y="{y + 14}" font-size="12">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _row(line: ChargeLine, currency: str) -> str:
    return (
        f"<tr><td>{escape(line.name)}</td><td>{line.requests:,}</td>"
        f"<td>{line.prompt_tokens:,}</td><td>{line.completion_tokens:,}</td>"
        f"<td>{line.cost:,.2f} {escape(currency)}</td><td>{line.share:.1%}</td></tr>"
    )


def render_html(report: Chargeback) -> str:
    lines = [*report.lines, report.idle]
    cost_chart = _bars(
        f"Cost by {report.by}",
        [(x.name, x.cost, f"{x.cost:,.2f} {report.currency}") for x in lines],
        "cost-chart",
    )
    token_chart = _bars(
        f"Tokens by {report.by}",
        [(x.name, float(x.tokens), f"{x.tokens:,}") for x in report.lines],
        "token-chart",
    )
    rows = "".join(_row(x, report.currency) for x in lines)
    period = f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>modelyard chargeback by {escape(report.by)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
</style></head><body>
<h1>Chargeback by {escape(report.by)}</h1>
<p>Period {escape(period)}. Machine cost for the period:
<strong>{report.period_cost:,.2f} {escape(report.currency)}</strong>; rate
{report.rate_per_1m:,.4f} {escape(report.currency)} per 1M tokens at full use;
capacity {report.capacity_tokens:,.0f} tokens.
{
        "<strong>Usage exceeded one machine's capacity: cost shared by tokens.</strong>"
        if report.over_capacity
        else ""
    }</p>
<table id="chargeback"><thead><tr><th>{escape(report.by)}</th><th>requests</th>
<th>prompt tokens</th><th>completion tokens</th><th>cost</th><th>share</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Charts</h2>
{cost_chart}
{token_chart}
</body></html>
"""
