"""Database.reads: the request path's reads on an autocommit connection, which goes back to
the pool as a transactional one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.store.database import Database
from modelyard.store.governance_tables import TeamRow


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    opened = Database(database_url)
    yield opened
    opened.close()


def _team(name: str) -> TeamRow:
    return TeamRow(name=name, scope={}, created_at="2026-01-01T00:00:00Z")


def _autocommit(session: Session) -> bool:
    """Whether the DBAPI connection under ``session`` commits each statement by itself."""
    connection = session.connection()
    dbapi: Any = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        return dbapi.autocommit is True
    return dbapi.isolation_level is None  # sqlite3: no implicit BEGIN


def test_each_read_sees_what_was_committed_before_it(db: Database) -> None:
    with db.reads() as session:
        assert _autocommit(session)
        assert session.scalar(select(TeamRow.name)) is None
        with db.session() as writer:  # another connection commits in between
            writer.add(_team("red"))
        assert session.scalar(select(TeamRow.name)) == "red"


def test_changes_left_in_it_raise_and_are_not_written(db: Database) -> None:
    with pytest.raises(RuntimeError, match="is for reads"), db.reads() as session:
        session.add(_team("blue"))
    with db.reads() as session:
        assert session.scalar(select(TeamRow.name)) is None


def test_the_connection_returns_to_the_pool_transactional(db: Database) -> None:
    for _ in range(3):  # the pool hands the same connection back
        with db.reads() as session:
            session.scalar(select(TeamRow.name))
    with pytest.raises(ValueError), db.session() as session:
        assert not _autocommit(session)
        session.add(_team("green"))
        session.flush()
        raise ValueError("rolled back")
    with db.reads() as session:
        assert session.scalar(select(TeamRow.name)) is None
