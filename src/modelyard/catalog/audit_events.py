"""Lifecycle events in the tamper-evident audit log, appended inside the change's own
transaction: the change and its audit record commit together or not at all, and the
record's place in the chain is the exact switch point (a request that saw the new state is
recorded after it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from modelyard.config import Settings
from modelyard.store.database import Database


def append_event(
    session: Session,
    db: Database,
    settings: Settings,
    kind: str,
    actor: str,
    subject: str,
    details: dict[str, Any],
) -> None:
    """Append event ``kind`` (``lifecycle.promote``, ``alias.set``…) in ``session``."""
    from modelyard.audit.log import AuditEntry, AuditLog  # the audit log sits above the catalog

    log = AuditLog(db, settings)
    try:
        with log.lock:
            log.append_in(
                session,
                AuditEntry(
                    kind="event", actor=actor, target=subject, details={"event": kind, **details}
                ),
            )
    finally:
        log.close(checkpoint=False)
