"""Side-by-side reports of runs (pilot and compare): quality with CI, speed, cost.

Cost per 1,000 requests is an estimate: the machine's price per hour times the mean time one
request kept it busy (requests served one after another, as in the run), times 1,000.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelyard.evaluate.runs import RunRecord

DEFAULT_PRICE_PER_HOUR = 1.0
"""US dollars per machine-hour used when the user gives no price (documented default)."""


@dataclass(frozen=True)
class ReportEntry:
    run_id: str
    model: str
    metric: str
    status: str
    rows: int
    score: float | None
    ci_low: float | None
    ci_high: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    tokens_per_s: float | None
    cost_per_1k: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    title: str
    data: str
    price_per_hour: float
    entries: tuple[ReportEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "data": self.data,
            "price_per_hour": self.price_per_hour,
            "entries": [e.to_json() for e in self.entries],
        }


def entry_for(run: RunRecord, price_per_hour: float) -> ReportEntry:
    details = run.details
    mean = details.get("latency_mean_s")
    return ReportEntry(
        run_id=run.id,
        model=run.model_ref,
        metric=run.metric,
        status=run.status,
        rows=run.rows_done,
        score=run.score,
        ci_low=run.ci_low,
        ci_high=run.ci_high,
        latency_p50_s=details.get("latency_p50_s"),
        latency_p95_s=details.get("latency_p95_s"),
        tokens_per_s=details.get("tokens_per_s"),
        cost_per_1k=price_per_hour * float(mean) / 3600 * 1000 if mean is not None else None,
    )


def build_report(
    title: str, runs: Sequence[RunRecord], price_per_hour: float = DEFAULT_PRICE_PER_HOUR
) -> Report:
    datasets = sorted({Path(r.data_path).name for r in runs})
    return Report(
        title=title,
        data=", ".join(datasets),
        price_per_hour=price_per_hour,
        entries=tuple(entry_for(r, price_per_hour) for r in runs),
    )


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def to_markdown(report: Report) -> str:
    lines = [
        f"# {report.title}",
        "",
        f"Data: `{report.data}` · price: ${report.price_per_hour:.2f} per machine-hour",
        "",
        "| model | metric | rows | score | 95% CI | latency p50 (s) | latency p95 (s) "
        "| tokens/s | cost / 1,000 requests ($) | run |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for e in report.entries:
        ci = f"{fmt(e.ci_low)} to {fmt(e.ci_high)}" if e.ci_low is not None else "-"
        lines.append(
            f"| {e.model} | {e.metric} | {e.rows} | {fmt(e.score)} | {ci} "
            f"| {fmt(e.latency_p50_s)} | {fmt(e.latency_p95_s)} | {fmt(e.tokens_per_s, 1)} "
            f"| {fmt(e.cost_per_1k, 4)} | `{e.run_id[:8]}` |"
        )
    lines += [
        "",
        "Score is the mean over rows (0-1 for rate metrics); the interval is a 95% "
        "percentile bootstrap over rows. Latency is per request, in process, one at a time. "
        "Cost = price per hour x mean latency x 1,000 / 3,600.",
        "",
    ]
    return "\n".join(lines)
