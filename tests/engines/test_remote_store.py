"""The stored allow-list and sealed endpoint keys, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from modelyard.catalog.records import NewVersion
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.engines.endpoint_store import Credentials, EndpointRules, key_file
from modelyard.errors import StoreFault
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database

SECRET = "sk-sealed-0011"


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    db = Database(settings.resolved_database_url)
    yield Registry(db, open_blob_store(settings), settings)
    db.close()


def _endpoint(registry: Registry, name: str, digest: str) -> NewVersion:
    return NewVersion(
        name=name,
        digest=digest,
        format="endpoint",
        size_bytes=0,
        metadata={"endpoint": {"urls": ["http://127.0.0.1:1"], "served_model": "m"}},
        files=(),
        source_path="endpoint: http://127.0.0.1:1",
        created_by="tests",
        origin="remote",
    )


def test_rules_replace_each_other_and_deny_wins(registry: Registry, settings: Settings) -> None:
    rules = EndpointRules(registry.db, settings)
    rules.set("10.0.0.0/8", "allow", actor="ops")
    rules.set("10.0.0.5", "deny", actor="ops")
    rules.set("10.0.0.0/8", "deny", actor="ops")
    rules.set("10.0.0.0/8", "allow", actor="ops")
    assert [(r.rule, r.effect) for r in rules.list()] == [
        ("10.0.0.0/8", "allow"),
        ("10.0.0.5/32", "deny"),
    ]
    allow = rules.allow_list()
    assert {r.effect for r in allow.rules} == {"allow", "deny"}


def test_a_sealed_key_opens_only_for_its_version_and_key_file(
    registry: Registry, settings: Settings
) -> None:
    first = registry.add_version(_endpoint(registry, "remote", "a" * 64))
    other = registry.add_version(_endpoint(registry, "remote", "b" * 64))
    store = Credentials(registry.db, settings)
    with registry.db.session() as session:
        store.store_in(session, first, SECRET, actor="tests")
    assert store.open(first) == SECRET and store.has(first)
    assert store.open(other) is None
    moved = dataclasses.replace(first, digest="c" * 64)  # the row read as another version's
    with pytest.raises(StoreFault, match="does not open"):
        store.open(moved)
    key_file(settings).unlink()  # a new key file: the sealed key no longer opens
    with pytest.raises(StoreFault) as raised:
        Credentials(registry.db, settings).open(first)
    assert SECRET not in raised.value.message
