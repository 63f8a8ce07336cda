"""Stored state of remote engines: the upstream allow-list and sealed API keys.

* :class:`EndpointRules`: ``modelyard endpoints allow|deny|list``. Each change is recorded
  in the audit log in the same transaction as the change (``endpoint.allow`` /
  ``endpoint.deny`` events: rule, effect, what it replaced); changing the list is the
  ``endpoints.manage`` action (admins).
* :class:`Credentials`: an endpoint version's API key, sealed with AES-256-GCM under a key
  kept in a 0600 file in the home (``endpoint_key_file``), never in the database. The
  ciphertext is bound (AAD) to the version and its digest, so a sealed key copied onto
  another version does not open. Keys are never logged, shown or put in an error.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.atomic_write import create_new
from modelyard.audit import cipher
from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.rows import find_version
from modelyard.config import Settings
from modelyard.engines.url_policy import AllowList, Effect, parse_rule, rules_from
from modelyard.errors import NotFound, StoreFault
from modelyard.store.database import Database
from modelyard.store.endpoint_tables import EndpointCredentialRow, EndpointRuleRow


@dataclass(frozen=True)
class StoredRule:
    rule: str
    effect: str
    created_by: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "effect": self.effect,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class EndpointRules:
    """The allow-list of upstream hosts and networks (admin-managed, audited)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    @audited("endpoint.allow")
    def allow(self, text: str, *, actor: str) -> StoredRule:
        """Allow upstreams on ``text`` (HOST, HOST:PORT, an address or a network), replacing
        a deny of the same entry."""
        return self._change(text, "allow", actor)

    @audited("endpoint.deny")
    def deny(self, text: str, *, actor: str) -> StoredRule:
        """Deny upstreams on ``text``, replacing an allow of the same entry."""
        return self._change(text, "deny", actor)

    def set(self, text: str, effect: Effect, *, actor: str) -> StoredRule:
        """:meth:`allow` or :meth:`deny`, the effect given as data."""
        return self.allow(text, actor=actor) if effect == "allow" else self.deny(text, actor=actor)

    def _change(self, text: str, effect: Effect, actor: str) -> StoredRule:
        rule = parse_rule(text, effect)
        with self.db.session() as session:
            row = session.get(EndpointRuleRow, rule.text)
            before = row.effect if row is not None else None
            if row is None:
                row = EndpointRuleRow(rule=rule.text, effect=effect, created_by=actor)
                session.add(row)
            else:
                row.effect, row.created_by = effect, actor
                row.created_at = datetime.now(UTC)
            session.flush()
            append_event(
                session,
                self.db,
                self.settings,
                f"endpoint.{effect}",
                actor,
                f"endpoint-rule:{rule.text}",
                {"rule": rule.text, "effect": effect, "before": before},
            )
            return StoredRule(rule.text, effect, actor, _aware(row.created_at))

    def list(self) -> list[StoredRule]:
        with self.db.session() as session:
            rows = session.scalars(select(EndpointRuleRow).order_by(EndpointRuleRow.rule))
            return [StoredRule(r.rule, r.effect, r.created_by, _aware(r.created_at)) for r in rows]

    def allow_list(self) -> AllowList:
        """The rules in force, as the URL checks take them."""
        return rules_from((r.rule, r.effect) for r in self.list())


_AAD = "modelyard endpoint credential v1:{ref}:{digest}"


def key_file(settings: Settings) -> Path:
    return settings.endpoint_key_file or settings.home / "secrets" / "endpoints.key"


def _sealing_key(settings: Settings) -> str:
    """The AES-256 key (base64) that seals endpoint credentials; made on first use (0600)."""
    path = key_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        create_new(path, cipher.new_key().encode("ascii"), mode=0o600)
    try:
        text = path.read_text(encoding="ascii").strip()
        if len(base64.b64decode(text, validate=True)) != 32:
            raise ValueError("not 32 bytes")
    except (OSError, ValueError) as exc:
        raise StoreFault(f"cannot read the endpoint credential key {path}: {exc}") from exc
    return text


class Credentials:
    """Sealed API keys of endpoint versions."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def store_in(self, session: Session, version: ModelVersion, secret: str, *, actor: str) -> None:
        """Seal ``secret`` for ``version`` inside the caller's transaction."""
        row = find_version(session, version.ref)
        sealed = cipher.encrypt(
            _sealing_key(self.settings), secret, _AAD.format(ref=version.ref, digest=version.digest)
        )
        session.merge(EndpointCredentialRow(version_id=row.id, sealed=sealed, created_by=actor))

    def has(self, version: ModelVersion) -> bool:
        with self.db.session() as session:
            row = find_version(session, version.ref)
            return session.get(EndpointCredentialRow, row.id) is not None

    def open(self, version: ModelVersion) -> str | None:
        """The API key of ``version`` (None when it has none); StoreFault if it does not open."""
        with self.db.session() as session:
            try:
                row = find_version(session, version.ref)
            except NotFound:
                return None
            stored = session.get(EndpointCredentialRow, row.id)
            if stored is None:
                return None
            sealed = stored.sealed
        plain = cipher.decrypt(
            _sealing_key(self.settings), sealed, _AAD.format(ref=version.ref, digest=version.digest)
        )
        if plain is None:
            raise StoreFault(
                f"the API key stored for {version.ref} does not open with "
                f"{key_file(self.settings)} (the key file was replaced, or the row moved)"
            )
        return plain
