"""Token usage from the audit log, grouped by team or key — what cost chargeback reads.

Only completion records (``kind == "request"``) carry tokens; the ``request.accepted``
record written before each answer is not counted, so a request counts once. Keys are
stored as pseudonyms (:mod:`modelyard.audit.identities`) and shown by name while their
subject key exists; an erased key's usage stays in the totals under ``[erased]``.

Response-cache hits (``details.cache == "hit"``) are counted as served (their tokens are in
the prompt and completion totals, as the client was billed them) and apart: how many, their
tokens, and the tokens they were charged against budgets (``details.charged_tokens``,
``MODELYARD_CACHE_HIT_TOKEN_RATE`` of them), which is what chargeback prices, since the
engine did not run for them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from modelyard.audit.canonical import iso
from modelyard.audit.identities import reveal, subject_of
from modelyard.errors import InvalidInput
from modelyard.store.audit_tables import AuditRecordRow, AuditSubjectKeyRow
from modelyard.store.database import Database


@dataclass(frozen=True)
class Usage:
    """Usage of one team or key (``group``; ``None`` for requests without one) in a period."""

    group: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cache_hits: int = 0
    """Requests answered from the response cache (counted in ``requests`` too)."""
    cache_hit_tokens: int = 0
    """Their prompt and completion tokens (counted in the totals too)."""
    cache_hit_charged_tokens: int = 0
    """What they counted against budgets."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def charged_tokens(self) -> int:
        """Tokens the engine served plus what cache hits were charged: what budgets saw."""
        return self.total_tokens - self.cache_hit_tokens + self.cache_hit_charged_tokens

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "total_tokens": self.total_tokens,
            "charged_tokens": self.charged_tokens,
        }


def is_cache_hit() -> Any:
    """The SQL condition: a request record answered from the response cache."""
    return func.coalesce(AuditRecordRow.details["cache"].as_string(), "") == "hit"


def charged_tokens() -> Any:
    """The SQL value: a request record's tokens as budgets counted them (a cache hit's
    ``details.charged_tokens``, else its prompt and completion tokens)."""
    tokens = func.coalesce(AuditRecordRow.prompt_tokens, 0) + func.coalesce(
        AuditRecordRow.completion_tokens, 0
    )
    charged = func.coalesce(AuditRecordRow.details["charged_tokens"].as_integer(), tokens)
    return case((is_cache_hit(), charged), else_=tokens)


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
    hit = is_cache_hit()
    tokens = func.coalesce(AuditRecordRow.prompt_tokens, 0) + func.coalesce(
        AuditRecordRow.completion_tokens, 0
    )
    charged = func.coalesce(AuditRecordRow.details["charged_tokens"].as_integer(), tokens)
    query = (
        select(
            group,
            func.count(),
            func.coalesce(func.sum(AuditRecordRow.prompt_tokens), 0),
            func.coalesce(func.sum(AuditRecordRow.completion_tokens), 0),
            func.coalesce(func.sum(case((hit, 1), else_=0)), 0),
            func.coalesce(func.sum(case((hit, tokens), else_=0)), 0),
            func.coalesce(func.sum(case((hit, charged), else_=0)), 0),
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
        rows = [
            Usage(name, *(int(n) for n in numbers)) for name, *numbers in session.execute(query)
        ]
        if by != "key":
            return rows
        names = _key_names(session, [u.group for u in rows])
    merged: dict[str | None, Usage] = {}
    for u in rows:
        name = names.get(u.group, u.group) if u.group is not None else None
        seen = merged.get(name)
        if seen is not None:
            u = Usage(
                name,
                seen.requests + u.requests,
                seen.prompt_tokens + u.prompt_tokens,
                seen.completion_tokens + u.completion_tokens,
                seen.cache_hits + u.cache_hits,
                seen.cache_hit_tokens + u.cache_hit_tokens,
                seen.cache_hit_charged_tokens + u.cache_hit_charged_tokens,
            )
        merged[name] = replace(u, group=name)
    return sorted(merged.values(), key=lambda u: (u.group is None, u.group or ""))


def _key_names(session: Session, groups: list[str | None]) -> dict[str | None, str | None]:
    """Pseudonymous actors → key names (opened from one record each; ``[erased]`` if gone)."""
    names: dict[str | None, str | None] = {}
    wanted = [g for g in groups if subject_of(g) is not None]
    if not wanted:
        return names
    ids = [subject_of(g) for g in wanted]
    keys = {
        r.id: r.key
        for r in session.execute(
            select(AuditSubjectKeyRow).where(AuditSubjectKeyRow.id.in_(ids))
        ).scalars()
    }
    for group in wanted:
        row = session.execute(
            select(AuditRecordRow.seq, AuditRecordRow.details)
            .where(AuditRecordRow.actor == group)
            .limit(1)
        ).one()
        names[group] = reveal(int(row.seq), group, None, dict(row.details or {}), keys)[0]
    return names
