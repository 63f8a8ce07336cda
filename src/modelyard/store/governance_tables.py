"""Teams and the scopes/limits/PII policy attached to keys (by key name, no foreign key)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from modelyard.store.tables import Base


class TeamRow(Base):
    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[str] = mapped_column(String(32))


class KeyPolicyRow(Base):
    """Governance data for one gateway key, keyed by the key's name."""

    __tablename__ = "key_policies"

    key_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    team: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[str] = mapped_column(String(32))
