"""The gateway's PostgreSQL pool keeps ``MODELYARD_DATABASE_POOL_SIZE`` connections: a burst
of that many concurrent database users reuses them instead of opening (and closing) a
connection, a server backend, for each."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import sqlalchemy as sa

from modelyard.config import Settings
from modelyard.gateway.state import Gateway
from modelyard.store.database import Database

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _burst_backends(db: Database, width: int) -> set[int]:
    """Hold ``width`` connections at once, as concurrent requests do; their backends."""
    with ExitStack() as held:
        conns = [held.enter_context(db.engine.connect()) for _ in range(width)]
        return {int(c.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()) for c in conns}


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    opened = Database(database_url, pool_size=8)
    yield opened
    opened.close()


def test_a_burst_as_wide_as_the_pool_reuses_its_connections(db: Database) -> None:
    first = _burst_backends(db, 8)
    again = _burst_backends(db, 8)
    assert len(first) == 8 and again == first


def test_a_wider_burst_opens_overflow_connections_and_closes_them_after(db: Database) -> None:
    kept = _burst_backends(db, 8)
    wide = _burst_backends(db, 12)  # 4 over the pool: opened for the burst
    assert kept < wide and len(wide) == 12
    assert db.engine.pool.checkedin() == 8  # type: ignore[attr-defined]  # overflow closed


def test_the_gateway_pool_size_comes_from_the_settings(settings: Settings) -> None:
    sized = settings.model_copy(update={"database_pool_size": 3})
    gateway = Gateway.open(sized)
    try:
        assert gateway.db.engine.pool.size() == 3  # type: ignore[attr-defined]
    finally:
        asyncio.run(gateway.close())
    assert Settings().database_pool_size == 10
