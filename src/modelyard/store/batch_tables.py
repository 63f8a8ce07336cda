"""The Batch API's rows: uploaded files, batches and their lines. Migration ``0013_batches``.

``batch_files`` holds a file's bytes in the database (every gateway replica reads the same
files; the size is capped by ``MODELYARD_BATCH_MAX_FILE_BYTES``). A batch's input is split
into ``batch_lines`` when the batch is created; a line's result is written in the same
transaction that marks it finished, so a restarted gateway resumes with the lines still
``pending`` and never redoes a finished one. ``lease_owner`` / ``lease_until`` say which
gateway process runs a batch; a lapsed lease lets another take it over.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from modelyard.store.tables import Base, utcnow


class BatchFileRow(Base):
    __tablename__ = "batch_files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """``file-`` and 24 random hex digits."""
    owner_key_id: Mapped[str] = mapped_column(String(64), index=True)
    """The API key that uploaded it (or whose batch wrote it); only it and admin keys see it."""
    owner_key_name: Mapped[str] = mapped_column(String(160))
    purpose: Mapped[str] = mapped_column(String(32))
    """``batch`` (an upload) or ``batch_output`` (a batch's output or error file)."""
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column("bytes", Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BatchRow(Base):
    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_key_id: Mapped[str] = mapped_column(String(64), index=True)
    owner_key_name: Mapped[str] = mapped_column(String(160))
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    metadata_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    errors_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Validation errors of a ``failed`` batch (OpenAI's ``errors.data``)."""
    output_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    in_progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finalizing_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelling_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BatchLineRow(Base):
    __tablename__ = "batch_lines"
    __table_args__ = (Index("ix_batch_lines_batch_status", "batch_id", "status", "line_no"),)

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    """1-based, as the input file numbers them."""
    custom_id: Mapped[str] = mapped_column(String(512))
    body: Mapped[str] = mapped_column(Text)
    """The request body as sent, JSON."""
    status: Mapped[str] = mapped_column(String(16))
    """``pending``, ``done`` (any HTTP answer, success or error), ``cancelled`` or ``expired``."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The answer's JSON body (the normal response, or the error JSON)."""
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
