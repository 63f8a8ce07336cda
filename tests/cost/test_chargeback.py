"""Chargeback on a fake usage source: per team and key, priced, with idle capacity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelyard.cost.chargeback import IDLE, InMemoryUsage, Served, chargeback
from modelyard.errors import InvalidInput

T0 = datetime(2026, 11, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=10)
SOURCE = InMemoryUsage(
    (
        Served("alice", "legal", T0 + timedelta(hours=1), 30_000, 10_000),
        Served("bob", "legal", T0 + timedelta(hours=2), 15_000, 5_000),
        Served("carol", "sales", T0 + timedelta(hours=3), 20_000, 0),
        Served("dave", None, T0 + timedelta(hours=4), 10_000, 10_000),
        Served("alice", "legal", T1 + timedelta(hours=1), 999_999, 0),  # outside the period
    )
)


def test_by_team_with_idle_line() -> None:
    # 2.00/h for 10 h = 20.00; capacity 100,000 tokens/h x 10 h = 1M tokens -> 20 per 1M
    report = chargeback(
        SOURCE.usage(T0, T1, "team"),
        by="team",
        since=T0,
        until=T1,
        hourly_cost=2.0,
        capacity_tokens_per_hour=100_000,
    )
    assert report.period_cost == pytest.approx(20.0)
    assert report.rate_per_1m == pytest.approx(20.0)
    lines = {x.name: x for x in report.lines}
    assert set(lines) == {"legal", "sales", "(none)"}
    assert lines["legal"].tokens == 60_000 and lines["legal"].requests == 2
    assert lines["legal"].cost == pytest.approx(1.2)
    assert lines["sales"].cost == pytest.approx(0.4)
    assert report.idle.name == IDLE
    assert report.idle.cost == pytest.approx(20.0 - 1.2 - 0.4 - 0.4)
    total = sum(x.cost for x in report.lines) + report.idle.cost
    assert total == pytest.approx(report.period_cost)
    assert sum(x.share for x in report.lines) + report.idle.share == pytest.approx(1.0)
    assert not report.over_capacity


def test_by_key() -> None:
    report = chargeback(
        SOURCE.usage(T0, T1, "key"),
        by="key",
        since=T0,
        until=T1,
        hourly_cost=2.0,
        capacity_tokens_per_hour=100_000,
    )
    assert [x.name for x in report.lines] == ["alice", "bob", "carol", "dave"]


def test_over_capacity_shares_the_cost_by_tokens() -> None:
    report = chargeback(
        SOURCE.usage(T0, T1, "team"),
        by="team",
        since=T0,
        until=T1,
        hourly_cost=2.0,
        capacity_tokens_per_hour=1_000,  # 10,000 tokens in the period; 100,000 were served
    )
    assert report.over_capacity
    assert report.idle.cost == 0
    assert sum(x.cost for x in report.lines) == pytest.approx(20.0)


def test_empty_period_is_refused() -> None:
    with pytest.raises(InvalidInput, match="period is empty"):
        chargeback([], by="team", since=T1, until=T0, hourly_cost=1, capacity_tokens_per_hour=1)
