"""Lifecycle tables: version stages, stage transitions, alias history and canaries, advisories."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from modelyard.store.tables import Base, utcnow


class VersionStateRow(Base):
    """The current stage of a version, its sunset and replacement, and its editable card fields.

    A version without a row is ``registered`` (versions made before lifecycle tracking).
    """

    __tablename__ = "version_states"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(String(16))
    sunset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    replacement: Mapped[str | None] = mapped_column(String(64), nullable=True)
    intended_use: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StageTransitionRow(Base):
    """One stage change of one version: who, when, why, on what evidence. Never updated."""

    __tablename__ = "stage_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[int] = mapped_column(Integer)
    model_digest: Mapped[str] = mapped_column(String(64))
    from_stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_stage: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)
    gates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AliasCanaryRow(Base):
    """The second target of an alias that splits traffic: ``weight`` percent goes to it."""

    __tablename__ = "alias_canaries"

    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    weight: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AliasEventRow(Base):
    """One change of an alias (set, rollback, remove): the state before and after."""

    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))  # "set" | "rollback" | "remove"
    target: Mapped[str | None] = mapped_column(String(96), nullable=True)
    canary: Mapped[str | None] = mapped_column(String(96), nullable=True)
    canary_weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    previous_target: Mapped[str | None] = mapped_column(String(96), nullable=True)
    previous_canary: Mapped[str | None] = mapped_column(String(96), nullable=True)
    previous_weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AdvisoryRow(Base):
    """A security or quality advisory against one version; ``block`` stops serving it."""

    __tablename__ = "advisories"
    __table_args__ = (UniqueConstraint("advisory_id", "version_id", name="uq_advisory_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    advisory_id: Mapped[str] = mapped_column(String(64), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    model_ref: Mapped[str] = mapped_column(String(96))
    severity: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(8))  # "block" | "warn"
    summary: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
