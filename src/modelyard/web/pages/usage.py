"""``/console/usage``: tokens, requests and cost per team and model over time, and CSV.

Filters are query parameters (a GET form), so a view can be bookmarked and shared. Seeing
the dashboard needs ``usage.read``; the CSV download needs ``usage.export``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from modelyard.errors import InvalidInput, UserError
from modelyard.operators.principal import Operator
from modelyard.web.auth import requires
from modelyard.web.charts import figure
from modelyard.web.pages.usage_report import (
    CostInputs,
    CostView,
    UsageFilter,
    UsageSummary,
    parse_day,
    price_usage,
    summarise,
    usage_charts,
    usage_csv,
)
from modelyard.web.render import form_error, page
from modelyard.web.state import console_state, gateway_of

router = APIRouter()
DEFAULT_DAYS = 30
FIELDS = (
    "since",
    "until",
    "team",
    "model",
    "hardware",
    "tokens_per_second",
    "machines",
    "api_model",
    "utilisation",
)


@dataclass(frozen=True)
class Report:
    summary: UsageSummary
    cost: CostView | None
    cost_problem: str | None


def _number(values: dict[str, str], name: str, kind: type[int] | type[float], default: Any) -> Any:
    text = values.get(name, "")
    if not text:
        return default
    try:
        return kind(text)
    except ValueError as exc:
        raise InvalidInput(f"{name.replace('_', ' ')} must be a number", param=name) from exc


def _parse(request: Request) -> tuple[dict[str, str], UsageFilter, CostInputs]:
    values = {k: request.query_params.get(k, "").strip() for k in FIELDS}
    today = console_state(request).clock().date()
    until = parse_day(values["until"], param="until", default=today)
    since = parse_day(values["since"], param="since", default=until - timedelta(DEFAULT_DAYS - 1))
    values["since"], values["until"] = since.isoformat(), until.isoformat()
    where = UsageFilter(since, until, values["team"] or None, values["model"] or None)
    inputs = CostInputs(
        hardware=values["hardware"] or "local",
        tokens_per_second=_number(values, "tokens_per_second", float, None),
        machines=_number(values, "machines", int, 1),
        api_model=values["api_model"] or "gpt-4o",
        utilisation=_number(values, "utilisation", float, 0.5),
    )
    return values, where, inputs


def _report(request: Request, where: UsageFilter, inputs: CostInputs) -> Report:
    gateway = gateway_of(request)
    summary = summarise(gateway.db, where)
    try:
        cost = price_usage(gateway.settings, summary, inputs)
    except UserError as exc:
        return Report(summary, None, exc.message)
    return Report(summary, cost, None)


def _context(values: dict[str, str], report: Report | None) -> dict[str, Any]:
    if report is None:
        return {"values": values, "report": None, "charts": [], "cost_charts": []}
    charts = [figure(c, "line") for c in usage_charts(report.summary)]
    cost_charts = []
    if report.cost is not None:
        cost_charts = [
            figure(c, "bar" if c.chart_id == "chart-team-cost" else "line")
            for c in report.cost.charts
        ]
    return {"values": values, "report": report, "charts": charts, "cost_charts": cost_charts}


@router.get("/console/usage")
async def usage_page(
    request: Request, operator: Operator = Depends(requires("usage.read"))
) -> Response:
    values = {k: request.query_params.get(k, "") for k in FIELDS}
    try:
        values, where, inputs = _parse(request)
        report = await asyncio.to_thread(_report, request, where, inputs)
    except UserError as exc:
        return form_error(request, "usage/dashboard.html", exc, **_context(values, None))
    return page(request, "usage/dashboard.html", **_context(values, report))


@router.get("/console/usage/export.csv")
async def usage_export(
    request: Request, operator: Operator = Depends(requires("usage.export"))
) -> Response:
    """The dashboard's rows (day, team, model) as CSV, priced when the cost can be worked out."""
    values = {k: request.query_params.get(k, "") for k in FIELDS}
    try:
        values, where, inputs = _parse(request)
        report = await asyncio.to_thread(_report, request, where, inputs)
    except UserError as exc:
        return form_error(request, "usage/dashboard.html", exc, **_context(values, None))
    name = f"modelyard-usage-{where.since.isoformat()}-{where.until.isoformat()}.csv"
    return StreamingResponse(
        usage_csv(report.summary, report.cost),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
