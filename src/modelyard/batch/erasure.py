"""Erasure (GDPR art. 17) of a data subject's batch data: requests and answers at rest.

A batch line's subject is the one the audit log seals its texts under: the request body's
OpenAI ``user`` field, or the batch's key name when the line names no user. Erasing a
subject, in the caller's transaction (the audit erasure's, so both happen or neither):

* **batch lines:** the request body and the answer are removed and the line's status
  becomes ``erased``. A line not yet run never runs (the runner takes ``pending`` lines
  only, and records an answer only onto a line still ``pending``, so an answer in flight is
  dropped); its batch reports it failed with the code ``subject_erased``;
* **input files** (purpose ``batch``): the subject's lines are removed, the rest kept as
  they were; the file's size and SHA-256 are those of the new content;
* **output and error files** of batches with erased lines are written again from the
  lines, so the subject's answers are gone and their lines carry the ``subject_erased``
  error in input order, like any failed line.

Lines whose JSON cannot be read (never stored by modelyard: uploads are checked) are left
as they are.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.batch.files import new_file_row
from modelyard.batch.store import ERASED, is_failure, output_line
from modelyard.governance.keys import Principal
from modelyard.store.batch_tables import BatchFileRow, BatchLineRow, BatchRow
from modelyard.store.tables import utcnow


@dataclass(frozen=True)
class BatchErasure:
    lines: int = 0
    """Batch lines whose request and answer were removed."""
    files: list[str] = field(default_factory=list)
    """Files written again without the subject's data (inputs, outputs, error files)."""

    def to_json(self) -> dict[str, Any]:
        return {"lines": self.lines, "files": self.files}


def line_subject(body: Any, key_name: str) -> str:
    """Whom a request is about: its ``user``, else the key that sent it."""
    user = body.get("user") if isinstance(body, dict) else None
    return user if isinstance(user, str) and user else key_name


def erase_batch_data(session: Session, subject: str) -> BatchErasure:
    """Remove ``subject``'s batch requests and answers in ``session``'s transaction."""
    touched = _erase_lines(session, subject)
    files = _erase_from_inputs(session, subject)
    for batch_id in sorted(touched):
        files += _rewrite_outputs(session, batch_id)
    return BatchErasure(sum(touched.values()), files)


def _erase_lines(session: Session, subject: str) -> dict[str, int]:
    """Erased lines per batch. Every batch row is locked first (PostgreSQL), as a finishing
    batch locks its own before writing its output from its lines: so either that output is
    written before, and is written again here, or after, from the erased lines."""
    session.execute(select(BatchRow.id).with_for_update()).all()
    touched: dict[str, int] = {}
    query = (
        select(BatchLineRow, BatchRow.owner_key_name)
        .join(BatchRow, BatchRow.id == BatchLineRow.batch_id)
        .where(BatchLineRow.status != ERASED)
    )
    for line, key_name in session.execute(query).all():
        try:
            body = json.loads(line.body)
        except ValueError:
            continue
        if line_subject(body, key_name) != subject:
            continue
        line.body, line.response = "{}", None
        line.status, line.status_code = ERASED, None
        touched[line.batch_id] = touched.get(line.batch_id, 0) + 1
    session.flush()
    return touched


def _erase_from_inputs(session: Session, subject: str) -> list[str]:
    rewritten = []
    for row in session.scalars(select(BatchFileRow).where(BatchFileRow.purpose == "batch")):
        kept, dropped = [], 0
        for raw in row.content.splitlines(keepends=True):
            try:
                body = json.loads(raw).get("body")
            except (ValueError, AttributeError):
                kept.append(raw)
                continue
            if line_subject(body, row.owner_key_name) == subject:
                dropped += 1
            else:
                kept.append(raw)
        if dropped:
            _replace(row, b"".join(kept))
            rewritten.append(row.id)
    return rewritten


def _rewrite_outputs(session: Session, batch_id: str) -> list[str]:
    batch = session.get(BatchRow, batch_id)
    if batch is None or batch.output_file_id is None:
        return []  # not finished yet: its files are written from the lines as they are now
    lines = session.scalars(
        select(BatchLineRow).where(BatchLineRow.batch_id == batch_id).order_by(BatchLineRow.line_no)
    ).all()
    texts = [json.dumps(output_line(batch_id, line), ensure_ascii=False) + "\n" for line in lines]
    errors = [text for text, line in zip(texts, lines, strict=True) if is_failure(line)]
    rewritten = []
    if batch.error_file_id is None and errors:  # every line had succeeded: now one has not
        owner = Principal(key_name=batch.owner_key_name, key_id=batch.owner_key_id, admin=False)
        made = new_file_row(owner, f"{batch_id}_error.jsonl", "batch_output", b"", utcnow())
        session.add(made)
        batch.error_file_id = made.id
        session.flush()
    for file_id, content in ((batch.output_file_id, texts), (batch.error_file_id, errors)):
        row = session.get(BatchFileRow, file_id) if file_id else None
        if row is not None:  # its owner may have deleted it
            _replace(row, "".join(content).encode("utf-8"))
            rewritten.append(row.id)
    return rewritten


def _replace(row: BatchFileRow, content: bytes) -> None:
    row.content, row.size = content, len(content)
    row.sha256 = hashlib.sha256(content).hexdigest()
