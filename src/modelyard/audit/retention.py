"""Retention: delete records older than N days, leaving a chain that still verifies.

The purge is itself a record (kind ``purge``) appended in the same transaction as the
deletion; it carries ``through_seq`` and ``through_hash`` — the last removed record's
number and hash — from which the first surviving record's ``prev_hash`` continues.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from modelyard.audit.canonical import iso
from modelyard.audit.log import Appended, AuditEntry, AuditLog
from modelyard.errors import InvalidInput, Unavailable
from modelyard.store.audit_tables import AuditRecordRow


def purge_older_than(log: AuditLog, days: int, *, actor: str = "retention") -> Appended | None:
    """Remove records older than ``days``; the purge record, or None when nothing was due."""
    if days < 1:
        raise InvalidInput("retention must be at least 1 day")
    cutoff = iso(datetime.now(UTC) - timedelta(days=days))
    try:
        with log.lock, Session(log.engine) as session, session.begin():
            last = session.execute(
                select(func.max(AuditRecordRow.seq)).where(AuditRecordRow.at < cutoff)
            ).scalar_one_or_none()
            if last is None:
                return None
            through_hash = session.execute(
                select(AuditRecordRow.hash).where(AuditRecordRow.seq == last)
            ).scalar_one()
            removed = session.execute(
                select(func.count()).where(AuditRecordRow.seq <= last)
            ).scalar_one()
            session.execute(delete(AuditRecordRow).where(AuditRecordRow.seq <= last))
            entry = AuditEntry(
                kind="purge",
                actor=actor,
                details={
                    "through_seq": int(last),
                    "through_hash": through_hash,
                    "removed": int(removed or 0),
                    "cutoff": cutoff,
                    "retention_days": days,
                },
            )
            return log.append_in(session, entry)
    except SQLAlchemyError as exc:
        raise Unavailable(f"the audit log cannot be purged: {type(exc).__name__}") from exc
