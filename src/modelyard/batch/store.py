"""Batches and their lines in the database: create, read, cancel, claim, record, finalize.

Every change is one transaction. A line's result and its ``done`` status are written
together, and only while it is still ``pending``, so a line is recorded once even when two
processes raced for it. A batch is run by the process holding its lease (``claim``,
``renew``); the output and error files are written in the same transaction that completes it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from modelyard.batch.files import new_file_row, unix
from modelyard.batch.input_lines import InputLine, LineProblem, body_json
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.governance.keys import Principal
from modelyard.store.batch_tables import BatchLineRow, BatchRow
from modelyard.store.database import Database
from modelyard.store.tables import utcnow

WINDOWS = {"24h": timedelta(hours=24)}
"""Completion windows offered (OpenAI's one)."""
ACTIVE = ("in_progress", "cancelling")
"""Statuses a runner works on."""
TERMINAL = ("failed", "completed", "expired", "cancelled")
ERASED = "erased"
"""A line whose request and answer were erased at its data subject's request
(:mod:`modelyard.batch.erasure`)."""
LINE_ERRORS = {
    ERASED: ("subject_erased", "this request's data was erased at its data subject's request"),
    "cancelled": ("batch_cancelled", "the batch was cancelled before this request ran"),
    "expired": (
        "batch_expired",
        "this request could not be run before the batch's completion window ended",
    ),
}


@dataclass(frozen=True)
class Counts:
    total: int
    completed: int
    failed: int

    def to_json(self) -> dict[str, int]:
        return {"total": self.total, "completed": self.completed, "failed": self.failed}


@dataclass(frozen=True)
class BatchRecord:
    id: str
    owner_key_id: str
    owner_key_name: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: str
    metadata: dict[str, str] | None
    errors: list[dict[str, Any]] | None
    output_file_id: str | None
    error_file_id: str | None
    times: dict[str, datetime | None]
    expires_at: datetime
    counts: Counts

    def to_json(self) -> dict[str, Any]:
        """OpenAI's Batch object."""
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            **{f"{name}_at": unix(value) for name, value in self.times.items()},
            "expires_at": unix(self.expires_at),
            "request_counts": self.counts.to_json(),
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class PendingLine:
    line_no: int
    custom_id: str
    body: str
    attempts: int


TIMES = (
    "created",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
)


def _counts(session: Session, batch_id: str, total: int) -> Counts:
    # One expression object in both places: PostgreSQL must see the same bound parameter in
    # the select list and the GROUP BY (two copies of ``< 400`` are two parameters to it).
    ok = (BatchLineRow.status_code < literal(400, type_=Integer)).label("ok")
    rows = session.execute(
        select(BatchLineRow.status, ok, func.count())
        .where(BatchLineRow.batch_id == batch_id, BatchLineRow.status != "pending")
        .group_by(BatchLineRow.status, ok)
    ).all()
    completed = sum(n for status, ok, n in rows if status == "done" and ok)
    failed = sum(n for status, ok, n in rows if not (status == "done" and ok))
    return Counts(total, completed, failed)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored one is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _record(session: Session, row: BatchRow) -> BatchRecord:
    return BatchRecord(
        id=row.id,
        owner_key_id=row.owner_key_id,
        owner_key_name=row.owner_key_name,
        endpoint=row.endpoint,
        input_file_id=row.input_file_id,
        completion_window=row.completion_window,
        status=row.status,
        metadata=json.loads(row.metadata_json) if row.metadata_json else None,
        errors=json.loads(row.errors_json) if row.errors_json else None,
        output_file_id=row.output_file_id,
        error_file_id=row.error_file_id,
        times={name: aware(getattr(row, f"{name}_at")) for name in TIMES},
        expires_at=aware(row.expires_at) or row.expires_at,
        counts=_counts(session, row.id, row.total),
    )


def check_metadata(metadata: Any) -> dict[str, str] | None:
    """OpenAI's rule: at most 16 pairs, keys up to 64 and values up to 512 characters."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise InvalidInput("metadata must be an object of at most 16 pairs", param="metadata")
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 512:
            raise InvalidInput(
                "metadata keys are strings of at most 64 characters, values at most 512",
                param="metadata",
            )
    return dict(metadata)


def output_line(batch_id: str, row: BatchLineRow) -> dict[str, Any]:
    """One line of the output file: the answer (whatever its status), or the batch's error."""
    digest = hashlib.sha256(f"{batch_id}:{row.line_no}".encode()).hexdigest()[:24]
    line: dict[str, Any] = {"id": f"batch_req_{digest}", "custom_id": row.custom_id}
    if row.status == "done":
        body = json.loads(row.response) if row.response else None
        response = {"status_code": row.status_code, "request_id": row.request_id, "body": body}
        return {**line, "response": response, "error": None}
    code, message = LINE_ERRORS.get(row.status, ("batch_failed", "this request did not run"))
    return {**line, "response": None, "error": {"code": code, "message": message}}


def is_failure(row: BatchLineRow) -> bool:
    return row.status != "done" or (row.status_code or 0) >= 400


class BatchStore:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    # -- the API's side --------------------------------------------------------------------

    def create(
        self,
        owner: Principal,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        lines: list[InputLine],
        problems: list[LineProblem],
    ) -> BatchRecord:
        """A batch of ``lines``; ``failed`` at once, with ``problems``, when there are any."""
        now = self.clock()
        batch_id = f"batch_{secrets.token_hex(12)}"
        row = BatchRow(
            id=batch_id,
            owner_key_id=owner.key_id,
            owner_key_name=owner.key_name,
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=completion_window,
            metadata_json=json.dumps(metadata) if metadata else None,
            total=0 if problems else len(lines),
            created_at=now,
            expires_at=now + WINDOWS[completion_window],
        )
        if problems:
            row.status, row.failed_at = "failed", now
            row.errors_json = json.dumps([p.to_json() for p in problems[:100]])
        else:
            row.status, row.in_progress_at = "in_progress", now
        with self.db.session() as session:
            session.add(row)
            session.flush()
            if not problems:
                session.execute(
                    insert(BatchLineRow),
                    [
                        {
                            "batch_id": batch_id,
                            "line_no": line.line_no,
                            "custom_id": line.custom_id,
                            "body": body_json(line),
                            "status": "pending",
                            "attempts": 0,
                        }
                        for line in lines
                    ],
                )
            return _record(session, row)

    def _row(
        self, session: Session, owner: Principal | None, batch_id: str, *, lock: bool = False
    ) -> BatchRow:
        """The batch (``lock``: its row locked to the end of the transaction, PostgreSQL)."""
        row = session.get(BatchRow, batch_id, with_for_update=lock)
        if row is None or (
            owner is not None and not owner.admin and row.owner_key_id != owner.key_id
        ):
            raise NotFound(f"no batch {batch_id!r}", param="batch_id")
        return row

    def get(self, owner: Principal | None, batch_id: str) -> BatchRecord:
        with self.db.reads() as session:
            return _record(session, self._row(session, owner, batch_id))

    def page(
        self, owner: Principal, *, limit: int = 20, after: str | None = None
    ) -> tuple[list[BatchRecord], bool]:
        """A page of ``owner``'s batches, newest first, after the batch ``after``."""
        query = select(BatchRow)
        if not owner.admin:
            query = query.where(BatchRow.owner_key_id == owner.key_id)
        with self.db.reads() as session:
            if after is not None:
                anchor = self._row(session, owner, after)
                query = query.where(
                    (BatchRow.created_at < anchor.created_at)
                    | ((BatchRow.created_at == anchor.created_at) & (BatchRow.id < anchor.id))
                )
            query = query.order_by(BatchRow.created_at.desc(), BatchRow.id.desc())
            rows = session.scalars(query.limit(limit + 1)).all()
            return [_record(session, r) for r in rows[:limit]], len(rows) > limit

    def cancel(self, owner: Principal, batch_id: str) -> BatchRecord:
        """Ask for ``batch_id`` to stop: ``cancelling`` now, ``cancelled`` once its runner has
        finished the lines in flight (they are not cut off) and closed the rest."""
        with self.db.session() as session:
            row = self._row(session, owner, batch_id)
            if row.status in ("validating", "in_progress"):
                row.status, row.cancelling_at = "cancelling", self.clock()
            elif row.status not in ("cancelling", "cancelled"):
                raise Conflict(
                    f"batch {batch_id} is {row.status}: it cannot be cancelled",
                    param="batch_id",
                    code="batch_not_cancellable",
                )
            session.flush()
            return _record(session, row)

    # -- the runner's side -----------------------------------------------------------------

    def claim(self, owner: str, lease_s: float) -> str | None:
        """Take the oldest active batch whose lease is free or lapsed, for ``lease_s``."""
        now = self.clock()
        free = or_(BatchRow.lease_until.is_(None), BatchRow.lease_until < now)
        with self.db.session() as session:
            candidate = session.scalar(
                select(BatchRow.id)
                .where(BatchRow.status.in_(ACTIVE), free)
                .order_by(BatchRow.created_at)
                .limit(1)
            )
            if candidate is None:
                return None
            taken = session.execute(
                update(BatchRow)
                .where(BatchRow.id == candidate, BatchRow.status.in_(ACTIVE), free)
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s))
            )
            return candidate if taken.rowcount == 1 else None  # type: ignore[attr-defined]

    def renew(self, batch_id: str, owner: str, lease_s: float) -> str | None:
        """Extend the lease; the batch's status, or None when ``owner`` no longer holds it."""
        now = self.clock()
        with self.db.session() as session:
            renewed = session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.lease_owner == owner)
                .values(lease_until=now + timedelta(seconds=lease_s))
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return session.scalar(select(BatchRow.status).where(BatchRow.id == batch_id))

    def release(self, batch_id: str, owner: str) -> None:
        with self.db.session() as session:
            session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def status(self, batch_id: str) -> str | None:
        with self.db.reads() as session:
            return session.scalar(select(BatchRow.status).where(BatchRow.id == batch_id))

    def pending(self, batch_id: str, *, after: int, limit: int) -> list[PendingLine]:
        with self.db.reads() as session:
            rows = session.execute(
                select(
                    BatchLineRow.line_no,
                    BatchLineRow.custom_id,
                    BatchLineRow.body,
                    BatchLineRow.attempts,
                )
                .where(
                    BatchLineRow.batch_id == batch_id,
                    BatchLineRow.status == "pending",
                    BatchLineRow.line_no > after,
                )
                .order_by(BatchLineRow.line_no)
                .limit(limit)
            ).all()
        return [PendingLine(*row) for row in rows]

    def attempted(self, batch_id: str, line_no: int) -> None:
        with self.db.session() as session:
            session.execute(
                update(BatchLineRow)
                .where(BatchLineRow.batch_id == batch_id, BatchLineRow.line_no == line_no)
                .values(attempts=BatchLineRow.attempts + 1)
            )

    def record(
        self,
        batch_id: str,
        line_no: int,
        *,
        status_code: int,
        request_id: str | None,
        response: str,
    ) -> bool:
        """Store a line's answer; False when it was recorded (or closed) already."""
        with self.db.session() as session:
            done = session.execute(
                update(BatchLineRow)
                .where(
                    BatchLineRow.batch_id == batch_id,
                    BatchLineRow.line_no == line_no,
                    BatchLineRow.status == "pending",
                )
                .values(
                    status="done",
                    status_code=status_code,
                    request_id=request_id,
                    response=response,
                    finished_at=self.clock(),
                )
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    def finalize(self, batch_id: str, outcome: str) -> BatchRecord:
        """Close the lines still pending as ``cancelled`` or ``expired`` (for those outcomes),
        write the output and error files and set the final status, in one transaction.
        ``outcome``: completed, cancelled or expired."""
        now = self.clock()
        with self.db.session() as session:
            # Locked: an erasure of a data subject's lines (batch/erasure.py) either ends
            # before these files are written from the lines, or waits and writes them again.
            row = self._row(session, None, batch_id, lock=True)
            if row.status in TERMINAL:
                return _record(session, row)
            if outcome in LINE_ERRORS:
                session.execute(
                    update(BatchLineRow)
                    .where(BatchLineRow.batch_id == batch_id, BatchLineRow.status == "pending")
                    .values(status=outcome, finished_at=now)
                )
            row.finalizing_at = row.finalizing_at or now
            self._write_files(session, row, now)
            row.status = outcome
            setattr(row, f"{outcome}_at", now)
            row.lease_owner, row.lease_until = None, None
            session.flush()
            return _record(session, row)

    def _write_files(self, session: Session, row: BatchRow, now: datetime) -> None:
        lines = session.scalars(
            select(BatchLineRow)
            .where(BatchLineRow.batch_id == row.id)
            .order_by(BatchLineRow.line_no)
        ).all()
        output, errors = [], []
        for line in lines:
            text = json.dumps(output_line(row.id, line), ensure_ascii=False) + "\n"
            output.append(text)
            if is_failure(line):
                errors.append(text)
        owner = Principal(key_name=row.owner_key_name, key_id=row.owner_key_id, admin=False)
        out = new_file_row(owner, f"{row.id}_output.jsonl", "batch_output", _joined(output), now)
        session.add(out)
        row.output_file_id = out.id
        if errors:
            err = new_file_row(owner, f"{row.id}_error.jsonl", "batch_output", _joined(errors), now)
            session.add(err)
            row.error_file_id = err.id


def _joined(lines: list[str]) -> bytes:
    return "".join(lines).encode("utf-8")
