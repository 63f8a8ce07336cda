"""The hash-chained audit log, its head pointer, and the per-data-subject encryption keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from modelyard.store.tables import Base


class AuditRecordRow(Base):
    """One audit record. ``hash`` is SHA-256 over the canonical form of every other column."""

    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32), index=True)  # request | event | purge
    at: Mapped[str] = mapped_column(String(32), index=True)  # ISO-8601 UTC, microseconds
    actor: Mapped[str | None] = mapped_column(String(128), nullable=True)  # key name
    team: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    route: Mapped[str | None] = mapped_column(String(32), nullable=True)
    target: Mapped[str | None] = mapped_column(
        String(256), nullable=True
    )  # model@N | event subject
    blob_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data_subject: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    text_mode: Mapped[str] = mapped_column(String(16), default="none")  # full|redacted|hash|none
    prompt_ct: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_ct: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    response_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """A single row (id 1): the newest sequence number and hash; appends lock it first."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditSubjectKeyRow(Base):
    """The AES-256-GCM key for one data subject. Erasure deletes the row (crypto-shredding).

    ``subject_digest`` is HMAC-SHA256(home secret, subject): the subject's own identifier is
    never stored. ``id`` is the pseudonymous id that audit records carry.
    """

    __tablename__ = "audit_subject_keys"

    subject_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    key: Mapped[str] = mapped_column(String(64))  # base64 of 32 bytes
    created_at: Mapped[str] = mapped_column(String(32))
