"""API keys: random secrets shown once, stored as a hash, checked in constant time.

A key reads ``my-<id>-<secret>``: ``id`` (48 random bits, hex) finds the row, ``secret``
(192 random bits) is what proves possession. Only SHA-256 of the whole key is stored (a key
has far more entropy than a password, so a fast hash is the right tool); comparison uses
:func:`hmac.compare_digest`. The plaintext exists only in the return value of
:meth:`KeyStore.create`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.names import validate_name
from modelyard.config import Settings
from modelyard.errors import Conflict, ModelyardError, NotFound, Unauthorized
from modelyard.governance.scopes import Access
from modelyard.store.database import Database
from modelyard.store.generation_tables import GenerationCache, Generations, read_generations
from modelyard.store.keys_tables import ApiKeyRow
from modelyard.store.tables import utcnow

PREFIX = "my"
_ID_BYTES = 6
_SECRET_BYTES = 24
DEFAULT_MAX_CACHED = 4096
"""Keys one :class:`KeyStore` keeps for :meth:`KeyStore.authenticate` (oldest used go first)."""

log = logging.getLogger(__name__)


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
    generations: Generations | None = field(default=None, compare=False, repr=False)
    """The serving counters read when the key was checked (the gateway's auth), which the
    request's later reads reuse instead of reading them again; None: not read."""
    access: Access | None = field(default=None, compare=False, repr=False)
    """The key's access, read under ``generations.access`` with the key (None: not read)."""

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


@dataclass(frozen=True)
class _StoredKey:
    """What :meth:`KeyStore.authenticate` needs of a row (plain data, cached)."""

    id: str
    name: str
    admin: bool
    secret_sha256: str
    revoked: bool


class KeyStore:
    """The gateway's keys. Creating and revoking are audited in the same transaction.

    :meth:`authenticate` reuses the rows it read while the database's ``access_generation``
    counter stands still (triggers move it when a key is created, deleted, revoked, renamed
    or its admin flag changes: :mod:`modelyard.store.generation_tables`), so a revocation is
    seen by the next request, from any process. ``last_used_at`` is written at most once
    per key per ``key_last_used_interval_s``: on a background thread with
    ``background_usage`` (the gateway, which calls :meth:`close` before closing the
    database), else inline when due.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        max_cached: int = DEFAULT_MAX_CACHED,
        clock: Callable[[], datetime] = utcnow,
        background_usage: bool = False,
    ) -> None:
        self.db = db
        self.settings = settings
        self.cache = GenerationCache(max_cached)
        """Key rows by id, as loaded under one ``access_generation``."""
        self.usage = UsageWriter(
            db, settings.key_last_used_interval_s, clock=clock, background=background_usage
        )

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
        """The principal behind a presented key; Unauthorized for anything else. One small
        query for the counters when the key's row is cached (see the class docstring); the
        principal carries the counters it read."""
        with self.db.reads() as session:
            counters = read_generations(session)
            principal = self.authenticate_in(session, counters.access, plaintext)
        return dataclasses.replace(principal, generations=counters)

    def authenticate_in(
        self, session: Session, generation: int | None, plaintext: str
    ) -> Principal:
        """:meth:`authenticate` in the caller's session, which read ``generation`` (the
        ``access_generation`` counter; None: reuse nothing) before any key row."""
        prefix, _, rest = plaintext.partition("-")
        key_id, _, secret = rest.partition("-")
        if prefix != PREFIX or not key_id or not secret or len(key_id) != 2 * _ID_BYTES:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        presented = hash_key(plaintext)
        row = self._stored(session, generation, key_id)
        stored = row.secret_sha256 if row is not None else hash_key(secrets.token_hex(8))
        if not hmac.compare_digest(presented, stored) or row is None:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        if row.revoked:
            raise Unauthorized("this API key has been revoked", code="invalid_api_key")
        self.usage.used(row.id)
        return Principal(key_name=row.name, key_id=row.id, admin=row.admin)

    def principal_for(self, key_id: str) -> Principal:
        """The principal of the stored key ``key_id`` (a batch runs as the key that created it);
        Unauthorized when the key is gone or revoked, as its presented plaintext would be."""
        with self.db.reads() as session:
            row = self._stored(session, None, key_id)
        if row is None:
            raise Unauthorized("the batch's API key no longer exists", code="invalid_api_key")
        if row.revoked:
            raise Unauthorized("this API key has been revoked", code="invalid_api_key")
        return Principal(key_name=row.name, key_id=row.id, admin=row.admin)

    def _stored(self, session: Session, generation: int | None, key_id: str) -> _StoredKey | None:
        """The key's row, from the cache while ``generation`` holds (unknown ids are not
        cached: presenting made-up keys cannot push real ones out)."""
        if generation is not None:
            hit, found = self.cache.get(generation, key_id)
            if hit:
                return cast(_StoredKey, found)
        row = session.get(ApiKeyRow, key_id)
        if row is None:
            return None
        stored = _StoredKey(
            row.id, row.name, row.admin, row.secret_sha256, row.revoked_at is not None
        )
        if generation is not None:
            self.cache.put(generation, key_id, stored)
        return stored

    def close(self) -> None:
        """Write the pending ``last_used_at`` updates and stop the background writer."""
        self.usage.close()


class UsageWriter:
    """Writes keys' ``last_used_at``: at most once per key per ``interval_s`` from this
    process (and not when another process wrote it within the interval). With
    ``background``, off the request path on one thread started at the first write (until
    :meth:`close`; inline after it). The column is therefore approximate to the interval."""

    def __init__(
        self,
        db: Database,
        interval_s: float,
        *,
        clock: Callable[[], datetime] = utcnow,
        background: bool = False,
    ) -> None:
        self.db = db
        self.interval = timedelta(seconds=interval_s)
        self.clock = clock
        self._lock = threading.Lock()
        self._written: dict[str, datetime] = {}
        self._background = background
        self._executor: ThreadPoolExecutor | None = None

    def used(self, key_id: str) -> bool:
        """Note a use of ``key_id`` now; True when a write was queued for it."""
        now = self.clock()
        with self._lock:
            last = self._written.get(key_id)
            if last is not None and now - last < self.interval:
                return False
            self._written[key_id] = now
            if self._background and self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="key-last-used")
            executor = self._executor
            if executor is not None:
                executor.submit(self._write, key_id, now)
        if executor is None:
            self._write(key_id, now)  # no thread that could outlive the caller's database
        return True

    def _write(self, key_id: str, now: datetime) -> None:
        recent = now - self.interval
        try:
            with self.db.session() as session:
                session.execute(
                    update(ApiKeyRow)
                    .where(ApiKeyRow.id == key_id)
                    .where(or_(ApiKeyRow.last_used_at.is_(None), ApiKeyRow.last_used_at <= recent))
                    .values(last_used_at=now)
                )
        except (ModelyardError, SQLAlchemyError) as exc:  # usage is informative: log, go on
            log.warning("could not record the last use of key %s: %s", key_id, exc)

    def flush(self) -> None:
        """Wait for the writes queued so far (tests, shutdown)."""
        with self._lock:
            executor = self._executor
        if executor is not None:
            executor.submit(lambda: None).result()

    def close(self) -> None:
        """Write what is queued and stop the thread; later writes are inline."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._background = False
        if executor is not None:
            executor.shutdown(wait=True)
