"""KeyPolicies.access reuses what it read while ``access_generation`` stands still, and sees a
change made through another connection on the very next call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from modelyard.config import Settings
from modelyard.errors import Unauthorized
from modelyard.governance.keys import KeyStore
from modelyard.governance.scopes import Scope
from modelyard.governance.teams import KeyPolicies, Teams
from modelyard.store.database import Database


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    opened = Database(settings.resolved_database_url)
    yield opened
    opened.close()


@pytest.fixture
def other(settings: Settings) -> Iterator[Database]:
    """Another connection pool on the same database (the CLI, another gateway process)."""
    opened = Database(settings.resolved_database_url)
    yield opened
    opened.close()


def test_a_change_elsewhere_is_seen_on_the_next_call(
    db: Database, other: Database, settings: Settings
) -> None:
    KeyStore(other, settings).create("alice", created_by="ops", actor="ops")
    policies = KeyPolicies(db, settings)
    assert not policies.access("alice").pilot
    teams, writer = Teams(other, settings), KeyPolicies(other, settings)
    teams.create("red", Scope(models=("m",)), actor="ops")
    writer.set("alice", "red", Scope(), actor="ops")
    assert policies.access("alice").team == "red"
    teams.update("red", Scope(pilot=True), actor="ops")
    assert policies.access("alice").pilot
    past = datetime.now(UTC) - timedelta(days=1)
    writer.set("alice", "red", Scope(expires_at=past), actor="ops")
    with pytest.raises(Unauthorized, match="expired"):
        policies.access("alice").check_alive()
    writer.delete("alice", actor="ops")
    assert policies.access("alice", admin=True) == policies.access("alice", admin=True)
    assert policies.access("alice").key_scope == Scope() and policies.access("alice").team is None


def test_an_unchanged_counter_reads_only_the_counter(db: Database, settings: Settings) -> None:
    Teams(db, settings).create("red", Scope(pilot=True), actor="ops")
    KeyPolicies(db, settings).set("bob", "red", Scope(), actor="ops")
    policies = KeyPolicies(db, settings)
    assert policies.access("bob").pilot
    assert policies.access("nobody").team is None
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        for name in ("bob", "nobody", "bob"):
            access = policies.access(name, admin=name == "nobody")
            assert access.admin == (name == "nobody")  # the flag is the caller's, not cached
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert len(statements) == 3 and all("serving_generations" in s for s in statements)
    assert policies.cache.loads == 2


def test_the_cache_is_bounded(db: Database, settings: Settings) -> None:
    policies = KeyPolicies(db, settings, max_cached=2)
    for name in ("a", "b", "c", "d"):
        policies.access(name)
    assert len(policies.cache) == 2
