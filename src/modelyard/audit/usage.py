"""Token usage from the audit log, grouped by team or key — what cost chargeback reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from modelyard.audit.canonical import iso
from modelyard.errors import InvalidInput
from modelyard.store.audit_tables import AuditRecordRow
from modelyard.store.database import Database


@dataclass(frozen=True)
class Usage:
    """Usage of one team or key (``group``; ``None`` for requests without one) in a period."""

    group: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total_tokens": self.total_tokens}


def usage_by(
    db: Database,
    since: datetime | None = None,
    until: datetime | None = None,
    by: Literal["team", "key", "model"] = "team",
) -> list[Usage]:
    """Requests and tokens per team (``by="team"``), key (``"key"``) or model@version
    (``"model"``) among request records with ``since <= time < until`` (UTC-aware datetimes)."""
    columns = {
        "team": AuditRecordRow.team,
        "key": AuditRecordRow.actor,
        "model": AuditRecordRow.target,
    }
    if by not in columns:
        raise InvalidInput(f"cannot group usage by {by!r} (use team, key or model)")
    group = columns[by]
    query = (
        select(
            group,
            func.count(),
            func.coalesce(func.sum(AuditRecordRow.prompt_tokens), 0),
            func.coalesce(func.sum(AuditRecordRow.completion_tokens), 0),
        )
        .where(AuditRecordRow.kind == "request")
        .group_by(group)
        .order_by(group)
    )
    if since is not None:
        query = query.where(AuditRecordRow.at >= iso(since))
    if until is not None:
        query = query.where(AuditRecordRow.at < iso(until))
    with Session(db.engine) as session:
        return [
            Usage(name, int(count), int(prompt), int(completion))
            for name, count, prompt, completion in session.execute(query)
        ]
