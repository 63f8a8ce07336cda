"""Chargeback: tokens per team or key from the audit log, priced at the machine's rate.

The machine costs the same whether it is busy or idle. Each group pays for its tokens at
the rate of a fully used machine (hourly cost / tokens per hour at 100%); what nobody used
is shown as its own "idle capacity" line, so the lines add up to the period's cost.

A response-cache hit did not use the engine: it is priced at the tokens it was charged
against budgets (``MODELYARD_CACHE_HIT_TOKEN_RATE`` of its tokens), not at its full tokens,
which the lines still show as served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from modelyard.errors import InvalidInput

GroupBy = Literal["team", "key"]
IDLE = "(idle capacity)"
UNASSIGNED = "(none)"


@dataclass(frozen=True)
class UsageRow:
    """Usage of one team or key in a period (``group`` None: requests without one)."""

    group: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cache_hits: int = 0
    """Requests answered from the response cache (counted in ``requests`` too)."""
    charged_tokens: int | None = None
    """Tokens priced: the engine's plus what cache hits were charged; None: all the tokens."""

    @property
    def priced_tokens(self) -> int:
        if self.charged_tokens is None:
            return self.prompt_tokens + self.completion_tokens
        return self.charged_tokens


class UsageSource(Protocol):
    """Where served tokens are counted (the audit log), summed per team or key."""

    def usage(self, since: datetime, until: datetime, by: GroupBy) -> list[UsageRow]: ...


@dataclass(frozen=True)
class Served:
    """One served request, as a fake source or a ``--usage FILE`` lists it."""

    key: str
    team: str | None
    at: datetime
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class InMemoryUsage:
    """A fixed list of served requests, grouped on demand (tests, ``--usage FILE``)."""

    served: tuple[Served, ...]

    def usage(self, since: datetime, until: datetime, by: GroupBy) -> list[UsageRow]:
        groups: dict[str | None, list[int]] = {}
        for item in self.served:
            if since <= item.at < until:
                acc = groups.setdefault(item.key if by == "key" else item.team, [0, 0, 0])
                acc[0] += 1
                acc[1] += item.prompt_tokens
                acc[2] += item.completion_tokens
        return [UsageRow(group, *acc) for group, acc in groups.items()]


@dataclass(frozen=True)
class ChargeLine:
    name: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    share: float
    cache_hits: int = 0
    charged_tokens: int = 0
    """The tokens the cost is for (cache hits at their charged share)."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Chargeback:
    by: GroupBy
    since: datetime
    until: datetime
    currency: str
    period_cost: float
    capacity_tokens: float
    rate_per_1m: float
    lines: tuple[ChargeLine, ...]
    idle: ChargeLine
    over_capacity: bool

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat()
        data["until"] = self.until.isoformat()
        return data


def chargeback(
    rows: Sequence[UsageRow],
    *,
    by: GroupBy,
    since: datetime,
    until: datetime,
    hourly_cost: float,
    capacity_tokens_per_hour: float,
    currency: str = "USD",
) -> Chargeback:
    if until <= since:
        raise InvalidInput("the period is empty: --until must be after --since")
    if capacity_tokens_per_hour <= 0:
        raise InvalidInput("capacity must be positive tokens per hour")
    hours = (until - since).total_seconds() / 3600
    period_cost = hourly_cost * hours
    capacity = capacity_tokens_per_hour * hours
    rate = period_cost / capacity
    groups: dict[str, list[int]] = {}
    for row in rows:
        acc = groups.setdefault(row.group or UNASSIGNED, [0, 0, 0, 0, 0])
        acc[0] += row.requests
        acc[1] += row.prompt_tokens
        acc[2] += row.completion_tokens
        acc[3] += row.cache_hits
        acc[4] += row.priced_tokens
    used = sum(a[4] for a in groups.values())
    over = used > capacity
    # Over capacity (more than one machine's worth): share the period's cost by tokens.
    unit = period_cost / used if over and used else rate
    total = period_cost or 1.0
    lines = tuple(
        sorted(
            (
                ChargeLine(name, a[0], a[1], a[2], a[4] * unit, a[4] * unit / total, a[3], a[4])
                for name, a in groups.items()
            ),
            key=lambda line: (-line.cost, line.name),
        )
    )
    idle_cost = max(0.0, period_cost - sum(line.cost for line in lines))
    idle = ChargeLine(IDLE, 0, 0, 0, idle_cost, idle_cost / total)
    return Chargeback(
        by, since, until, currency, period_cost, capacity, rate * 1e6, lines, idle, over
    )
