"""Remote engines: the upstream allow-list and each endpoint version's sealed API key.

``endpoint_rules`` holds the admin-managed allow-list (``modelyard endpoints allow|deny``);
``endpoint_credentials`` the API key an endpoint version sends upstream, sealed with AES-GCM
under a key kept in a 0600 file in the home (never in the database), bound to the version.
Migration ``0011_endpoints``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from modelyard.store.tables import Base, utcnow


class EndpointRuleRow(Base):
    __tablename__ = "endpoint_rules"

    rule: Mapped[str] = mapped_column(String(300), primary_key=True)
    """The canonical spelling: ``host``, ``host:port``, ``10.0.0.0/8``, ``[::1]:8080``."""
    effect: Mapped[str] = mapped_column(String(8))
    """``allow`` or ``deny`` (deny wins)."""
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EndpointCredentialRow(Base):
    __tablename__ = "endpoint_credentials"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    sealed: Mapped[str] = mapped_column(Text)
    """base64(nonce + AES-GCM ciphertext); the AAD names the version and its digest."""
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
