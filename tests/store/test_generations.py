"""Generation counters: a trigger on every table that serving or key access reads moves its
counter in the changing transaction, on SQLite and on PostgreSQL."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from modelyard.catalog.advisories import Advisories
from modelyard.catalog.aliases import Aliases
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import Lifecycle, place
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.governance.keys import KeyStore
from modelyard.governance.policy import Policy
from modelyard.governance.scopes import Scope
from modelyard.governance.teams import KeyPolicies, Teams
from modelyard.store.generation_tables import (
    ACCESS_TABLES,
    CATALOG_TABLES,
    Generations,
    drop_statements,
    read_generations,
)
from modelyard.store.migrate import MIGRATIONS_DIR
from tests.lifecycle.helpers import add_version


@dataclass
class World:
    registry: Registry
    settings: Settings

    @property
    def keys(self) -> KeyStore:
        return KeyStore(self.registry.db, self.settings)

    @property
    def teams(self) -> Teams:
        return Teams(self.registry.db, self.settings)

    @property
    def policies(self) -> KeyPolicies:
        return KeyPolicies(self.registry.db, self.settings)

    @property
    def aliases(self) -> Aliases:
        return Aliases(self.registry, self.settings)

    @property
    def advisories(self) -> Advisories:
        return Advisories(self.registry, self.settings)

    def counters(self) -> Generations:
        with self.registry.db.session() as session:
            return read_generations(session)


def _seed(w: World) -> None:
    """Two versions of ``m`` in production, an alias, a team and a key."""
    for _ in range(2):
        add_version(w.registry, "m")
    for ref in ("m@1", "m@2"):
        place(w.registry, ref, Stage.PRODUCTION, actor="ops", reason="seed")
    w.aliases.set("chat", "m@1", actor="bob")
    w.teams.create("red", actor="ops")
    w.keys.create("alice", created_by="ops", actor="ops")


Action = Callable[[World], object]

CHANGES: dict[str, list[Action]] = {
    "models": [
        lambda w: add_version(w.registry, "fresh"),
        lambda w: w.registry.remove("fresh", all_versions=True, actor="ops"),
    ],
    "model_versions": [
        lambda w: add_version(w.registry, "m"),
        lambda w: w.registry.remove("m@3", actor="ops"),
    ],
    "version_files": [lambda w: add_version(w.registry, "m")],
    "aliases": [
        lambda w: w.aliases.set("chat", "m@2", actor="bob"),
        lambda w: w.aliases.remove("chat", actor="bob"),
    ],
    "alias_canaries": [
        lambda w: w.aliases.set("chat", "m@1", canary="m@2", weight=10, actor="bob"),
        lambda w: w.aliases.set("chat", "m@1", canary="m@2", weight=20, actor="bob"),
        lambda w: w.aliases.set("chat", "m@1", actor="bob"),
    ],
    "alias_events": [lambda w: w.aliases.set("chat", "m@2", actor="bob")],
    "version_states": [
        lambda w: place(w.registry, "m@1", Stage.DEPRECATED, actor="ops", reason="old"),
        lambda w: Lifecycle(w.registry, w.settings, Policy()).set_intended_use(
            "m@2", "triage", actor="ops"
        ),
    ],
    "stage_transitions": [
        lambda w: place(w.registry, "m@1", Stage.DEPRECATED, actor="ops", reason="old")
    ],
    "advisories": [
        lambda w: w.advisories.add("m@2", "CVE-1", severity="high", action="block", actor="s"),
        lambda w: w.advisories.withdraw("m@2", "CVE-1", actor="s"),
    ],
    "teams": [
        lambda w: w.teams.create("blue", actor="ops"),
        lambda w: w.teams.update("blue", Scope(pilot=True), actor="ops"),
        lambda w: w.teams.delete("blue", actor="ops"),
    ],
    "key_policies": [
        lambda w: w.policies.set("alice", "red", Scope(models=("m",)), actor="ops"),
        lambda w: w.policies.delete("alice", actor="ops"),
    ],
    "api_keys": [
        lambda w: w.keys.create("bob", created_by="ops", actor="ops"),
        lambda w: w.keys.revoke("bob", actor="ops"),
    ],
}


def test_every_guarded_table_has_a_change_here() -> None:
    assert set(CHANGES) == set(CATALOG_TABLES) | set(ACCESS_TABLES)


def _triggers(w: World) -> set[str]:
    with w.registry.db.session() as session:
        if w.registry.db.engine.dialect.name == "postgresql":
            query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        return {row[0] for row in session.execute(text(query))}


def test_the_head_has_every_trigger(registry: Registry, settings: Settings) -> None:
    found = _triggers(World(registry, settings))
    for counter, tables in (
        ("catalog_generation", CATALOG_TABLES),
        ("access_generation", ACCESS_TABLES),
    ):
        for table in tables:
            assert {f"{table}_bumps_{counter}_{i}" for i in range(3)} <= found, table


def _isolate(w: World, keep: str) -> None:
    """Drop the triggers of every other guarded table, so that only ``keep`` can count."""
    dialect = w.registry.db.engine.dialect.name
    with w.registry.db.session() as session:
        for counter, tables in (
            ("catalog_generation", CATALOG_TABLES),
            ("access_generation", ACCESS_TABLES),
        ):
            for table in tables:
                if table != keep:
                    for statement in drop_statements(dialect, table, counter):
                        session.execute(text(statement))


@pytest.mark.parametrize("table", sorted(CHANGES))
def test_a_change_to_each_table_moves_its_counter(
    table: str, registry: Registry, settings: Settings
) -> None:
    w = World(registry, settings)
    _seed(w)
    _isolate(w, table)
    moving = "catalog" if table in CATALOG_TABLES else "access"
    for change in CHANGES[table]:
        before = w.counters()
        change(w)
        after = w.counters()
        assert getattr(after, moving) > getattr(before, moving), (table, change)
        still = "access" if moving == "catalog" else "catalog"
        assert getattr(after, still) == getattr(before, still)


def test_serving_and_reading_move_nothing(registry: Registry, settings: Settings) -> None:
    w = World(registry, settings)
    _seed(w)
    _, plaintext = w.keys.create("carol", created_by="ops", actor="ops")
    before = w.counters()
    assert w.keys.authenticate(plaintext).key_name == "carol"  # touches last_used_at
    w.policies.access("carol")
    registry.list_versions()
    assert w.counters() == before


def test_the_migration_guards_the_tables_named_here() -> None:
    path = MIGRATIONS_DIR / "versions" / "0012_serving_generations.py"
    spec = importlib.util.spec_from_file_location("serving_generations_revision", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.GUARDED == {
        "catalog_generation": CATALOG_TABLES,
        "access_generation": ACCESS_TABLES,
    }
