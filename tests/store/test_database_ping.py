"""Dead PostgreSQL connections without a ping on every checkout: an idle pooled connection is
pinged before reuse; a busy one that died fails one transaction, then the pool reconnects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from modelyard.errors import StoreFault
from modelyard.store import database
from modelyard.store.database import Database

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    opened = Database(database_url)
    yield opened
    opened.close()


def _backend(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _kill(admin: sa.Engine, pid: int) -> None:
    with admin.begin() as conn:  # waits until the backend has gone
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


def _count_pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    pings: list[object] = []
    real = db.engine.dialect.do_ping

    def ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(db.engine.dialect, "do_ping", ping)
    return pings


def test_a_connection_in_use_a_moment_ago_is_not_pinged(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _count_pings(db, monkeypatch)
    first = _backend(db)
    assert _backend(db) == first and pings == []
    monkeypatch.setattr(database, "IDLE_PING_AFTER_S", 0.0)  # as if it had sat idle
    assert _backend(db) == first and len(pings) == 1


def test_an_idle_dead_connection_is_replaced_before_use(
    db: Database, postgres_admin: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _count_pings(db, monkeypatch)
    dead = _backend(db)
    _kill(postgres_admin, dead)
    monkeypatch.setattr(database, "IDLE_PING_AFTER_S", 0.0)  # as if it had sat idle
    assert _backend(db) != dead and len(pings) == 1


def test_a_busy_connection_that_died_fails_once_then_the_pool_reconnects(
    db: Database, postgres_admin: sa.Engine
) -> None:
    dead = _backend(db)
    _kill(postgres_admin, dead)
    with pytest.raises(StoreFault, match="database error"):
        _backend(db)
    assert _backend(db) != dead
