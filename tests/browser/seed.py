"""What the organisation already has when the browser scenario starts.

A policy whose production gates are the licence, an evaluation score and four eyes; a model
``assistant`` with two versions and a tuned and a quantized descendant (a lineage to draw);
a finished evaluation of ``assistant@1`` (the evidence the eval gate reads); an advisory; a
team; and two local accounts (an operator and a viewer) next to the provider's users.
Everything is written through the services, so the audit log holds it too.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

from modelyard.catalog.advisories import Advisories
from modelyard.catalog.records import ModelVersion, NewVersion, VersionFile
from modelyard.catalog.registry import Registry
from modelyard.gateway.state import Gateway
from modelyard.governance.teams import Teams
from modelyard.operators.accounts import OperatorAccounts
from modelyard.operators.roles import Role
from tests.lifecycle.helpers import add_run

POLICY = """\
[policy]
licences = ["apache-2.0", "mit"]

[policy.stages.production]
licence = true
four_eyes = true
evals = [{ suite = "clinic-qa", metric = "contains", min = 0.8 }]
"""

MODEL = "assistant"
TEAM = "research"
LOCAL_PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class LocalAccount:
    name: str
    role: Role
    password: str = LOCAL_PASSWORD


OPERATOR = LocalAccount("olga", Role.OPERATOR)
"""A local operator: the expired-session step logs in with a password, not the provider."""
VIEWER = LocalAccount("vera", Role.VIEWER)


def _version(
    registry: Registry, name: str, *, parent: str | None = None, origin: str = "imported"
) -> ModelVersion:
    """A version of a few unique bytes: the console draws pages, nothing loads it."""
    blob = registry.blobs.write_stream([io.BytesIO(f"{name}:{uuid.uuid4()}".encode())])
    return registry.add_version(
        NewVersion(
            name=name,
            digest=blob.sha256,
            format="gguf",
            size_bytes=blob.size_bytes,
            metadata={"architecture": "llama", "license": "apache-2.0", "context_length": 2048},
            files=(VersionFile(f"{name}.gguf", blob.sha256, blob.size_bytes),),
            source_path=f"/models/{name}.gguf",
            created_by="os:ops",
            origin=origin,
            parent=parent,
        )
    )


@dataclass(frozen=True)
class Seeded:
    api_key: str
    """An admin API key (``ops-dashboard``) for checking what the API serves."""


def seed(gateway: Gateway) -> Seeded:
    settings, registry = gateway.settings, gateway.registry
    (settings.home / "modelyard.toml").write_text(POLICY)
    first = _version(registry, MODEL)
    second = _version(registry, MODEL)
    tuned = _version(registry, f"{MODEL}-clinic", parent=first.ref, origin="tuned")
    _version(registry, f"{MODEL}-clinic-q8", parent=tuned.ref, origin="quantized")
    add_run(registry, first, score=0.9)
    Advisories(registry, settings).add(
        second.ref,
        "ADV-2026-001",
        severity="medium",
        action="warn",
        actor="os:ops",
        summary="Answers dosage questions without the clinic's disclaimer.",
    )
    Teams(gateway.db, settings).create(TEAM, actor="os:ops")
    accounts = OperatorAccounts(gateway.db, settings)
    for account in (OPERATOR, VIEWER):
        accounts.create(account.name, [account.role], password=account.password, actor="os:ops")
    _, api_key = gateway.keys.create(
        "ops-dashboard", admin=True, created_by="os:ops", actor="os:ops"
    )
    return Seeded(api_key=api_key)
