"""A self-contained HTML page for a report: inline CSS and SVG charts, nothing fetched."""

from __future__ import annotations

from html import escape

from modelyard.evaluate.charts import Bar, bar_chart
from modelyard.evaluate.report import Report, fmt

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2329;max-width:1100px}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccd3d9;padding:.3rem .6rem}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#eef2f5}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}.note{color:#56616b;font-size:.9rem}
"""


def to_html(report: Report) -> str:
    entries = report.entries
    rows = "".join(
        "<tr>"
        f"<td>{escape(e.model)}</td><td>{escape(e.metric)}</td><td class=n>{e.rows}</td>"
        f"<td class=n>{fmt(e.score)}</td>"
        f"<td>{fmt(e.ci_low)} to {fmt(e.ci_high)}</td>"
        f"<td class=n>{fmt(e.latency_p50_s)}</td><td class=n>{fmt(e.latency_p95_s)}</td>"
        f"<td class=n>{fmt(e.tokens_per_s, 1)}</td><td class=n>{fmt(e.cost_per_1k, 4)}</td>"
        f"<td><code>{escape(e.run_id[:8])}</code></td>"
        "</tr>"
        for e in entries
    )
    labels = [
        f"{e.model} ({e.metric})" if len({x.metric for x in entries}) > 1 else e.model
        for e in entries
    ]
    charts = [
        bar_chart(
            "Quality (score, 95% CI)",
            [Bar(lb, e.score, e.ci_low, e.ci_high) for lb, e in zip(labels, entries, strict=True)],
            chart_id="chart-quality",
            floor_max=1.0,
        ),
        bar_chart(
            "Latency p50 (s)",
            [Bar(lb, e.latency_p50_s) for lb, e in zip(labels, entries, strict=True)],
            unit=" s",
            chart_id="chart-latency-p50",
        ),
        bar_chart(
            "Latency p95 (s)",
            [Bar(lb, e.latency_p95_s) for lb, e in zip(labels, entries, strict=True)],
            unit=" s",
            chart_id="chart-latency-p95",
        ),
        bar_chart(
            "Output tokens/s",
            [Bar(lb, e.tokens_per_s) for lb, e in zip(labels, entries, strict=True)],
            chart_id="chart-tokens",
            digits=1,
        ),
        bar_chart(
            f"Estimated cost per 1,000 requests ($, at ${report.price_per_hour:.2f}/h)",
            [Bar(lb, e.cost_per_1k) for lb, e in zip(labels, entries, strict=True)],
            chart_id="chart-cost",
            digits=4,
        ),
    ]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(report.title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(report.title)}</h1>"
        f"<p>Data: <code>{escape(report.data)}</code> · price ${report.price_per_hour:.2f} "
        "per machine-hour</p>"
        "<table><thead><tr><th>model</th><th>metric</th><th>rows</th><th>score</th>"
        "<th>95% CI</th><th>latency p50 (s)</th><th>latency p95 (s)</th><th>tokens/s</th>"
        "<th>cost / 1,000 req ($)</th><th>run</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        f'<div class="charts">{"".join(charts)}</div>'
        '<p class="note">Score: mean over rows; interval: 95% percentile bootstrap over rows. '
        "Latency: per request, in process, one at a time. Cost = price per hour x mean "
        "latency x 1,000 / 3,600.</p></body></html>\n"
    )
