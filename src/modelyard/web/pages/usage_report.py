"""Usage and cost for the console: day buckets per team and model, priced by the cost model.

Tokens come from the audit log's completion records (``kind == "request"``: each request
once, as :mod:`modelyard.audit.usage` counts them), summed per UTC day, team and model
version. Cost is the chargeback of :mod:`modelyard.cost.chargeback` (the machine's cost for
the period, each group paying for its tokens, idle capacity apart) and the comparison with
an API of :mod:`modelyard.cost.compare` (break-even month and volume), fed with the tokens
actually served — the same functions as ``modelyard cost report`` and ``cost compare``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from modelyard.advisor.knowledge import load_knowledge_base
from modelyard.audit.canonical import iso
from modelyard.audit.usage import charged_tokens
from modelyard.config import Settings
from modelyard.cost.chargeback import Chargeback, UsageRow, chargeback
from modelyard.cost.compare import Comparison, compare
from modelyard.cost.model import hourly_cost, tokens_per_hour
from modelyard.cost.prices import ApiPrice, load_prices
from modelyard.cost.throughput import resolve_throughput
from modelyard.errors import InvalidInput, StoreFault
from modelyard.hardware.store import ProfileStore
from modelyard.store.audit_tables import AuditRecordRow
from modelyard.store.database import Database
from modelyard.web.charts import Chart, Series

NONE = "(none)"
MAX_DAYS = 366
MAX_SERIES = 6
OTHERS = "(others)"
CSV_COLUMNS = (
    "day",
    "team",
    "model",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
    "currency",
)


@dataclass(frozen=True)
class UsageFilter:
    """A period of whole UTC days (``until`` included), optionally one team and one model
    (``NAME`` for every version, or ``NAME@N``)."""

    since: date
    until: date
    team: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise InvalidInput("the last day must not come before the first", param="until")
        if (self.until - self.since).days + 1 > MAX_DAYS:
            raise InvalidInput(f"choose at most {MAX_DAYS} days", param="since")

    @property
    def start(self) -> datetime:
        return datetime(self.since.year, self.since.month, self.since.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime(self.until.year, self.until.month, self.until.day, tzinfo=UTC) + timedelta(
            days=1
        )

    @property
    def days(self) -> tuple[str, ...]:
        count = (self.until - self.since).days + 1
        return tuple((self.since + timedelta(days=i)).isoformat() for i in range(count))


def parse_day(text: str | None, *, param: str, default: date) -> date:
    if text is None or not text.strip():
        return default
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError as exc:
        raise InvalidInput(
            f"cannot read {text.strip()!r} as a day: use YYYY-MM-DD", param=param
        ) from exc


@dataclass(frozen=True)
class DayUsage:
    day: str
    team: str | None
    model: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    priced_tokens: int | None = None
    """What the cost is for: the engine's tokens plus what response-cache hits were charged
    (``audit.usage``); None: all the tokens."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def priced(self) -> int:
        return self.tokens if self.priced_tokens is None else self.priced_tokens


def daily_usage(db: Database, where: UsageFilter) -> list[DayUsage]:
    """Requests and tokens per day, team and model version in the period."""
    day = func.substr(AuditRecordRow.at, 1, 10)
    query = (
        select(
            day,
            AuditRecordRow.team,
            AuditRecordRow.target,
            func.count(),
            func.coalesce(func.sum(AuditRecordRow.prompt_tokens), 0),
            func.coalesce(func.sum(AuditRecordRow.completion_tokens), 0),
            func.coalesce(func.sum(charged_tokens()), 0),
        )
        .where(
            AuditRecordRow.kind == "request",
            AuditRecordRow.at >= iso(where.start),
            AuditRecordRow.at < iso(where.end),
        )
        .group_by(day, AuditRecordRow.team, AuditRecordRow.target)
        .order_by(day, AuditRecordRow.team, AuditRecordRow.target)
    )
    if where.team == NONE:
        query = query.where(AuditRecordRow.team.is_(None))
    elif where.team:
        query = query.where(AuditRecordRow.team == where.team)
    if where.model and "@" in where.model:
        query = query.where(AuditRecordRow.target == where.model)
    elif where.model:
        query = query.where(AuditRecordRow.target.startswith(where.model + "@", autoescape=True))
    try:
        with Session(db.engine) as session:
            return [
                DayUsage(str(d), t, m, int(n), int(p), int(c), int(priced))
                for d, t, m, n, p, c, priced in session.execute(query)
            ]
    except SQLAlchemyError as exc:
        raise StoreFault(f"cannot read usage from the audit log: {exc}") from exc


@dataclass(frozen=True)
class Totals:
    name: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    priced_tokens: int = 0
    """What the cost is for (:attr:`DayUsage.priced_tokens`)."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, row: DayUsage) -> Totals:
        return Totals(
            self.name,
            self.requests + row.requests,
            self.prompt_tokens + row.prompt_tokens,
            self.completion_tokens + row.completion_tokens,
            self.priced_tokens + row.priced,
        )


def totals_by(rows: Iterable[DayUsage], by: str) -> list[Totals]:
    """Totals per team (``by="team"``) or model version, most tokens first."""
    acc: dict[str, Totals] = {}
    for row in rows:
        name = (row.team if by == "team" else row.model) or NONE
        acc[name] = acc.get(name, Totals(name)).add(row)
    return sorted(acc.values(), key=lambda t: (-t.tokens, t.name))


def _day_series(rows: list[DayUsage], days: tuple[str, ...], by: str) -> tuple[Series, ...]:
    """Tokens per day for the biggest groups; the rest summed as ``(others)``."""
    ranked = [t.name for t in totals_by(rows, by)]
    kept = ranked if len(ranked) <= MAX_SERIES else ranked[: MAX_SERIES - 1]
    index = {d: i for i, d in enumerate(days)}
    values: dict[str, list[float]] = {}
    for row in rows:
        name = (row.team if by == "team" else row.model) or NONE
        name = name if name in kept else OTHERS
        values.setdefault(name, [0.0] * len(days))[index[row.day]] += row.tokens
    order = [*kept, OTHERS] if OTHERS in values else kept
    return tuple(Series(n, tuple(values[n])) for n in order if n in values)


@dataclass(frozen=True)
class UsageSummary:
    where: UsageFilter
    rows: list[DayUsage]
    teams: list[Totals]
    models: list[Totals]
    total: Totals

    @property
    def input_share(self) -> float:
        return self.total.prompt_tokens / self.total.tokens if self.total.tokens else 0.8

    def per_day(self, attr: str) -> tuple[float, ...]:
        index = {d: i for i, d in enumerate(self.where.days)}
        values = [0.0] * len(index)
        for row in self.rows:
            values[index[row.day]] += getattr(row, attr)
        return tuple(values)


def summarise(db: Database, where: UsageFilter) -> UsageSummary:
    rows = daily_usage(db, where)
    total = Totals("total")
    for row in rows:
        total = total.add(row)
    return UsageSummary(where, rows, totals_by(rows, "team"), totals_by(rows, "model"), total)


def usage_charts(summary: UsageSummary) -> list[Chart]:
    days = summary.where.days
    return [
        Chart(
            "chart-team-tokens",
            "Tokens per day by team",
            days,
            _day_series(summary.rows, days, "team"),
            x_name="Day",
            unit=" tokens",
            description="Prompt and completion tokens served per UTC day, one line per team.",
        ),
        Chart(
            "chart-model-tokens",
            "Tokens per day by model",
            days,
            _day_series(summary.rows, days, "model"),
            x_name="Day",
            unit=" tokens",
            description="Tokens served per UTC day, one line per model version.",
        ),
        Chart(
            "chart-requests",
            "Requests per day",
            days,
            (Series("requests", summary.per_day("requests")),),
            x_name="Day",
            description="Completed requests per UTC day, all teams and models in the filter.",
        ),
    ]


@dataclass(frozen=True)
class CostInputs:
    """How to price the period: a hardware profile, its speed, machines, an API to compare."""

    hardware: str = "local"
    tokens_per_second: float | None = None
    machines: int = 1
    api_model: str = "gpt-4o"
    utilisation: float = 0.5

    def __post_init__(self) -> None:
        if self.tokens_per_second is not None and self.tokens_per_second <= 0:
            raise InvalidInput("tokens per second must be positive", param="tokens_per_second")
        if self.machines < 1:
            raise InvalidInput("machines must be at least 1", param="machines")
        if not 0 < self.utilisation <= 1:
            raise InvalidInput("utilisation must be in (0, 1]", param="utilisation")


@dataclass(frozen=True)
class CostView:
    currency: str
    throughput_source: str
    teams: Chargeback
    models: Chargeback
    unit_cost: float
    """Cost per token served in the period (what each token was charged)."""
    api: ApiPrice
    api_cost: float
    """What the period's tokens would have cost at the API's list price."""
    comparison: Comparison | None
    charts: list[Chart] = field(default_factory=list)

    def cost_of(self, tokens: int) -> float:
        return tokens * self.unit_cost


def _rows(totals: list[Totals]) -> list[UsageRow]:
    return [
        UsageRow(
            None if t.name == NONE else t.name,
            t.requests,
            t.prompt_tokens,
            t.completion_tokens,
            charged_tokens=t.priced_tokens,
        )
        for t in totals
    ]


def price_usage(settings: Settings, summary: UsageSummary, inputs: CostInputs) -> CostView:
    """The period's cost per team and model and the comparison with the API; UserError when
    the hardware profile, its speed or the API price is missing."""
    profile = ProfileStore(settings).load(inputs.hardware)
    throughput = resolve_throughput(
        profile,
        load_knowledge_base(),
        tokens_per_second=inputs.tokens_per_second,
        streams=settings.worker_slots,
    )
    table = load_prices(settings)
    price = table.get(inputs.api_model)
    share = summary.input_share
    hourly = hourly_cost(profile.cost).total * inputs.machines
    capacity = tokens_per_hour(throughput.blended(share), 1.0) * inputs.machines
    where = summary.where

    def charge(totals: list[Totals]) -> Chargeback:
        # ``by`` only labels a chargeback; the groups are whatever the rows name
        return chargeback(
            _rows(totals),
            by="team",
            since=where.start,
            until=where.end,
            hourly_cost=hourly,
            capacity_tokens_per_hour=capacity,
            currency=profile.cost.currency,
        )

    teams, models = charge(summary.teams), charge(summary.models)
    used = summary.total.priced_tokens
    unit = sum(line.cost for line in teams.lines) / used if used else teams.rate_per_1m / 1e6
    api_cost = (
        summary.total.prompt_tokens * price.input_per_1m
        + summary.total.completion_tokens * price.output_per_1m
    ) / 1e6
    days = len(where.days)
    comparison = None
    if api_cost > 0:
        comparison = compare(
            api_spend_per_year=api_cost / days * 365,
            price=price,
            cost=profile.cost,
            throughput=throughput,
            utilisation=inputs.utilisation,
            input_share=share,
        )
    view = CostView(
        profile.cost.currency, throughput.source, teams, models, unit, price, api_cost, comparison
    )
    view.charts.extend(cost_charts(view, summary))
    return view


def cost_charts(view: CostView, summary: UsageSummary) -> list[Chart]:
    lines = [*view.teams.lines, view.teams.idle]
    cur = f" {view.currency}"
    charts = [
        Chart(
            "chart-team-cost",
            f"Cost by team ({view.currency})",
            tuple(line.name for line in lines),
            (Series("cost", tuple(line.cost for line in lines)),),
            x_name="Team",
            unit=cur,
            digits=2,
            description="The machine's cost for the period, charged to each team by its "
            "tokens; what nobody used is idle capacity.",
        ),
        Chart(
            "chart-day-cost",
            f"Cost per day ({view.currency})",
            summary.where.days,
            (Series("cost", tuple(t * view.unit_cost for t in summary.per_day("tokens"))),),
            x_name="Day",
            unit=cur,
            digits=2,
            description="The cost of the tokens served each day at the period's rate.",
        ),
    ]
    if view.comparison is not None:
        months = view.comparison.months
        charts.append(
            Chart(
                "chart-break-even",
                f"Cumulative cost: {view.api.model} against self-hosting ({view.currency})",
                tuple(str(int(m["month"])) for m in months),
                (
                    Series(f"API ({view.api.model})", tuple(m["api"] for m in months)),
                    Series("self-hosted", tuple(m["self_host"] for m in months)),
                ),
                x_name="Month",
                unit=cur,
                description="Money spent by each month at this period's volume: the API "
                "bill against buying and running the machines.",
            )
        )
    return charts


def usage_csv(summary: UsageSummary, cost: CostView | None) -> Iterator[str]:
    """One line per day, team and model version (header first), priced when ``cost``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return value

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for row in summary.rows:
        writer.writerow(
            [
                row.day,
                row.team or "",
                row.model or "",
                row.requests,
                row.prompt_tokens,
                row.completion_tokens,
                row.tokens,
                f"{cost.cost_of(row.priced):.6f}" if cost else "",
                cost.currency if cost else "",
            ]
        )
        yield flush()
