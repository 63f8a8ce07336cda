"""The connection the audit log writes through.

SQLite: a separate engine on the same file with ``synchronous=FULL`` so that a committed
audit record survives power loss (the rest of modelyard runs with ``NORMAL``).
PostgreSQL: the shared engine; its default ``synchronous_commit=on`` is already durable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event

from modelyard.store.database import Database


def _full_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def audit_engine(db: Database) -> Engine:
    if not db.url.startswith("sqlite"):
        return db.engine
    engine = create_engine(db.url, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _full_sync)
    return engine
