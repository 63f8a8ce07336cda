"""Retention: delete records older than N days, leaving a chain that still verifies.

The purge is itself a record (kind ``purge``) appended in the same transaction as the
deletion; it carries ``through_seq`` and ``through_hash`` — the last removed record's
number and hash — from which the first surviving record's ``prev_hash`` continues.

A purge is valid only with the witness's signature over the purged range: the witness is
sent the records between two heads it signed, recomputes the chain, and signs
``(through_seq, through_hash)`` only when that record lies on its signed chain and is older
than its own minimum age. The signature travels in the purge record (``witness_at``,
``witness_sig``); ``audit verify`` rejects a purge record without a valid one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from modelyard.audit.canonical import iso
from modelyard.audit.checkpoints import record_bodies
from modelyard.audit.log import Appended, AuditEntry, AuditLog
from modelyard.audit.witness.core import Refused
from modelyard.catalog.audit_events import audited
from modelyard.errors import InvalidInput, Unavailable
from modelyard.store.audit_tables import AuditRecordRow


@audited("purge")
def purge_older_than(log: AuditLog, days: int, *, actor: str = "retention") -> Appended | None:
    """Remove records older than ``days``; the purge record, or None when nothing was due
    (nothing is removed or recorded then)."""
    if days < 1:
        raise InvalidInput("retention must be at least 1 day")
    cutoff = iso(datetime.now(UTC) - timedelta(days=days))
    log.checkpoint()  # a signed head must cover the range before the witness signs a purge
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
            anchors = log.witness.anchors(int(last))
            bodies, _ = record_bodies(session, int(anchors["from_seq"]) + 1, int(anchors["to_seq"]))
            signed = log.witness.sign_purge(
                int(last), int(anchors["from_seq"]), str(anchors["from_hash"]), bodies
            )
            if signed.through_hash != through_hash:
                raise Refused(
                    f"the witness's hash for record {last} differs from the log's: "
                    "the chain was rewritten",
                    code="fork",
                )
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
                    "witness_at": signed.at,
                    "witness_sig": signed.sig,
                },
            )
            return log.append_in(session, entry)
    except SQLAlchemyError as exc:
        raise Unavailable(f"the audit log cannot be purged: {type(exc).__name__}") from exc
