"""Reports from stored runs: Markdown, self-contained HTML with SVG charts, atomic writes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelyard.atomic_write import write_text
from modelyard.evaluate.charts import Bar, bar_chart, line_chart
from modelyard.evaluate.html_report import to_html
from modelyard.evaluate.report import build_report, to_markdown
from modelyard.evaluate.report_files import write_report
from modelyard.evaluate.runs import RunRecord


def run(model: str, score: float, mean_latency: float) -> RunRecord:
    return RunRecord(
        id=f"{model}-0000-run",
        kind="eval",
        model_name=model,
        model_version=1,
        model_digest="d" * 64,
        suite=None,
        metric="contains",
        data_path="/data/pilot.jsonl",
        data_sha256="a" * 64,
        rows_total=10,
        rows_done=10,
        status="done",
        score=score,
        ci_low=score - 0.1,
        ci_high=score + 0.1,
        details={
            "latency_p50_s": mean_latency,
            "latency_p95_s": mean_latency * 2,
            "latency_mean_s": mean_latency,
            "tokens_per_s": 40.0,
        },
        config={},
        duration_s=1.0,
        created_by="t",
        created_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
    )


def test_report_numbers_and_markdown() -> None:
    report = build_report("Pilot <A>", [run("small", 0.5, 0.36), run("large", 0.8, 3.6)], 10.0)
    small, large = report.entries
    # $10/h x 0.36 s per request x 1,000 requests / 3,600 s/h = $1.00.
    assert small.cost_per_1k == pytest.approx(1.0) and large.cost_per_1k == pytest.approx(10.0)
    markdown = to_markdown(report)
    assert "| small@1 | contains | 10 | 0.500 | 0.400 to 0.600 | 0.360 | 0.720 | 40.0 |" in markdown
    assert "Data: `pilot.jsonl`" in markdown
    html = to_html(report)
    assert html.count("<svg") == 5 and "<script" not in html and "Pilot &lt;A&gt;" in html
    assert 'class="ci"' in html  # quality bars carry their interval


def test_charts_handle_missing_values() -> None:
    svg = bar_chart("t", [Bar("a", None), Bar("b", 0.0)], chart_id="x")
    assert "n/a" in svg and svg.startswith('<svg class="chart" id="x"')
    line = line_chart("t", [1, 2, 4], {"s": [1.0, None, 3.0]}, x_label="c", y_label="v")
    assert line.count("<circle") == 2


def test_write_report_is_atomic(tmp_path: Path) -> None:
    report = build_report("r", [run("m", 0.5, 1.0)])
    markdown, html = write_report(report, tmp_path / "out")
    assert markdown.read_text().startswith("# r") and html.read_text().startswith("<!doctype")
    target = tmp_path / "keep.txt"
    target.write_text("old")

    with pytest.raises(TypeError):
        write_text(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".keep")] == []
