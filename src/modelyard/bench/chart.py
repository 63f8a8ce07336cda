"""The bench's chart: throughput and latency against concurrency (SVG, or HTML around it)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from modelyard.atomic_write import write_text
from modelyard.bench.results import LevelResult
from modelyard.evaluate.charts import line_chart


def charts(title: str, levels: Sequence[LevelResult]) -> list[str]:
    xs = [float(level.concurrency) for level in levels]
    return [
        line_chart(
            f"{title}: output tokens/s",
            xs,
            {
                "aggregate": [lv.aggregate_tokens_per_s for lv in levels],
                "per stream": [lv.per_stream_tokens_per_s for lv in levels],
            },
            x_label="concurrency",
            y_label="tokens/s",
            chart_id="bench-throughput",
        ),
        line_chart(
            f"{title}: time to first token (s)",
            xs,
            {q: [lv.ttft_s[q] for lv in levels] for q in ("p50", "p90", "p99")},
            x_label="concurrency",
            y_label="seconds",
            chart_id="bench-ttft",
        ),
    ]


def write_chart(path: Path, title: str, levels: Sequence[LevelResult]) -> None:
    """``.html``: a page with both charts; anything else: one SVG with both stacked."""
    parts = charts(title, levels)
    if path.suffix.lower() in (".html", ".htm"):
        body = "".join(f"<div>{svg}</div>" for svg in parts)
        page = (
            f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}"
            f"</title></head><body style='font-family:system-ui,sans-serif'>"
            f"<h1>{escape(title)}</h1>{body}</body></html>\n"
        )
        write_text(path, page)
        return
    stacked = "".join(
        f'<g transform="translate(0,{index * 300})">{svg}</g>' for index, svg in enumerate(parts)
    )
    write_text(
        path,
        '<svg xmlns="http://www.w3.org/2000/svg" width="560" '
        f'height="{300 * len(parts)}">{stacked}</svg>\n',
    )
