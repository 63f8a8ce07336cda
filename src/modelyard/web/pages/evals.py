"""``/console/evals``: eval, bias and pilot runs with scores, intervals and model digests.

Runs are read from :class:`~modelyard.evaluate.runs.RunStore` (what ``modelyard eval list /
show`` read), and a side-by-side report is :func:`~modelyard.evaluate.report.build_report`
(what ``eval compare`` and ``pilot run`` write). A pilot is the runs stored under one
``pilot:<title>`` suite on one data file. Each run links to its model version's page, and
approval pages link here as evidence.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from modelyard.errors import InvalidInput, UserError
from modelyard.evaluate.html_report import to_html
from modelyard.evaluate.report import DEFAULT_PRICE_PER_HOUR, Report, build_report, to_markdown
from modelyard.evaluate.runs import RowResult, RunRecord, RunStore
from modelyard.operators.principal import Operator
from modelyard.web.auth import requires
from modelyard.web.charts import Chart, Series, figure
from modelyard.web.render import form_error, page
from modelyard.web.state import gateway_of

router = APIRouter()
READ = "evals.read"
KINDS = ("eval", "bias", "pilot")
PILOT_SUITE = "pilot:"
LIST_LIMIT = 200
ROWS_SHOWN = 200
MAX_COMPARED = 12
REPORT_FORMATS = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8"}


def run_kind(run: RunRecord) -> str:
    """``pilot`` for a run made by ``modelyard pilot run``, else the stored kind."""
    return "pilot" if (run.suite or "").startswith(PILOT_SUITE) else run.kind


@dataclass(frozen=True)
class Pilot:
    title: str
    metric: str
    data: str
    runs: tuple[RunRecord, ...]

    @property
    def compare_query(self) -> str:
        return urlencode([("run", r.id) for r in self.runs] + [("title", f"Pilot: {self.title}")])


def pilots(runs: list[RunRecord]) -> list[Pilot]:
    """Pilot runs grouped by pilot (suite), data file and metric, newest pilot first."""
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for run in runs:
        if run_kind(run) == "pilot":
            key = (run.suite or "", run.data_sha256, run.metric)
            groups.setdefault(key, []).append(run)
    return [
        Pilot(suite.removeprefix(PILOT_SUITE), metric, members[0].data_path, tuple(members))
        for (suite, _, metric), members in groups.items()
    ]


def _list(request: Request, model: str | None, kind: str | None) -> list[RunRecord]:
    runs = RunStore(gateway_of(request).db).list_runs(model, LIST_LIMIT)
    return [r for r in runs if kind is None or run_kind(r) == kind]


@router.get("/console/evals")
async def list_evals(request: Request, operator: Operator = Depends(requires(READ))) -> Response:
    values = {k: request.query_params.get(k, "").strip() for k in ("model", "kind")}
    context: dict[str, Any] = {"values": values, "kinds": KINDS, "runs": [], "pilots": []}
    try:
        if values["kind"] and values["kind"] not in KINDS:
            raise InvalidInput(
                f"unknown run kind {values['kind']!r} (use {', '.join(KINDS)})", param="kind"
            )
        runs = await asyncio.to_thread(
            _list, request, values["model"] or None, values["kind"] or None
        )
    except UserError as exc:
        return form_error(request, "evals/list.html", exc, **context)
    context.update(runs=runs, pilots=pilots(runs), run_kind=run_kind)
    return page(request, "evals/list.html", **context)


def report_charts(report: Report) -> list[Chart]:
    """Quality with its interval, latency, speed and cost per model, as bar charts."""
    entries = report.entries
    metrics = {e.metric for e in entries}
    labels = tuple(
        f"{e.model} ({e.metric})" if len(metrics) > 1 else f"{e.model} [{e.run_id[:8]}]"
        for e in entries
    )

    def bars(chart_id: str, title: str, name: str, values: list[float | None], **kw: Any) -> Chart:
        return Chart(chart_id, title, labels, (Series(name, tuple(values)),), x_name="Run", **kw)

    return [
        bars(
            "chart-quality",
            "Quality: score with 95% interval",
            "score",
            [e.score for e in entries],
            digits=3,
            intervals=tuple((e.ci_low, e.ci_high) for e in entries),
            description="Mean score over the rows; the whisker is a 95% bootstrap interval.",
        ),
        bars(
            "chart-latency",
            "Latency per request, median (s)",
            "p50 latency",
            [e.latency_p50_s for e in entries],
            digits=3,
            unit=" s",
        ),
        bars(
            "chart-speed",
            "Output tokens per second",
            "tokens/s",
            [e.tokens_per_s for e in entries],
            digits=1,
        ),
        bars(
            "chart-cost",
            f"Estimated cost per 1,000 requests ($ at ${report.price_per_hour:.2f}/h)",
            "cost",
            [e.cost_per_1k for e in entries],
            digits=4,
            description="Price per machine-hour times the mean request time, for 1,000 requests.",
        ),
    ]


@dataclass(frozen=True)
class CompareArgs:
    """The compare page's query: run ids, title, machine price (as typed, and checked)."""

    ids: list[str]
    title: str
    price_text: str

    @classmethod
    def of(cls, request: Request) -> CompareArgs:
        params = request.query_params
        ids = [i.strip() for i in params.getlist("run") if i.strip()]
        title = params.get("title", "").strip()[:200] or "Evaluation comparison"
        return cls(ids, title, params.get("price_per_hour", "").strip())

    @property
    def values(self) -> dict[str, str]:
        return {"price_per_hour": self.price_text, "title": self.title}

    @property
    def query(self) -> str:
        pairs = [("run", i) for i in self.ids] + [("title", self.title)]
        return urlencode(pairs + ([("price_per_hour", self.price_text)] if self.price_text else []))

    def price(self) -> float:
        try:
            price = float(self.price_text) if self.price_text else DEFAULT_PRICE_PER_HOUR
        except ValueError as exc:
            raise InvalidInput("price per hour must be a number", param="price_per_hour") from exc
        if price < 0:
            raise InvalidInput("price per hour must be 0 or more", param="price_per_hour")
        return price

    def report(self, request: Request) -> Report:
        """The report ``modelyard eval compare`` builds; UserError for a bad query."""
        if not self.ids:
            raise InvalidInput("choose at least one run to compare", param="run")
        if len(self.ids) > MAX_COMPARED:
            raise InvalidInput(f"compare at most {MAX_COMPARED} runs at once", param="run")
        store = RunStore(gateway_of(request).db)
        return build_report(self.title, [store.get(i) for i in self.ids], self.price())


@router.get("/console/evals/compare")
async def compare_runs(request: Request, operator: Operator = Depends(requires(READ))) -> Response:
    """Runs side by side, the report ``modelyard eval compare`` and ``pilot run`` write."""
    args = CompareArgs.of(request)
    context: dict[str, Any] = {"values": args.values, "ids": args.ids, "query": args.query}
    try:
        report = await asyncio.to_thread(args.report, request)
    except UserError as exc:
        return form_error(request, "evals/compare.html", exc, report=None, **context)
    charts = [figure(chart, "bar") for chart in report_charts(report)]
    return page(request, "evals/compare.html", report=report, charts=charts, **context)


@router.get("/console/evals/compare/download")
async def download_report(
    request: Request, operator: Operator = Depends(requires(READ))
) -> Response:
    """The same report as a file: the self-contained HTML page or the Markdown that
    ``modelyard eval compare --out`` writes."""
    args = CompareArgs.of(request)
    fmt = request.query_params.get("format", "html")
    context: dict[str, Any] = {"values": args.values, "ids": args.ids, "query": args.query}
    try:
        if fmt not in REPORT_FORMATS:
            raise InvalidInput("unknown report format (use html or md)", param="format")
        report = await asyncio.to_thread(args.report, request)
    except UserError as exc:
        return form_error(request, "evals/compare.html", exc, report=None, **context)
    body = to_html(report) if fmt == "html" else to_markdown(report)
    return Response(
        body,
        media_type=REPORT_FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="report.{fmt}"'},
    )


@dataclass(frozen=True)
class RowView:
    index: int
    score: float
    result: str


def _run(request: Request, run_id: str) -> tuple[RunRecord, list[RowResult], int]:
    store = RunStore(gateway_of(request).db)
    run = store.get(run_id)
    rows = store.rows(run.id)
    return run, rows[:ROWS_SHOWN], len(rows)


@router.get("/console/evals/{run_id}")
async def eval_run(
    request: Request, run_id: str, operator: Operator = Depends(requires(READ))
) -> Response:
    """One run: model and digest (linked to its version), data, score with interval, the
    bias summary for a bias run, and the first rows' results."""
    run, rows, total_rows = await asyncio.to_thread(_run, request, run_id)
    shown = [
        RowView(r.index, r.score, json.dumps(r.result, ensure_ascii=False, default=str)[:400])
        for r in rows
    ]
    details = json.dumps(run.details, indent=2, sort_keys=True, default=str)
    config = json.dumps(run.config, indent=2, sort_keys=True, default=str)
    return page(
        request,
        "evals/run.html",
        run=run,
        kind=run_kind(run),
        rows=shown,
        total_rows=total_rows,
        details_json=details,
        config_json=config,
        worst_pairs=list(run.details.get("worst_pairs") or [])[:10] if run.kind == "bias" else [],
    )
