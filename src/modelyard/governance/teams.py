"""Teams and key policies: the stored scopes the gateway turns into a :class:`Access`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.audit.canonical import iso_now
from modelyard.catalog.audit_events import append_event, audited
from modelyard.config import Settings
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.governance.scopes import Access, Scope
from modelyard.store.database import Database
from modelyard.store.generation_tables import GenerationCache, read_generations
from modelyard.store.governance_tables import KeyPolicyRow, TeamRow

DEFAULT_MAX_CACHED = 4096
"""Keys whose policy one :class:`KeyPolicies` keeps (the least recently used go first)."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Team:
    name: str
    scope: Scope
    created_at: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "created_at": self.created_at, **self.scope.to_json()}


@dataclass(frozen=True)
class KeyPolicy:
    key_name: str
    team: str | None
    scope: Scope

    def to_json(self) -> dict[str, object]:
        return {"key": self.key_name, "team": self.team, **self.scope.to_json()}


def check_team_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            f"invalid team name {name!r}: lowercase letters, digits, '.', '_', '-' (max 64)",
            param="team",
        )
    return name


class Teams:
    """Teams and their scopes; every change is audited in its own transaction."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def _audit(self, session: Session, kind: str, actor: str, name: str, scope: Scope) -> None:
        details = {"scope": scope.to_json()}
        append_event(session, self.db, self.settings, kind, actor, f"team:{name}", details)

    @audited("team.create")
    def create(self, name: str, scope: Scope | None = None, *, actor: str) -> Team:
        check_team_name(name)
        scope = scope or Scope()
        with self.db.session() as session:
            if session.get(TeamRow, name) is not None:
                raise Conflict(f"team {name!r} already exists")
            row = TeamRow(name=name, scope=scope.to_json(), created_at=iso_now())
            session.add(row)
            session.flush()
            self._audit(session, "team.create", actor, name, scope)
        return Team(name, scope, row.created_at)

    @audited("team.update")
    def update(self, name: str, scope: Scope, *, actor: str) -> Team:
        with self.db.session() as session:
            row = session.get(TeamRow, name)
            if row is None:
                raise NotFound(f"no team {name!r}")
            row.scope = scope.to_json()
            session.flush()
            self._audit(session, "team.update", actor, name, scope)
            return Team(name, scope, row.created_at)

    def get(self, name: str) -> Team:
        with self.db.session() as session:
            row = session.get(TeamRow, name)
            if row is None:
                raise NotFound(f"no team {name!r}")
            return Team(row.name, Scope.from_json(row.scope), row.created_at)

    def list(self) -> list[Team]:
        with self.db.session() as session:
            rows = session.execute(select(TeamRow).order_by(TeamRow.name)).scalars().all()
            return [Team(r.name, Scope.from_json(r.scope), r.created_at) for r in rows]

    @audited("team.delete")
    def delete(self, name: str, *, actor: str) -> None:
        with self.db.session() as session:
            row = session.get(TeamRow, name)
            if row is None:
                raise NotFound(f"no team {name!r}")
            members = session.execute(
                select(KeyPolicyRow.key_name).where(KeyPolicyRow.team == name).limit(1)
            ).first()
            if members is not None:
                raise Conflict(f"team {name!r} still has keys (e.g. {members[0]!r})")
            scope = Scope.from_json(row.scope)
            session.delete(row)
            session.flush()
            self._audit(session, "team.delete", actor, name, scope)


def put_policy(session: Session, key_name: str, team: str | None, scope: Scope) -> KeyPolicy:
    """Store a key's team and scope in the caller's transaction (the caller records the
    event: ``key.create`` or ``key.policy.set``)."""
    if team is not None and session.get(TeamRow, team) is None:
        raise NotFound(f"no team {team!r} (create it with `modelyard teams create`)")
    row = session.get(KeyPolicyRow, key_name)
    if row is None:
        row = KeyPolicyRow(key_name=key_name)
        session.add(row)
    row.team, row.scope, row.updated_at = team, scope.to_json(), iso_now()
    session.flush()
    return KeyPolicy(key_name, team, scope)


class KeyPolicies:
    """Scope and team of each gateway key, stored by key name beside the keys table.
    Changes are audited; :meth:`access` (the request path) only reads, and reuses what it
    read while the database's ``access_generation`` counter stays the same (triggers move it
    on any change to key policies, teams or keys: :mod:`modelyard.store.generation_tables`)."""

    def __init__(
        self, db: Database, settings: Settings, *, max_cached: int = DEFAULT_MAX_CACHED
    ) -> None:
        self.db = db
        self.settings = settings
        self.cache = GenerationCache(max_cached)
        """Key policies and team scopes by key name, as loaded under one counter value."""

    @audited("key.policy.set")
    def set(self, key_name: str, team: str | None, scope: Scope, *, actor: str) -> KeyPolicy:
        with self.db.session() as session:
            policy = put_policy(session, key_name, team, scope)
            append_event(
                session,
                self.db,
                self.settings,
                "key.policy.set",
                actor,
                f"key:{key_name}",
                {"team": team, "scope": scope.to_json()},
            )
        return policy

    def get(self, key_name: str) -> KeyPolicy | None:
        with self.db.session() as session:
            row = session.get(KeyPolicyRow, key_name)
            if row is None:
                return None
            return KeyPolicy(row.key_name, row.team, Scope.from_json(row.scope))

    @audited("key.policy.delete")
    def delete(self, key_name: str, *, actor: str) -> None:
        """Remove the key's scope (it falls back to no restriction of its own)."""
        with self.db.session() as session:
            row = session.get(KeyPolicyRow, key_name)
            if row is None:
                raise NotFound(f"key {key_name!r} has no scope of its own", param="name")
            details = {"team": row.team, "scope": dict(row.scope or {})}
            session.delete(row)
            session.flush()
            append_event(
                session,
                self.db,
                self.settings,
                "key.policy.delete",
                actor,
                f"key:{key_name}",
                details,
            )

    def access(self, key_name: str, *, admin: bool = False) -> Access:
        """The access of a key authenticated elsewhere (the gateway's keys table): one small
        query for the ``access_generation`` counter, the rows only when it has moved."""
        with self.db.reads() as session:
            generation = read_generations(session).access
            return self.access_in(session, generation, key_name, admin=admin)

    def access_in(
        self, session: Session, generation: int | None, key_name: str, *, admin: bool = False
    ) -> Access:
        """:meth:`access` in the caller's session, which read ``generation`` (the
        ``access_generation`` counter; None: reuse nothing) before any of these rows."""
        if generation is None:
            stored = _load_access(session, key_name)
        else:
            hit, found = self.cache.get(generation, key_name)
            if hit:
                stored = cast(_StoredAccess, found)
            else:
                stored = _load_access(session, key_name)
                self.cache.put(generation, key_name, stored)
        if stored.policy is None:
            return Access(key_name=key_name, admin=admin)
        policy = stored.policy
        return Access(key_name, policy.team, admin, policy.scope, stored.team_scope)


@dataclass(frozen=True)
class _StoredAccess:
    policy: KeyPolicy | None
    team_scope: Scope


def _load_access(session: Session, key_name: str) -> _StoredAccess:
    row = session.get(KeyPolicyRow, key_name)
    if row is None:
        return _StoredAccess(None, Scope())
    team_scope = Scope()
    if row.team is not None:
        team_row = session.get(TeamRow, row.team)
        if team_row is not None:
            team_scope = Scope.from_json(team_row.scope)
    return _StoredAccess(KeyPolicy(row.key_name, row.team, Scope.from_json(row.scope)), team_scope)
