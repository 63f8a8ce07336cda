"""Erasure (GDPR art. 17) by crypto-shredding.

Every stored prompt/answer text is sealed under its data subject's own AES-256-GCM key. To
erase a subject, its key row is deleted: the ciphertext — and so the chain, whose hashes
cover the ciphertext — stays intact and verifiable, but can never be read again. The
erasure is recorded as an event naming only the subject's pseudonymous id.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from modelyard.audit.log import AuditEntry, AuditLog
from modelyard.audit.secrets import subject_digest
from modelyard.errors import NotFound
from modelyard.store.audit_tables import AuditRecordRow, AuditSubjectKeyRow


@dataclass(frozen=True)
class Erasure:
    subject_id: str
    records: int
    event_seq: int


def erase_subject(log: AuditLog, subject: str, *, actor: str) -> Erasure:
    digest = subject_digest(log.settings, subject)
    with log.lock, Session(log.engine) as session, session.begin():
        row = session.get(AuditSubjectKeyRow, digest)
        if row is None:
            raise NotFound("no audit text is stored for that subject (or it was already erased)")
        subject_id = row.id
        records = session.execute(
            select(func.count()).where(AuditRecordRow.data_subject == subject_id)
        ).scalar_one()
        session.execute(
            delete(AuditSubjectKeyRow).where(AuditSubjectKeyRow.subject_digest == digest)
        )
        appended = log.append_in(
            session,
            AuditEntry(
                kind="event",
                actor=actor,
                target=f"subject:{subject_id}",
                details={"event": "audit.erase", "records": int(records)},
            ),
        )
    return Erasure(subject_id, int(records), appended.seq)
