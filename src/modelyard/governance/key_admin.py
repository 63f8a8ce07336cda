"""Creating a key together with its team, scope and limits (used by the CLI and /admin)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelyard.errors import Conflict, ModelyardError, NotFound
from modelyard.governance.keys import ApiKey, KeyStore
from modelyard.governance.scopes import Scope
from modelyard.governance.teams import KeyPolicies, KeyPolicy, Teams
from modelyard.store.database import Database


@dataclass(frozen=True)
class ScopedKey:
    key: ApiKey
    plaintext: str
    policy: KeyPolicy

    def to_json(self, *, with_secret: bool) -> dict[str, Any]:
        data = {**self.key.to_json(), **self.policy.to_json()}
        data.pop("key", None)
        data["name"] = self.key.name
        if with_secret:
            data["key"] = self.plaintext
        return data


def create_scoped_key(
    db: Database,
    name: str,
    *,
    admin: bool,
    team: str | None,
    scope: Scope,
    created_by: str,
) -> ScopedKey:
    """Validate everything first, store the policy, then the key; undo the policy on failure."""
    keys, policies = KeyStore(db), KeyPolicies(db)
    if team is not None:
        Teams(db).get(team)  # NotFound names the team
    try:
        keys.get(name)
    except NotFound:
        pass
    else:
        raise Conflict(f"a key named {name!r} already exists", param="name")
    policy = policies.set(name, team, scope)
    try:
        record, plaintext = keys.create(name, admin=admin, created_by=created_by)
    except ModelyardError:
        policies.delete(name)
        raise
    return ScopedKey(record, plaintext, policy)


def describe_keys(db: Database) -> list[dict[str, Any]]:
    """Every key (never its secret) with its team, scope, PII policy and limits."""
    policies = KeyPolicies(db)
    described = []
    for key in KeyStore(db).list():
        policy = policies.get(key.name)
        extra = policy.to_json() if policy else {"team": None, **Scope().to_json()}
        extra.pop("key", None)
        described.append({**key.to_json(), **extra})
    return described
