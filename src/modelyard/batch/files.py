"""``/v1/files``' storage: files in the database, each visible to the key that made it.

Files are kept in ``batch_files`` (every gateway replica sees the same ones); a key sees only
its own, an admin key all. A file used by a batch may be deleted: the batch copied its lines
when it was created.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from modelyard.errors import InvalidInput, NotFound
from modelyard.governance.keys import Principal
from modelyard.store.batch_tables import BatchFileRow
from modelyard.store.database import Database
from modelyard.store.tables import utcnow

PURPOSES = ("batch", "batch_output")
"""``batch``: uploaded input; ``batch_output``: written by a batch (output and error files)."""
MAX_FILENAME = 255


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


def unix(value: datetime | None) -> int | None:
    """Seconds since the epoch (a naive value, as SQLite returns them, is UTC)."""
    if value is None:
        return None
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())


@dataclass(frozen=True)
class FileRecord:
    id: str
    owner_key_id: str
    purpose: str
    filename: str
    bytes: int
    sha256: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """OpenAI's FileObject."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": unix(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


def _record(row: BatchFileRow) -> FileRecord:
    return FileRecord(
        row.id, row.owner_key_id, row.purpose, row.filename, row.size, row.sha256, row.created_at
    )


def new_file_row(
    owner: Principal, filename: str, purpose: str, content: bytes, created_at: datetime
) -> BatchFileRow:
    return BatchFileRow(
        id=new_file_id(),
        owner_key_id=owner.key_id,
        owner_key_name=owner.key_name,
        purpose=purpose,
        filename=filename[:MAX_FILENAME] or "upload.jsonl",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        created_at=created_at,
    )


def visible(owner: Principal) -> Any:
    """The rows ``owner`` may see (its own; all for an admin key)."""
    if owner.admin:
        return BatchFileRow.id.is_not(None)
    return BatchFileRow.owner_key_id == owner.key_id


class FileStore:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def create(self, owner: Principal, filename: str, purpose: str, content: bytes) -> FileRecord:
        if purpose not in PURPOSES[:1]:
            raise InvalidInput(
                f"purpose must be 'batch' (the Batch API's input), not {purpose!r}",
                param="purpose",
            )
        with self.db.session() as session:
            row = new_file_row(owner, filename, purpose, content, self.clock())
            session.add(row)
            session.flush()
            return _record(row)

    def _row(self, session: Session, owner: Principal, file_id: str) -> BatchFileRow:
        row = session.scalar(select(BatchFileRow).where(BatchFileRow.id == file_id, visible(owner)))
        if row is None:  # another key's file reads as missing: ids are not disclosed
            raise NotFound(f"no file {file_id!r}", param="file_id")
        return row

    def get(self, owner: Principal, file_id: str) -> FileRecord:
        with self.db.reads() as session:
            return _record(self._row(session, owner, file_id))

    def content(self, owner: Principal, file_id: str) -> tuple[FileRecord, bytes]:
        with self.db.reads() as session:
            row = self._row(session, owner, file_id)
            return _record(row), row.content

    def page(
        self,
        owner: Principal,
        *,
        purpose: str | None = None,
        limit: int = 20,
        after: str | None = None,
        order: str = "desc",
    ) -> tuple[list[FileRecord], bool]:
        """A page of ``owner``'s files, newest first (``order=asc``: oldest first), after the
        file ``after``; and whether more follow."""
        query = select(BatchFileRow).where(visible(owner))
        if purpose is not None:
            query = query.where(BatchFileRow.purpose == purpose)
        newest = order != "asc"
        keys = (BatchFileRow.created_at, BatchFileRow.id)
        with self.db.reads() as session:
            if after is not None:
                anchor = self._row(session, owner, after)
                if newest:
                    query = query.where(
                        (BatchFileRow.created_at < anchor.created_at)
                        | (
                            (BatchFileRow.created_at == anchor.created_at)
                            & (BatchFileRow.id < anchor.id)
                        )
                    )
                else:
                    query = query.where(
                        (BatchFileRow.created_at > anchor.created_at)
                        | (
                            (BatchFileRow.created_at == anchor.created_at)
                            & (BatchFileRow.id > anchor.id)
                        )
                    )
            query = query.order_by(*(k.desc() if newest else k.asc() for k in keys))
            rows = session.scalars(query.limit(limit + 1)).all()
            return [_record(r) for r in rows[:limit]], len(rows) > limit

    def delete(self, owner: Principal, file_id: str) -> str:
        with self.db.session() as session:
            self._row(session, owner, file_id)
            session.execute(delete(BatchFileRow).where(BatchFileRow.id == file_id))
        return file_id
