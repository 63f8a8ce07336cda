"""Attestations about a version's bytes: signature bundles and trial loads.

A signature row holds the model-signing bundle (a Sigstore bundle, key mode) and the
fingerprint of the key that made it; the same bundle also lies in the blob store under its
sha256. A trial-load row says whether the version's GGUF came up in a sandboxed engine
worker, and if not, the loader's last log lines. Rows are never updated: the newest wins.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from modelyard.store.tables import Base, utcnow


class SignatureRow(Base):
    __tablename__ = "version_signatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    model_digest: Mapped[str] = mapped_column(String(64))
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    bundle: Mapped[str] = mapped_column(Text)
    key_sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the signer's public key (PEM, SubjectPublicKeyInfo): model-signing's hint."""
    signed_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrialLoadRow(Base):
    __tablename__ = "version_trial_loads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    model_digest: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text)
    log_tail: Mapped[str] = mapped_column(Text, default="")
    engine: Mapped[str] = mapped_column(Text, default="")
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
