"""Teams and key policies: the stored scopes the gateway turns into a :class:`Access`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from modelyard.audit.canonical import iso_now
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.governance.scopes import Access, Scope
from modelyard.store.database import Database
from modelyard.store.governance_tables import KeyPolicyRow, TeamRow

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
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, scope: Scope | None = None) -> Team:
        check_team_name(name)
        with self.db.session() as session:
            if session.get(TeamRow, name) is not None:
                raise Conflict(f"team {name!r} already exists")
            row = TeamRow(name=name, scope=(scope or Scope()).to_json(), created_at=iso_now())
            session.add(row)
        return Team(name, scope or Scope(), row.created_at)

    def update(self, name: str, scope: Scope) -> Team:
        with self.db.session() as session:
            row = session.get(TeamRow, name)
            if row is None:
                raise NotFound(f"no team {name!r}")
            row.scope = scope.to_json()
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

    def delete(self, name: str) -> None:
        with self.db.session() as session:
            row = session.get(TeamRow, name)
            if row is None:
                raise NotFound(f"no team {name!r}")
            members = session.execute(
                select(KeyPolicyRow.key_name).where(KeyPolicyRow.team == name).limit(1)
            ).first()
            if members is not None:
                raise Conflict(f"team {name!r} still has keys (e.g. {members[0]!r})")
            session.delete(row)


class KeyPolicies:
    """Scope and team of each gateway key, stored by key name beside the keys table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def set(self, key_name: str, team: str | None, scope: Scope) -> KeyPolicy:
        with self.db.session() as session:
            if team is not None and session.get(TeamRow, team) is None:
                raise NotFound(f"no team {team!r} (create it with `modelyard teams create`)")
            row = session.get(KeyPolicyRow, key_name)
            if row is None:
                row = KeyPolicyRow(key_name=key_name)
                session.add(row)
            row.team, row.scope, row.updated_at = team, scope.to_json(), iso_now()
        return KeyPolicy(key_name, team, scope)

    def get(self, key_name: str) -> KeyPolicy | None:
        with self.db.session() as session:
            row = session.get(KeyPolicyRow, key_name)
            if row is None:
                return None
            return KeyPolicy(row.key_name, row.team, Scope.from_json(row.scope))

    def delete(self, key_name: str) -> None:
        with self.db.session() as session:
            row = session.get(KeyPolicyRow, key_name)
            if row is not None:
                session.delete(row)

    def access(self, key_name: str, *, admin: bool = False) -> Access:
        """The access of a key authenticated elsewhere (the gateway's keys table)."""
        policy = self.get(key_name)
        if policy is None:
            return Access(key_name=key_name, admin=admin)
        team_scope = Scope()
        if policy.team is not None:
            with self.db.session() as session:
                team_row = session.get(TeamRow, policy.team)
                if team_row is not None:
                    team_scope = Scope.from_json(team_row.scope)
        return Access(key_name, policy.team, admin, policy.scope, team_scope)
