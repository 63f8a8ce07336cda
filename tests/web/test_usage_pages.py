"""``/console/usage``: tokens and cost per team and model over days, charts, CSV export."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from modelyard.audit.log import AuditEntry, AuditLog
from modelyard.audit.query import Filter, iter_records
from modelyard.errors import InvalidInput
from modelyard.gateway.state import Gateway
from modelyard.hardware.profile import GB, CostInputs, HardwareProfile
from modelyard.hardware.store import ProfileStore
from modelyard.web.pages.usage_report import (
    CSV_COLUMNS,
    OTHERS,
    DayUsage,
    Totals,
    UsageFilter,
    UsageSummary,
    totals_by,
    usage_charts,
)
from tests.web.conftest import ConsoleClient

SVG = re.compile(r"<svg .*?</svg>", re.DOTALL)
Served = tuple[str | None, str, int, int]
TRAFFIC: list[Served] = [
    ("research", "gemma3-270m@1", 100, 20),
    ("research", "gemma3-270m@1", 50, 10),
    ("ops", "other@2", 300, 100),
    (None, "gemma3-270m@1", 5, 5),
]


def _serve(app: FastAPI, traffic: list[Served], details: list[dict[str, Any]] | None = None) -> str:
    """Request records as the gateway writes them (with ``details`` each, if given); the UTC
    day they were written on."""
    gateway: Gateway = app.state.gateway
    log = AuditLog(gateway.db, gateway.settings)
    try:
        for index, (team, model, prompt, completion) in enumerate(traffic):
            log.append(
                AuditEntry(
                    kind="request",
                    actor="ci",
                    team=team,
                    route="chat",
                    target=model,
                    status=200,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    details=details[index] if details else {},
                )
            )
    finally:
        log.close(checkpoint=False)
    last = list(iter_records(gateway.db, Filter(kind="request", limit=1, newest_first=True)))
    return str(last[0]["at"])[:10]


def _period(day: str) -> dict[str, str]:
    served = date.fromisoformat(day)
    return {
        "since": (served - timedelta(days=2)).isoformat(),
        "until": (served + timedelta(days=1)).isoformat(),
    }


def _profile(app: FastAPI) -> None:
    gateway: Gateway = app.state.gateway
    cost = CostInputs(
        purchase_price=4000, power_watts=300, electricity_per_kwh=0.3, upkeep_per_year=500
    )
    ProfileStore(gateway.settings).save(HardwareProfile(name="local", ram_bytes=16 * GB, cost=cost))


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in SVG.findall(html)]


def _section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</table>", start)]


def test_dashboard_shows_totals_per_team_and_model_and_charts(
    viewer_client: ConsoleClient, console_app: FastAPI
) -> None:
    day = _serve(console_app, TRAFFIC)
    page = viewer_client.get("/console/usage", params=_period(day))
    assert page.status_code == 200
    totals = page.text.split('id="usage-totals"', 1)[1].split("</dl>", 1)[0]
    assert "<dd>4</dd>" in totals  # requests
    assert "<dd>455</dd>" in totals and "<dd>135</dd>" in totals
    teams = _section(page.text, "usage-teams")
    assert teams.index("ops") < teams.index("research") < teams.index("(none)")  # most first
    assert "180" in teams and "400" in teams
    models = _section(page.text, "usage-models")
    assert "gemma3-270m@1" in models and "other@2" in models
    charts = _svgs(page.text)
    assert len(charts) == 3
    for chart in charts:
        assert chart.get("role") == "img"
        assert chart.find("{http://www.w3.org/2000/svg}desc") is not None
    assert page.text.count('class="chart-data"') == 3
    # no hardware profile yet: usage is shown, the cost says why it is missing
    assert "no hardware profile &#39;local&#39;" in page.text
    assert 'id="usage-csv"' not in page.text  # a viewer may not export


def test_cost_and_break_even_with_a_hardware_profile(
    viewer_client: ConsoleClient, console_app: FastAPI
) -> None:
    day = _serve(console_app, TRAFFIC)
    _profile(console_app)
    params = {**_period(day), "tokens_per_second": "40", "api_model": "gpt-4o"}
    page = viewer_client.get("/console/usage", params=params)
    assert page.status_code == 200
    chargeback = _section(page.text, "chargeback")
    assert "(idle capacity)" in chargeback and "research" in chargeback
    assert 'id="break-even-month"' in page.text
    assert "gpt-4o" in page.text
    charts = _svgs(page.text)
    ids = {c.get("id") for c in charts}
    assert {"chart-team-cost", "chart-day-cost", "chart-break-even"} <= ids
    unknown = viewer_client.get("/console/usage", params={**params, "api_model": "gpt-9"})
    assert unknown.status_code == 200 and "no API price for &#39;gpt-9&#39;" in unknown.text


def test_filters_by_team_and_model(viewer_client: ConsoleClient, console_app: FastAPI) -> None:
    day = _serve(console_app, TRAFFIC)
    ops = viewer_client.get("/console/usage", params={**_period(day), "team": "ops"}).text
    assert "other@2" in _section(ops, "usage-models")
    assert "gemma3-270m@1" not in _section(ops, "usage-models")
    model = viewer_client.get("/console/usage", params={**_period(day), "model": "gemma3-270m"})
    teams = _section(model.text, "usage-teams")
    assert "research" in teams and "ops" not in teams
    none = viewer_client.get("/console/usage", params={**_period(day), "team": "(none)"}).text
    assert "<dd>1</dd>" in none.split('id="usage-totals"', 1)[1].split("</dl>", 1)[0]


def test_bad_filters_are_refused(viewer_client: ConsoleClient) -> None:
    bad_day = viewer_client.get("/console/usage", params={"since": "last week"})
    assert bad_day.status_code == 400 and "as a day" in bad_day.text
    backwards = viewer_client.get(
        "/console/usage", params={"since": "2025-02-01", "until": "2025-01-01"}
    )
    assert backwards.status_code == 400
    too_long = viewer_client.get(
        "/console/usage", params={"since": "2020-01-01", "until": "2025-01-01"}
    )
    assert too_long.status_code == 400
    bad_number = viewer_client.get("/console/usage", params={"machines": "two"})
    assert bad_number.status_code == 400 and "machines must be a number" in bad_number.text


def test_csv_export(console_client: Callable[..., ConsoleClient], console_app: FastAPI) -> None:
    auditor = console_client("auditor")
    viewer = console_client("viewer")
    day = _serve(console_app, TRAFFIC)
    _profile(console_app)
    params = {**_period(day), "tokens_per_second": "40"}
    page = auditor.get("/console/usage", params=params)
    assert 'id="usage-csv"' in page.text
    answer = auditor.get("/console/usage/export.csv", params=params)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    got = sorted((r["day"], r["team"], r["model"], r["requests"], r["total_tokens"]) for r in rows)
    assert got == sorted(
        [
            (day, "", "gemma3-270m@1", "1", "10"),
            (day, "ops", "other@2", "1", "400"),
            (day, "research", "gemma3-270m@1", "2", "180"),
        ]
    )
    assert all(float(r["cost"]) > 0 and r["currency"] == "USD" for r in rows)
    unpriced = auditor.get("/console/usage/export.csv", params=_period(day))
    assert all(r["cost"] == "" for r in csv.DictReader(io.StringIO(unpriced.text)))
    assert viewer.get("/console/usage/export.csv", params=params).status_code == 403


def test_day_buckets_and_series() -> None:
    where = UsageFilter(date(2025, 1, 1), date(2025, 1, 3))
    assert where.days == ("2025-01-01", "2025-01-02", "2025-01-03")
    rows = [
        DayUsage("2025-01-01", "a", "m@1", 1, 10, 0),
        DayUsage("2025-01-03", "a", "m@1", 2, 20, 5),
        DayUsage("2025-01-03", "b", "n@1", 1, 1, 1),
    ]
    teams = totals_by(rows, "team")
    assert [(t.name, t.tokens, t.requests) for t in teams] == [("a", 35, 3), ("b", 2, 1)]
    total = Totals("total")
    for row in rows:
        total = total.add(row)
    summary = UsageSummary(where, rows, teams, totals_by(rows, "model"), total)
    assert summary.per_day("requests") == (1.0, 0.0, 3.0)
    team_chart = usage_charts(summary)[0]
    assert [(s.name, s.values) for s in team_chart.series] == [
        ("a", (10.0, 0.0, 25.0)),
        ("b", (0.0, 0.0, 2.0)),
    ]
    many = [DayUsage("2025-01-01", f"t{i}", "m@1", 1, 100 - i, 0) for i in range(9)]
    crowded = UsageSummary(where, many, totals_by(many, "team"), [], Totals("x"))
    names = [s.name for s in usage_charts(crowded)[0].series]
    assert len(names) == 6 and names[-1] == OTHERS
    with pytest.raises(InvalidInput):
        UsageFilter(date(2025, 1, 2), date(2025, 1, 1))


def test_a_cache_hit_is_priced_at_what_it_was_charged(
    viewer_client: ConsoleClient, console_app: FastAPI
) -> None:
    served: list[Served] = [
        (team, "gemma3-270m@1", 900_000, 100_000) for team in ("ops", "research")
    ]
    day = _serve(console_app, served, [{}, {"cache": "hit", "charged_tokens": 100_000}])
    _profile(console_app)
    page = viewer_client.get(
        "/console/usage", params={**_period(day), "tokens_per_second": "40", "api_model": "gpt-4o"}
    )
    assert page.status_code == 200
    teams = _section(page.text, "usage-teams")
    costs = {}
    for name in ("ops", "research"):
        row = teams.split(f'<th scope="row">{name}</th>', 1)[1].split("</tr>", 1)[0]
        cells = re.findall(r'<td class="num">([^<]*)</td>', row)
        assert cells[3] == "1,000,000"  # both served a million tokens
        costs[name] = float(cells[4].replace(",", ""))
    assert costs["ops"] > 0 and costs["research"] == pytest.approx(costs["ops"] / 10, rel=0.05)
