"""The gateway's catalog cache: exact (a change committed anywhere is seen by the next
request), reused while ``catalog_generation`` stands still, bounded, data only."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, delete, event

from modelyard.catalog.advisories import Advisories
from modelyard.catalog.aliases import Aliases
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.registry import Registry
from modelyard.catalog.serving import ServedModel, resolve_for_serving
from modelyard.catalog.serving_cache import ServingCache
from modelyard.config import Settings
from modelyard.errors import ModelyardError, NotFound
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from modelyard.store.generation_tables import (
    GenerationCache,
    ServingGenerationRow,
    read_generations,
)
from tests.lifecycle.helpers import add_version


def serve(
    registry: Registry, cache: ServingCache, name: str, *, pilot: bool = False, seed: int = 0
) -> ServedModel:
    """As the gateway does: one transaction, the counter first, then the cached view."""
    with registry.db.session() as session:
        view = cache.view(session, read_generations(session).catalog)
        return resolve_for_serving(registry, name, pilot=pilot, rng=random.Random(seed), view=view)


def outcome(call: Callable[..., ServedModel], *args: Any, **kwargs: Any) -> tuple[object, ...]:
    """What a client sees of one resolution: the answer, or the refusal."""
    try:
        served = call(*args, **kwargs)
    except ModelyardError as exc:
        return ("refused", type(exc).__name__, exc.message, exc.code)
    return (served.version, served.headers, served.stage, served.alias, served.canary, served.route)


class Statements:
    """Counts the SQL statements an engine runs."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: object) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def statements(registry: Registry) -> Iterator[Statements]:
    counter = Statements(registry.db.engine)
    yield counter
    counter.close()


@pytest.fixture
def writer(settings: Settings) -> Iterator[Registry]:
    """A second connection pool on the same database: another process, the CLI."""
    db = Database(settings.resolved_database_url)
    yield Registry(db, open_blob_store(settings), settings)
    db.close()


def _two_in_production(registry: Registry) -> None:
    for _ in range(2):
        add_version(registry, "m")
    for ref in ("m@1", "m@2"):
        place(registry, ref, Stage.PRODUCTION, actor="ops", reason="test")


def test_a_change_by_another_connection_is_seen_on_the_next_request(
    registry: Registry, writer: Registry, settings: Settings
) -> None:
    _two_in_production(registry)
    Aliases(writer, settings).set("chat", "m@1", actor="bob")
    cache = ServingCache()
    assert serve(registry, cache, "chat").version.ref == "m@1"
    assert serve(registry, cache, "m").version.ref == "m@2"
    Aliases(writer, settings).set("chat", "m@2", actor="bob")
    assert serve(registry, cache, "chat").version.ref == "m@2"
    Advisories(writer, settings).add("m@2", "CVE-1", severity="high", action="block", actor="s")
    assert serve(registry, cache, "m").version.ref == "m@1"
    fallback = serve(registry, cache, "chat")
    assert fallback.version.ref == "m@1" and "fallback" in fallback.route
    place(writer, "m@1", Stage.DEPRECATED, actor="ops", reason="old", replacement="chat")
    assert serve(registry, cache, "m@1").headers["X-Modelyard-Replacement"] == "chat"


def test_an_unchanged_counter_reloads_nothing(
    registry: Registry, statements: Statements, settings: Settings
) -> None:
    _two_in_production(registry)
    Aliases(registry, settings).set("chat", "m@1", canary="m@2", weight=50, actor="bob")
    cache = ServingCache()
    for name in ("chat", "m", "m@1"):
        serve(registry, cache, name)
    loads = cache.entries.loads
    statements.count = 0
    for name in ("chat", "m", "m@1", "chat"):
        serve(registry, cache, name)
    assert statements.count == 4  # the counter, once a request; no row was read again
    assert cache.entries.loads == loads
    Advisories(registry, settings).add("m@1", "W-1", severity="low", action="warn", actor="s")
    statements.count = 0
    assert serve(registry, cache, "m@1").headers["X-Modelyard-Advisory"] == "W-1 (low)"
    assert statements.count > 1 and cache.entries.loads > loads


def test_decisions_are_made_per_request_not_cached(registry: Registry, settings: Settings) -> None:
    _two_in_production(registry)
    Aliases(registry, settings).set("chat", "m@1", canary="m@2", weight=50, actor="bob")
    cache = ServingCache()
    sides = {serve(registry, cache, "chat", seed=seed).version.ref for seed in range(40)}
    assert sides == {"m@1", "m@2"}
    with pytest.raises(NotFound):
        serve(registry, cache, "m@9")
    with pytest.raises(NotFound, match="has no version 9"):  # a cached miss, raised anew
        serve(registry, cache, "m@9")


def _changes(registry: Registry, settings: Settings) -> Iterator[str]:
    """A walk through what operators do; yields after each step."""
    aliases, advisories = Aliases(registry, settings), Advisories(registry, settings)
    for _ in range(3):
        add_version(registry, "m")
    yield "registered"
    place(registry, "m@1", Stage.PRODUCTION, actor="ops", reason="t")
    place(registry, "m@2", Stage.APPROVED, actor="ops", reason="t")
    yield "staged"
    aliases.set("chat", "m@1", actor="bob")
    aliases.set("chat", "m@1", canary="m@2", weight=30, actor="bob")
    yield "canary"
    place(registry, "m@2", Stage.PRODUCTION, actor="ops", reason="t")
    aliases.set("chat", "m@2", actor="bob")
    yield "moved"
    advisories.add("m@2", "CVE-9", severity="critical", action="block", actor="sec")
    yield "blocked"
    sunset = datetime(2030, 1, 1, tzinfo=UTC)
    place(registry, "m@1", Stage.DEPRECATED, actor="ops", reason="t", sunset_at=sunset)
    yield "deprecated"
    advisories.withdraw("m@2", "CVE-9", actor="sec")
    aliases.remove("chat", actor="bob")
    place(registry, "m@1", Stage.RETIRED, actor="ops", reason="t", replacement="m@2")
    yield "retired"
    registry.remove("m@3", actor="ops")
    add_version(registry, "chat")
    yield "removed"


def test_cached_answers_equal_uncached_ones_through_every_change(
    registry: Registry, settings: Settings
) -> None:
    cache = ServingCache()
    names = ("m", "m@1", "m@2", "m@3", "chat", "ghost")
    for step in _changes(registry, settings):
        for name in names:
            for pilot in (False, True):
                for seed in (1, 2, 3):
                    cached = outcome(serve, registry, cache, name, pilot=pilot, seed=seed)
                    rng = random.Random(seed)
                    fresh = outcome(resolve_for_serving, registry, name, pilot=pilot, rng=rng)
                    assert cached == fresh, (step, name, pilot)


def test_without_the_counter_row_nothing_is_reused(registry: Registry) -> None:
    _two_in_production(registry)
    with registry.db.session() as session:
        session.execute(delete(ServingGenerationRow))
    cache = ServingCache()
    assert serve(registry, cache, "m").version.ref == "m@2"
    assert len(cache.entries) == 0


def test_the_cache_is_bounded(registry: Registry) -> None:
    _two_in_production(registry)
    cache = ServingCache(max_entries=3)
    for name in ("m", "m@1", "m@2", "ghost", "nobody"):
        outcome(serve, registry, cache, name)
    assert len(cache.entries) == 3


def test_a_value_loaded_under_an_older_number_is_not_kept() -> None:
    cache = GenerationCache(max_entries=10)
    assert cache.get(5, "k") == (False, None)  # a request read 5 and loads...
    assert cache.get(6, "other") == (False, None)  # ...a newer request read 6 meanwhile
    cache.put(5, "k", "rows as of 5")  # the first one's rows may predate 6: dropped
    assert cache.get(6, "k") == (False, None)
    cache.put(6, "k", "rows as of 6")
    assert cache.get(6, "k") == (True, "rows as of 6")
    assert cache.get(7, "k") == (False, None) and len(cache) == 0
