"""Database connection, sessions and migrations.

SQLite (the default) is opened in WAL mode with foreign keys on; PostgreSQL is reached with
psycopg 3 (``postgresql+psycopg://…``). The schema is brought to the newest revision
(:mod:`modelyard.store.migrate`) whenever a :class:`Database` is opened.
:meth:`Database.session` is a transaction; :meth:`Database.reads` is for a request's reads
(autocommit: no ``BEGIN``/``COMMIT`` round trips).

Dead PostgreSQL connections: a pooled connection that sat idle for :data:`IDLE_PING_AFTER_S`
or more is pinged (``SELECT 1``) before reuse, and one that psycopg already knows is broken is
replaced; a busy one is not pinged (that round trip was a tenth of a gateway request's time).
If the server went away while connections were busy, the first statement on one fails (that
transaction gets a :class:`~modelyard.errors.StoreFault`) and SQLAlchemy then retires every
connection of the pool opened before the failure, so the next requests reconnect.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from modelyard.errors import StoreFault
from modelyard.store.migrate import migrate


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


IDLE_PING_AFTER_S = 1.0
"""A pooled PostgreSQL connection idle at least this long is pinged before it is reused."""

_CHECKED_IN_AT = "modelyard_checked_in_at"


def _ping_when_idle(engine: Engine) -> None:
    """Instead of ``pool_pre_ping`` (a ``SELECT 1`` on every checkout): ping only connections
    that sat idle, and replace those the driver knows are broken (the pool then retries)."""
    dialect = engine.dialect

    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if getattr(dbapi_connection, "broken", False) or getattr(dbapi_connection, "closed", 0):
            raise DisconnectionError("the pooled connection is broken")
        since = record.info.get(_CHECKED_IN_AT)
        if since is None or time.monotonic() - since < IDLE_PING_AFTER_S:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"the pooled connection is dead: {exc}") from exc

    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine for ``url``. PostgreSQL: a pool of ``pool_size`` kept connections, and as
    many again opened for a burst and closed when it ends."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
    _ping_when_idle(engine)
    return engine


class Database:
    """An open database: an engine, a session factory, and the schema at its newest revision."""

    def __init__(self, url: str, *, run_migrations: bool = True, pool_size: int = 5) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url, pool_size)
        try:
            if run_migrations:
                migrate(self.engine)
        except OperationalError as exc:
            self.engine.dispose()
            raise StoreFault(f"cannot open the database at {self.safe_url}: {exc.orig}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, fit for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise StoreFault(f"database error: {exc.orig}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def reads(self) -> Iterator[Session]:
        """A session for reads only, on a connection in autocommit mode: no ``BEGIN`` and
        ``COMMIT`` round trips (the gateway's per-request reads), but no single snapshot
        either: each statement sees what was committed before it ran. Nothing is written:
        a block that leaves changes in the session raises instead."""
        try:
            with self.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT")
                with Session(bind=connection, autoflush=False, expire_on_commit=False) as session:
                    yield session
                    if session.new or session.dirty or session.deleted:
                        raise RuntimeError("Database.reads() is for reads: use session()")
        except OperationalError as exc:
            raise StoreFault(f"database error: {exc.orig}") from exc

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError:
            return False
        return True

    def close(self) -> None:
        self.engine.dispose()
