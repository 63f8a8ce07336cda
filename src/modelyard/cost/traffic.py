"""Throughput measured from served traffic: the audit log's request records for one model."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from modelyard.audit.canonical import iso
from modelyard.audit.usage import is_cache_hit
from modelyard.cost.compare import Throughput
from modelyard.errors import InvalidInput, StoreFault
from modelyard.store.audit_tables import AuditRecordRow
from modelyard.store.database import Database


def served_throughput(db: Database, target: str, since: datetime, until: datetime) -> Throughput:
    """Tokens (prompt + completion) per second of request time for ``target`` (NAME@N).

    Requests that overlapped are counted at their own duration each, so this is the speed
    one stream saw; multiply by concurrent streams (``--streams``) for a machine's capacity.
    Response-cache hits are left out: the engine did not produce their tokens.
    """
    query = select(
        func.count(),
        func.coalesce(func.sum(AuditRecordRow.prompt_tokens), 0),
        func.coalesce(func.sum(AuditRecordRow.completion_tokens), 0),
        func.coalesce(func.sum(AuditRecordRow.latency_ms), 0),
    ).where(
        AuditRecordRow.kind == "request",
        AuditRecordRow.target == target,
        AuditRecordRow.status == 200,
        AuditRecordRow.latency_ms.is_not(None),
        ~is_cache_hit(),
        AuditRecordRow.at >= iso(since),
        AuditRecordRow.at < iso(until),
    )
    try:
        with Session(db.engine) as session:
            count, prompt, completion, latency_ms = session.execute(query).one()
    except SQLAlchemyError as exc:
        raise StoreFault(f"cannot read served traffic from the audit log: {exc}") from exc
    tokens = int(prompt) + int(completion)
    if not count or not latency_ms or not tokens:
        raise InvalidInput(
            f"no served requests of {target} with timings in the audit log for that period"
        )
    rate = tokens / (int(latency_ms) / 1000)
    return Throughput(
        rate,
        None,
        f"served traffic: {count} requests of {target}, {tokens:,} tokens in "
        f"{int(latency_ms) / 1000:,.1f} s of request time",
    )
