"""Creating a key together with its team, scope and limits (used by the CLI and /admin)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.names import validate_name
from modelyard.config import Settings
from modelyard.errors import Conflict
from modelyard.governance.keys import ApiKey, KeyStore, insert_key, key_created
from modelyard.governance.scopes import Scope
from modelyard.governance.teams import KeyPolicies, KeyPolicy, put_policy
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


@audited("key.create")
def create_scoped_key(
    db: Database,
    settings: Settings,
    name: str,
    *,
    admin: bool,
    team: str | None,
    scope: Scope,
    created_by: str,
    actor: str,
) -> ScopedKey:
    """The key, its team and scope, and its ``key.create`` event, in one transaction."""
    validate_name(name, what="key name")
    try:
        with db.session() as session:
            policy = put_policy(session, name, team, scope)
            record, plaintext = insert_key(session, name, admin=admin, created_by=created_by)
            details = {**key_created(record), "team": team, "scope": scope.to_json()}
            append_event(session, db, settings, "key.create", actor, f"key:{name}", details)
    except IntegrityError as exc:
        raise Conflict(f"a key named {name!r} already exists", param="name") from exc
    return ScopedKey(record, plaintext, policy)


def describe_keys(db: Database, settings: Settings) -> list[dict[str, Any]]:
    """Every key (never its secret) with its team, scope, PII policy and limits."""
    policies = KeyPolicies(db, settings)
    described = []
    for key in KeyStore(db, settings).list():
        policy = policies.get(key.name)
        extra = policy.to_json() if policy else {"team": None, **Scope().to_json()}
        extra.pop("key", None)
        described.append({**key.to_json(), **extra})
    return described
