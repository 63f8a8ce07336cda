"""Chargeback from the real audit log (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from modelyard.audit.log import AuditEntry, AuditLog
from modelyard.config import Settings
from modelyard.cost.audit_usage import AuditUsage
from modelyard.cost.chargeback import Chargeback, UsageRow, chargeback
from modelyard.store.database import Database
from tests.cost.records import append_requests


@pytest.fixture
def audit_db(settings: Settings) -> Iterator[Database]:
    db = Database(settings.resolved_database_url)
    yield db
    db.close()


def _by_team(source: AuditUsage, since: datetime, until: datetime) -> Chargeback:
    """Chargeback per team at 1 USD an hour for a million tokens an hour."""
    return chargeback(
        source.usage(since, until, "team"),
        by="team",
        since=since,
        until=until,
        hourly_cost=1.0,
        capacity_tokens_per_hour=1_000_000,
    )


def test_usage_and_chargeback_from_audit_records(audit_db: Database, settings: Settings) -> None:
    log = AuditLog(audit_db, settings)
    try:
        for actor, team, prompt, completion in (
            ("alice", "legal", 1200, 300),
            ("alice", "legal", 800, 200),
            ("bob", "sales", 500, 500),
            ("carol", None, 100, 0),
        ):
            log.append(
                AuditEntry(
                    actor=actor,
                    team=team,
                    route="/v1/completions",
                    target="gemma3-270m@1",
                    status=200,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                )
            )
        log.append(AuditEntry(kind="event", actor="admin", target="keys.create"))
    finally:
        log.close(checkpoint=False)
    now = datetime.now(UTC)
    since, until = now - timedelta(hours=1), now + timedelta(minutes=1)
    source = AuditUsage(audit_db)
    by_team = {row.group: row for row in source.usage(since, until, "team")}
    assert by_team["legal"] == UsageRow("legal", 2, 2000, 500, 0, 2500)
    assert by_team["sales"] == UsageRow("sales", 1, 500, 500, 0, 1000)
    assert by_team[None] == UsageRow(None, 1, 100, 0, 0, 100)
    by_key = {row.group: row.requests for row in source.usage(since, until, "key")}
    assert by_key == {"alice": 2, "bob": 1, "carol": 1}  # the event record is not usage
    assert source.usage(now - timedelta(days=3), now - timedelta(days=2), "team") == []

    report = _by_team(source, since, until)
    lines = {x.name: x for x in report.lines}
    assert lines["legal"].tokens == 2500
    assert lines["(none)"].tokens == 100
    assert report.idle.cost > 0


def test_throughput_from_served_traffic(audit_db: Database, settings: Settings) -> None:
    from modelyard.cost.traffic import served_throughput
    from modelyard.errors import InvalidInput

    log = AuditLog(audit_db, settings)
    try:
        for prompt, completion, latency_ms, status, cache in (
            (900, 100, 2000, 200, None),
            (400, 100, 3000, 200, "miss"),
            (5000, 0, 10, 500, None),  # failed: not counted
            (900, 100, 7, 200, "hit"),  # answered from the cache: not the engine's speed
        ):
            log.append(
                AuditEntry(
                    actor="k",
                    team="t",
                    target="gemma3-270m@1",
                    status=status,
                    latency_ms=latency_ms,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    details={"cache": cache} if cache else {},
                )
            )
    finally:
        log.close(checkpoint=False)
    now = datetime.now(UTC)
    since, until = now - timedelta(hours=1), now + timedelta(minutes=1)
    measured = served_throughput(audit_db, "gemma3-270m@1", since, until)
    assert measured.decode_tokens_per_s == pytest.approx(1500 / 5.0)  # tokens per request-second
    assert "2 requests of gemma3-270m@1" in measured.source
    with pytest.raises(InvalidInput, match="no served requests of other@1"):
        served_throughput(audit_db, "other@1", since, until)


def test_cache_hits_are_usage_but_priced_at_what_they_were_charged(
    audit_db: Database, settings: Settings
) -> None:
    append_requests(
        audit_db,
        settings,
        [
            ("legal", 900, 100, {"cache": "miss"}),
            ("legal", 900, 100, {"cache": "hit", "charged_tokens": 100}),
            ("legal", 900, 100, {"cache": "hit", "charged_tokens": 100}),
            ("sales", 900, 100, {}),  # cache off for the key
        ],
    )
    now = datetime.now(UTC)
    since, until = now - timedelta(hours=1), now + timedelta(minutes=1)
    from modelyard.audit.usage import usage_by

    legal = {u.group: u for u in usage_by(audit_db, since, until, "team")}["legal"]
    assert (legal.requests, legal.total_tokens, legal.cache_hits) == (3, 3000, 2)
    assert (legal.cache_hit_tokens, legal.cache_hit_charged_tokens) == (2000, 200)
    assert legal.charged_tokens == 1200 and legal.to_json()["charged_tokens"] == 1200
    report = _by_team(AuditUsage(audit_db), since, until)
    lines = {x.name: x for x in report.lines}
    assert lines["legal"].tokens == 3000 and lines["legal"].charged_tokens == 1200
    assert lines["legal"].cache_hits == 2
    assert lines["legal"].cost == pytest.approx(lines["sales"].cost * 1.2)  # 1,200 vs 1,000
