"""API keys: random secrets shown once, stored as a hash, checked in constant time.

A key reads ``my-<id>-<secret>``: ``id`` (48 random bits, hex) finds the row, ``secret``
(192 random bits) is what proves possession. Only SHA-256 of the whole key is stored (a key
has far more entropy than a password, so a fast hash is the right tool); comparison uses
:func:`hmac.compare_digest`. The plaintext exists only in the return value of
:meth:`KeyStore.create`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.names import validate_name
from modelyard.config import Settings
from modelyard.errors import Conflict, NotFound, Unauthorized
from modelyard.store.database import Database
from modelyard.store.keys_tables import ApiKeyRow
from modelyard.store.tables import utcnow

PREFIX = "my"
_ID_BYTES = 6
_SECRET_BYTES = 24
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class ApiKey:
    """A key as the catalog of keys describes it (never the secret)."""

    name: str
    id: str
    admin: bool
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "prefix": f"{PREFIX}-{self.id}-",
            "admin": self.admin,
            "active": self.active,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key that authenticated the request."""

    key_name: str
    key_id: str
    admin: bool

    @property
    def actor(self) -> str:
        """How the audit log names this caller: ``key:NAME`` (never an operator's name)."""
        return f"key:{self.key_name}"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: ApiKeyRow) -> ApiKey:
    created = _aware(row.created_at)
    assert created is not None
    return ApiKey(
        name=row.name,
        id=row.id,
        admin=row.admin,
        created_by=row.created_by,
        created_at=created,
        revoked_at=_aware(row.revoked_at),
        last_used_at=_aware(row.last_used_at),
    )


def insert_key(session: Session, name: str, *, admin: bool, created_by: str) -> tuple[ApiKey, str]:
    """Insert a new key in the caller's transaction (the caller records ``key.create``);
    returns its record and the plaintext, which is never stored."""
    validate_name(name, what="key name")
    key_id = secrets.token_hex(_ID_BYTES)
    plaintext = f"{PREFIX}-{key_id}-{secrets.token_urlsafe(_SECRET_BYTES)}"
    if session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name)) is not None:
        raise Conflict(f"a key named {name!r} already exists", param="name")
    row = ApiKeyRow(
        id=key_id,
        name=name,
        secret_sha256=hash_key(plaintext),
        admin=admin,
        created_by=created_by,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return _record(row), plaintext


def key_created(key: ApiKey) -> dict[str, Any]:
    """The details of a ``key.create`` event: never the secret, nor its hash."""
    return {"admin": key.admin, "id": key.id}


class KeyStore:
    """The gateway's keys. Creating and revoking are audited in the same transaction."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    @audited("key.create")
    def create(
        self, name: str, *, admin: bool = False, created_by: str, actor: str
    ) -> tuple[ApiKey, str]:
        """A new key; returns its record and the plaintext, which is never stored."""
        validate_name(name, what="key name")
        try:
            with self.db.session() as session:
                record, plaintext = insert_key(session, name, admin=admin, created_by=created_by)
                append_event(
                    session,
                    self.db,
                    self.settings,
                    "key.create",
                    actor,
                    f"key:{name}",
                    key_created(record),
                )
        except IntegrityError as exc:
            raise Conflict(f"a key named {name!r} already exists", param="name") from exc
        return record, plaintext

    def list(self) -> list[ApiKey]:
        with self.db.session() as session:
            return [_record(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.name))]

    def get(self, name: str) -> ApiKey:
        with self.db.session() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
            if row is None:
                raise NotFound(f"no key named {name!r}", param="name")
            return _record(row)

    @audited("key.revoke")
    def revoke(self, name: str, *, actor: str) -> ApiKey:
        """Revoke ``name`` (the gateway refuses it from the next request on); revoking a
        revoked key changes nothing and is still recorded, as the attempt it was."""
        with self.db.session() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
            if row is None:
                raise NotFound(f"no key named {name!r}", param="name")
            already = row.revoked_at is not None
            if not already:
                row.revoked_at = utcnow()
            session.flush()
            record = _record(row)
            append_event(
                session,
                self.db,
                self.settings,
                "key.revoke",
                actor,
                f"key:{name}",
                {"id": record.id, "already_revoked": already},
            )
            return record

    def count_active(self) -> int:
        with self.db.session() as session:
            query = (
                select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
            )
            return int(session.scalar(query) or 0)

    def authenticate(self, plaintext: str) -> Principal:
        """The principal behind a presented key; Unauthorized for anything else."""
        prefix, _, rest = plaintext.partition("-")
        key_id, _, secret = rest.partition("-")
        if prefix != PREFIX or not key_id or not secret or len(key_id) != 2 * _ID_BYTES:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        presented = hash_key(plaintext)
        with self.db.session() as session:
            row = session.get(ApiKeyRow, key_id)
            stored = row.secret_sha256 if row is not None else hash_key(secrets.token_hex(8))
            if not hmac.compare_digest(presented, stored) or row is None:
                raise Unauthorized("invalid API key", code="invalid_api_key")
            if row.revoked_at is not None:
                raise Unauthorized("this API key has been revoked", code="invalid_api_key")
            now = utcnow()
            last = _aware(row.last_used_at)
            if last is None or now - last > _TOUCH_EVERY:
                row.last_used_at = now
            return Principal(key_name=row.name, key_id=row.id, admin=row.admin)
