"""Appending to the hash-chained audit log.

An append is one transaction: lock the head row (``UPDATE audit_head SET seq = seq + 1``),
read the previous hash, seal the texts under the data subject's key, insert the record,
move the head. Concurrent appenders — threads or gateway processes — queue on that row, so
the chain never forks. :meth:`AuditLog.append` returns only after the commit; a caller that
cannot append must not release its response (fail closed).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from modelyard.audit import cipher
from modelyard.audit.canonical import iso_now, record_hash
from modelyard.audit.checkpoints import sign_head
from modelyard.audit.connection import audit_engine
from modelyard.audit.identities import seal, storable
from modelyard.audit.secrets import subject_digest
from modelyard.audit.text_digest import HMAC_MODE, text_hmac, text_secret
from modelyard.audit.witness.client import open_witness
from modelyard.config import Settings
from modelyard.errors import InvalidInput, ModelyardError, Unavailable
from modelyard.store.audit_tables import AuditHeadRow, AuditRecordRow, AuditSubjectKeyRow
from modelyard.store.database import Database

_log = logging.getLogger(__name__)
TEXT_MODES = ("full", "redacted", "hash", "none")


@dataclass
class AuditEntry:
    """What a caller records. ``prompt``/``response`` are the texts as they may be stored
    (already redacted when the PII policy says so); ``text_mode`` says which they are."""

    kind: str = "request"
    actor: str | None = None
    team: str | None = None
    route: str | None = None
    target: str | None = None
    blob_sha256: str | None = None
    status: int | None = None
    latency_ms: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    client: str | None = None
    subject: str | None = None
    text_mode: str = "none"
    prompt: str | None = None
    response: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Appended:
    seq: int
    hash: str


MAX_GROUP = 64
"""The most entries one group commit appends."""


class _Ticket:
    """One waiting append: its entry, then its result or its error (set under the log's lock)."""

    def __init__(self, entry: AuditEntry) -> None:
        self.entry = entry
        self.finished = False
        self._appended: Appended | None = None
        self._error: Exception | None = None

    def done(self, appended: Appended) -> None:
        self._appended, self.finished = appended, True

    def fail(self, error: Exception) -> None:
        self._error, self.finished = error, True

    def result(self) -> Appended:
        if self._error is not None:
            if isinstance(self._error, SQLAlchemyError):
                raise Unavailable(
                    f"the audit log cannot be written: {type(self._error).__name__}"
                ) from self._error
            raise self._error
        assert self._appended is not None, "an append left unfinished"
        return self._appended


class AuditLog:
    """The audit log of one database. Thread-safe; share one per process."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.engine: Engine = audit_engine(db)
        self.lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[_Ticket] = []
        settings.audit_dir.mkdir(parents=True, exist_ok=True)
        self.witness = open_witness(settings)
        """Who signs checkpoints: the witness process, or the key in the home."""
        self.sign_on_append = True
        """Sign every N records in :meth:`append`; off while a :class:`Checkpointer` runs."""

    def append(self, entry: AuditEntry) -> Appended:
        """Append ``entry``; committed (durable) when this returns.

        Group commit: appends that arrive while another is committing wait for the log's
        lock; the first of them to get it appends every waiting entry in one transaction,
        so concurrent requests share one commit (one fsync) instead of queueing for one each.
        """
        if entry.text_mode not in TEXT_MODES:
            raise InvalidInput(f"unknown audit text mode {entry.text_mode!r}")
        ticket = _Ticket(entry)
        with self._pending_lock:
            self._pending.append(ticket)
        with self.lock:
            while not ticket.finished:  # more than MAX_GROUP waiting: ours may be in a later group
                with self._pending_lock:
                    batch, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                self._commit_group(batch)
        appended = ticket.result()
        if self.sign_on_append and appended.seq % self.settings.audit_checkpoint_every == 0:
            self._checkpoint_quietly()
        return appended

    def _commit_group(self, batch: list[_Ticket]) -> None:
        """Append ``batch`` in one transaction (the caller holds :attr:`lock`). If that fails
        and there is more than one entry, each is retried alone, so one entry's failure is
        its own and not its neighbours'."""
        try:
            with Session(self.engine) as session, session.begin():
                results = [self.append_in(session, ticket.entry) for ticket in batch]
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller(s), never dropped
            if len(batch) == 1:
                batch[0].fail(exc)
                return
            for ticket in batch:
                self._commit_group([ticket])
            return
        for ticket, appended in zip(batch, results, strict=True):
            ticket.done(appended)

    def append_in(self, session: Session, entry: AuditEntry) -> Appended:
        """Append inside the caller's transaction (which must hold :attr:`lock`)."""
        session.execute(
            update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=AuditHeadRow.seq + 1)
        )
        head = session.execute(
            select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == 1)
        ).one()
        seq, prev_hash = int(head.seq), str(head.hash)
        fields = self._fields(session, entry, seq)
        digest = record_hash(fields, prev_hash)
        session.add(AuditRecordRow(seq=seq, prev_hash=prev_hash, hash=digest, **fields))
        session.flush()
        session.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(hash=digest))
        return Appended(seq, digest)

    def _fields(self, session: Session, entry: AuditEntry, seq: int) -> dict[str, Any]:
        """The stored columns. Identifiers of people are pseudonyms sealed under the
        subject's key (:mod:`modelyard.audit.identities`); text is sealed, digested with
        the deployment's HMAC key (:mod:`modelyard.audit.text_digest`), or left out."""
        entry = AuditEntry(**storable(dict(vars(entry))))
        mode = entry.text_mode
        has_text = entry.prompt is not None or entry.response is not None
        if has_text and mode in ("full", "redacted") and self.settings.audit_store_text == "hash":
            mode = "hash"
        actor, target, details = seal(
            seq,
            entry.kind,
            entry.actor,
            entry.target,
            dict(entry.details),
            lambda name: self._subject_key(session, name),
        )
        subject_id = key = None
        owner = entry.subject or (entry.actor if has_text else None)
        if owner is not None:
            subject_id, key = self._subject_key(session, owner)
        prompt_ct = response_ct = prompt_sha = response_sha = None
        if mode in ("full", "redacted") and has_text and key is not None:
            if entry.prompt is not None:
                prompt_ct = cipher.encrypt(key, entry.prompt, f"{seq}:prompt")
            if entry.response is not None:
                response_ct = cipher.encrypt(key, entry.response, f"{seq}:response")
        elif mode == "hash" and has_text:
            secret = text_secret(self.settings)
            prompt_sha = text_hmac(secret, entry.prompt) if entry.prompt is not None else None
            response_sha = text_hmac(secret, entry.response) if entry.response is not None else None
            mode = HMAC_MODE
        else:
            mode = "none"
        return {
            "kind": entry.kind,
            "at": iso_now(),
            "actor": actor,
            "team": entry.team,
            "route": entry.route,
            "target": target,
            "blob_sha256": entry.blob_sha256,
            "status": entry.status,
            "latency_ms": entry.latency_ms,
            "prompt_tokens": entry.prompt_tokens,
            "completion_tokens": entry.completion_tokens,
            "client": entry.client,
            "data_subject": subject_id,
            "text_mode": mode,
            "prompt_ct": prompt_ct,
            "response_ct": response_ct,
            "prompt_sha256": prompt_sha,
            "response_sha256": response_sha,
            "details": details,
        }

    def _subject_key(self, session: Session, subject: str) -> tuple[str, str]:
        digest = subject_digest(self.settings, subject)
        row = session.get(AuditSubjectKeyRow, digest)
        if row is None:
            row = AuditSubjectKeyRow(
                subject_digest=digest,
                id=str(uuid.uuid4()),
                key=cipher.new_key(),
                created_at=iso_now(),
            )
            session.add(row)
            session.flush()
        return row.id, row.key

    def head(self) -> Appended:
        try:
            with Session(self.engine) as session:
                row = session.execute(select(AuditHeadRow.seq, AuditHeadRow.hash)).one()
        except SQLAlchemyError as exc:
            raise Unavailable(f"the audit log cannot be read: {type(exc).__name__}") from exc
        return Appended(int(row.seq), str(row.hash))

    def checkpoint(self) -> Appended | None:
        """Have the witness sign the current head (every N records and N seconds, on
        shutdown, on demand). None for an empty log. Raises
        :class:`~modelyard.audit.witness.core.Refused` when the witness will not sign (the
        chain was rewritten or is behind it), :class:`Unavailable` when it is unreachable."""
        try:
            statement = sign_head(self.engine, self.witness, self.settings)
        except SQLAlchemyError as exc:
            raise Unavailable(f"the audit log cannot be read: {type(exc).__name__}") from exc
        if statement is not None:
            return Appended(statement.seq, statement.hash)
        head = self.head()
        return None if head.seq == 0 else head

    def _checkpoint_quietly(self) -> None:
        """After an append: the record is committed whatever happens here; a witness that
        is down or refusing is logged, and the checkpointer keeps trying."""
        try:
            self.checkpoint()
        except ModelyardError as exc:
            _log.warning("audit checkpoint failed: %s", exc.message)

    def close(self, *, checkpoint: bool = True) -> None:
        try:
            if checkpoint:
                self._checkpoint_quietly()
        finally:
            self.witness.close()
            if self.engine is not self.db.engine:
                self.engine.dispose()


def record_event(
    db: Database,
    settings: Settings,
    kind: str,
    actor: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> Appended:
    """Append a non-request event (a lifecycle transition, a key revoked, …) to the log.

    ``kind`` names the event (``lifecycle.promote``), ``actor`` who did it, ``subject`` what
    it was done to (``gemma3-270m@2``). Committed when this returns; raises
    :class:`~modelyard.errors.Unavailable` if it cannot be written.
    """
    log = AuditLog(db, settings)
    try:
        return log.append(
            AuditEntry(
                kind="event",
                actor=actor,
                target=subject,
                details={"event": kind, **(details or {})},
            )
        )
    finally:
        log.close(checkpoint=False)
