"""Appending to the hash-chained audit log.

Appends that arrive together are group-committed: one thread of the process appends every
entry waiting in one transaction (:mod:`modelyard.audit.batch`: K sequence numbers
allocated in one statement under the head-row lock, a constant number of statements per
batch), while the next batch gathers. Concurrent appenders — threads, or gateway processes
on one database — queue on that row, so the chain never forks.
:meth:`AuditLog.append` returns only after the commit; a caller that cannot append must not
release its response (fail closed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from modelyard.audit.batch import Outcome, append_batch
from modelyard.audit.checkpoints import sign_head
from modelyard.audit.connection import audit_engine
from modelyard.audit.entry import TEXT_MODES, Appended, AuditEntry
from modelyard.audit.witness.client import open_witness
from modelyard.config import Settings
from modelyard.errors import InvalidInput, ModelyardError, Unavailable
from modelyard.store.audit_tables import AuditHeadRow
from modelyard.store.database import Database

__all__ = ["MAX_GROUP", "TEXT_MODES", "Appended", "AuditEntry", "AuditLog", "record_event"]

_log = logging.getLogger(__name__)


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
        """Held while a group commits (and by callers of :meth:`append_in` that want no
        group of this log to commit meanwhile)."""
        self._waiting = threading.Condition()
        self._pending: list[_Ticket] = []
        self._leading = False
        self._digests: dict[str, str] = {}
        """Identifiers' digests (``audit_subject_keys`` is indexed by them), kept across
        batches; the keys themselves are read afresh by every batch."""
        settings.audit_dir.mkdir(parents=True, exist_ok=True)
        self.witness = open_witness(settings)
        """Who signs checkpoints: the witness process, or the key in the home."""
        self.sign_on_append = True
        """Sign every N records in :meth:`append`; off while a :class:`Checkpointer` runs."""

    def append(self, entry: AuditEntry) -> Appended:
        """Append ``entry``; committed (durable) when this returns.

        Group commit: one caller at a time leads. It appends every entry waiting (and
        those that arrive while it waits for the head-row lock) in one transaction, and
        again until its own entry is in; the others wait until theirs is committed (or
        failed), or until nobody leads and one of them takes over. Concurrent requests
        share one commit (one fsync) instead of queueing for one each.
        """
        if entry.text_mode not in TEXT_MODES:
            raise InvalidInput(f"unknown audit text mode {entry.text_mode!r}")
        ticket = _Ticket(entry)
        with self._waiting:
            self._pending.append(ticket)
            while self._leading and not ticket.finished:
                self._waiting.wait()
            lead = not ticket.finished
            self._leading = self._leading or lead
        if lead:
            self._lead(ticket)
        appended = ticket.result()
        if self.sign_on_append and appended.seq % self.settings.audit_checkpoint_every == 0:
            self._checkpoint_quietly()
        return appended

    def _lead(self, ticket: _Ticket) -> None:
        """Commit groups until ``ticket``'s is in (more than MAX_GROUP waiting: a later
        one); wake the callers whose entries each group finished."""
        try:
            with self.lock:
                while not ticket.finished:
                    self._commit_group(None)
                    with self._waiting:
                        self._waiting.notify_all()
        finally:
            with self._waiting:
                self._leading = False
                self._waiting.notify_all()

    def _take(self, most: int = MAX_GROUP) -> list[_Ticket]:
        with self._waiting:
            batch, self._pending = self._pending[:most], self._pending[most:]
        return batch

    def _commit_group(self, given: list[_Ticket] | None) -> None:
        """Append in one transaction (the caller holds :attr:`lock`) the ``given`` tickets,
        or (None) those waiting, joined by those that arrive while the head-row lock is
        awaited (up to MAX_GROUP in all). An entry that cannot become a record fails alone
        inside the batch; if the transaction itself fails with more than one entry, each is
        retried alone, so that one entry's failure (a value the database refuses) is its
        own and not its neighbours'."""
        batch = self._take() if given is None else given
        late: list[_Ticket] = []

        def arrived() -> list[AuditEntry]:  # while the head-row lock was awaited
            late.extend(self._take(MAX_GROUP - len(batch)))
            return [ticket.entry for ticket in late]

        joins = arrived if given is None else None
        try:
            with self.engine.begin() as conn:
                entries = [ticket.entry for ticket in batch]
                outcomes = append_batch(conn, self.settings, entries, self._digests, joins)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller(s), never dropped
            batch = batch + late
            if len(batch) == 1:
                batch[0].fail(exc)
                return
            for ticket in batch:
                self._commit_group([ticket])
            return
        for ticket, outcome in zip(batch + late, outcomes, strict=True):
            if isinstance(outcome, Appended):
                ticket.done(outcome)
            else:
                ticket.fail(outcome)

    def append_batch_in(self, session: Session, entries: Sequence[AuditEntry]) -> list[Outcome]:
        """Append ``entries`` inside the caller's transaction (which then holds the head-row
        lock until it ends): one outcome each, its :class:`Appended` or the exception that
        kept it out. Committed with the caller's transaction, not before."""
        session.flush()  # the caller's own changes first: the head-row lock is taken last
        return append_batch(session.connection(), self.settings, entries, self._digests)

    def append_in(self, session: Session, entry: AuditEntry) -> Appended:
        """Append one entry inside the caller's transaction (see :meth:`append_batch_in`);
        raises what kept it out of the log."""
        (outcome,) = self.append_batch_in(session, [entry])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

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
