"""Erasure (GDPR art. 17) by crypto-shredding.

Everything in the audit log that identifies a data subject is sealed under that subject's
own AES-256-GCM key: the texts of requests they are the subject of (the OpenAI ``user``
field, or the key's name when the request names no user), and their name wherever a record
names them — as the acting key (``actor``), as the key an event is about (``key:NAME``), or
under an identity key in ``details`` (``actor``, ``user``, ``owner``, ``created_by``); the
chained columns carry only the pseudonym ``~<id>`` (:mod:`modelyard.audit.identities`).
To erase a subject, its key row is deleted: the sealed tokens — and so the chain, whose
hashes cover them — stay intact and verifiable, but can never be opened again. The
erasure is itself recorded, naming only the subject's pseudonymous id and counts per kind.

Records written before identifiers were sealed, and free text (a promotion's ``reason``),
may name the subject in clear; they cannot be changed without breaking the chain, so they
are listed (``in_clear``) for the operator instead of being claimed as erased.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from modelyard.audit.identities import KEY_TARGET, SEALED, pseudonym
from modelyard.audit.log import AuditEntry, AuditLog
from modelyard.audit.secrets import subject_digest
from modelyard.batch.erasure import BatchErasure, erase_batch_data
from modelyard.catalog.audit_events import audited
from modelyard.errors import NotFound, Unavailable
from modelyard.store.audit_tables import AuditRecordRow, AuditSubjectKeyRow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Erasure:
    subject_id: str
    records: dict[str, list[int]]
    """Sequence numbers of the records whose sealed parts became unreadable, per kind."""
    event_seq: int
    in_clear: list[int] = field(default_factory=list)
    """Records that still carry the subject's identifier in clear: written before identifiers
    were sealed, or naming it in free text (a ``reason``). The chain covers them as they are."""
    batch: BatchErasure = field(default_factory=BatchErasure)
    """The subject's batch requests and answers removed (:mod:`modelyard.batch.erasure`)."""

    @property
    def count(self) -> int:
        return sum(len(seqs) for seqs in self.records.values())

    def to_json(self) -> dict[str, object]:
        return {
            "subject_id": self.subject_id,
            "event_seq": self.event_seq,
            "count": self.count,
            "records": self.records,
            "in_clear": self.in_clear,
            "batch": self.batch.to_json(),
        }


@audited("audit.erase")
def erase_subject(log: AuditLog, subject: str, *, actor: str, reason: str | None = None) -> Erasure:
    """Destroy ``subject``'s key and record the erasure (with the request's ``reason``, e.g.
    a ticket number); what it covered, per kind."""
    digest = subject_digest(log.settings, subject)
    try:
        with log.lock, Session(log.engine) as session, session.begin():
            row = session.get(AuditSubjectKeyRow, digest)
            if row is None:
                raise NotFound(
                    "no audit record is linked to that subject (or it was already erased)"
                )
            subject_id = row.id
            records, legacy = _scan(session, subject, subject_id)
            batch = erase_batch_data(session, subject)
            session.execute(
                delete(AuditSubjectKeyRow).where(AuditSubjectKeyRow.subject_digest == digest)
            )
            appended = log.append_in(
                session,
                AuditEntry(
                    kind="event",
                    actor=actor,
                    target=f"subject:{subject_id}",
                    details={
                        "event": "audit.erase",
                        "records": sum(len(s) for s in records.values()),
                        "per_kind": {kind: len(seqs) for kind, seqs in records.items()},
                        "in_clear": len(legacy),
                        "batch_lines": batch.lines,
                        "batch_files": len(batch.files),
                        **({"reason": reason.strip()[:500]} if reason and reason.strip() else {}),
                    },
                ),
            )
    except SQLAlchemyError as exc:
        raise Unavailable(f"the audit log cannot be written: {type(exc).__name__}") from exc
    _drop_cached_answers(log, digest)
    return Erasure(subject_id, records, appended.seq, legacy, batch)


def _drop_cached_answers(log: AuditLog, digest: str) -> None:
    """The subject's entries in the shared response cache go too. Should Redis be out of
    reach, no harm: a cache checks the subject's key (now gone) before any replay."""
    from modelyard.gateway.cache_store import drop_subject_entries

    try:
        drop_subject_entries(log.settings, digest)
    except Unavailable as exc:
        logger.warning("erasure: cached answers not dropped now: %s", exc.message)


def _scan(
    session: Session, subject: str, subject_id: str
) -> tuple[dict[str, list[int]], list[int]]:
    """``(linked, in_clear)``: records with anything sealed under the subject's key — its
    texts, or its name as actor, as a ``key:`` target, or inside ``details`` — per kind;
    and records that still carry ``subject`` in clear (written before identifiers were
    sealed, or in free text such as a ``reason``). One pass over the log."""
    name = pseudonym(subject_id)
    quoted_name, quoted_subject = json.dumps(name), json.dumps(subject, ensure_ascii=False)
    query = select(
        AuditRecordRow.seq,
        AuditRecordRow.kind,
        AuditRecordRow.actor,
        AuditRecordRow.target,
        AuditRecordRow.data_subject,
        AuditRecordRow.details,
    ).order_by(AuditRecordRow.seq)
    linked: dict[str, list[int]] = {}
    in_clear: list[int] = []
    for seq, kind, actor, target, data_subject, details in session.execute(
        query.execution_options(yield_per=1000)
    ):
        text = json.dumps(details, ensure_ascii=False) if isinstance(details, dict) else ""
        sealed_here = isinstance(details, dict) and isinstance(details.get(SEALED), dict)
        if (
            data_subject == subject_id
            or actor == name
            or target == KEY_TARGET + name
            or (sealed_here and quoted_name in text)
        ):
            linked.setdefault(kind, []).append(int(seq))
        if actor == subject or target == KEY_TARGET + subject or quoted_subject in text:
            in_clear.append(int(seq))
    return linked, in_clear
