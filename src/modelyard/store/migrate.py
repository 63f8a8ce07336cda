"""Bring a database's schema to the newest revision: cheaply when it is there already, and
from the branched history that databases made by earlier releases recorded.

The revisions form one line, :data:`LINEAR`, ending at :data:`HEAD`. Earlier releases had
branches instead (:data:`LEGACY_PARENTS`: 0002, 0003, 0004, 0006 and 0009 each revised 0001,
0008 revised 0004) and upgraded to every head, so such a database's ``alembic_version``
holds one row per head it had. :func:`migrate`:

* at :data:`HEAD` already: one ``SELECT``; Alembic is not even imported;
* a legacy state: the revisions it applied are worked out under the old graph
  (:func:`legacy_applied`); walking the line in order, an applied one is stamped and a
  missing one is run, then the rest of the line up to the head;
* otherwise (a new database, or one behind on the line): ``alembic upgrade head``.

A single row reads differently under the two histories only for ``0004_evaluation`` in
practice (the first release with evaluation had only 0001 and 0004); the tables that the
line puts before a revision tell the two readings apart.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

LINEAR = (
    "0001_registry",
    "0002_keys",
    "0003_lifecycle",
    "0004_evaluation",
    "0006_governance",
    "0008_eval_rows",
    "0009_signatures",
    "0010_operators",
    "0011_endpoints",
    "0012_serving_generations",
    "0013_batches",
)
"""The revisions in order, as their ``down_revision`` chain them (a test holds them equal)."""

HEAD = LINEAR[-1]
"""The newest revision; a new migration appends itself to :data:`LINEAR`."""

LEGACY_PARENTS: dict[str, str | None] = {
    "0001_registry": None,
    "0002_keys": "0001_registry",
    "0003_lifecycle": "0001_registry",
    "0004_evaluation": "0001_registry",
    "0006_governance": "0001_registry",
    "0008_eval_rows": "0004_evaluation",
    "0009_signatures": "0001_registry",
}
"""The branched history as released (frozen: revisions after it only ever had one line)."""

FIRST_TABLE = {
    "0001_registry": "models",
    "0002_keys": "api_keys",
    "0003_lifecycle": "version_states",
    "0004_evaluation": "eval_runs",
    "0006_governance": "teams",
    "0008_eval_rows": "eval_rows",
    "0009_signatures": "version_signatures",
}
"""A table each legacy revision creates: its presence says the revision ran."""

_PG_LOCK_KEY = 0x6D6F64656C  # one migrating process at a time on a PostgreSQL database


def _legacy_ancestors(revision: str) -> set[str]:
    found: set[str] = set()
    current: str | None = revision
    while current is not None:
        found.add(current)
        current = LEGACY_PARENTS[current]
    return found


def legacy_applied(rows: Collection[str], tables: Collection[str]) -> frozenset[str] | None:
    """The revisions that a version table written under the branched history says ran, or
    None when ``rows`` mean the same on the line (then Alembic takes it from there)."""
    if not rows or not set(rows) <= LEGACY_PARENTS.keys():
        return None
    applied = set().union(*(_legacy_ancestors(row) for row in rows))
    if len(rows) == 1:
        (row,) = rows
        on_line = set(LINEAR[: LINEAR.index(row) + 1])
        applied |= {rev for rev in on_line - applied if FIRST_TABLE[rev] in tables}
        if applied == on_line:
            return None
    return frozenset(applied)


def version_rows(connection: Connection) -> set[str]:
    """The revisions in ``alembic_version`` (empty for a new database)."""
    if not inspect(connection).has_table("alembic_version"):
        return set()
    return {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}


def migrate(engine: Engine) -> None:
    """Bring the schema to :data:`HEAD` (idempotent)."""
    with engine.connect() as connection:
        if version_rows(connection) == {HEAD}:
            return
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        rows = version_rows(connection)  # again: another process may have migrated meanwhile
        if rows == {HEAD}:
            return
        from alembic import command

        cfg = alembic_config(connection)
        applied = legacy_applied(rows, inspect(connection).get_table_names())
        if applied is not None:
            for position, revision in enumerate(LINEAR):
                if revision in applied:  # the first one is: every revision follows 0001
                    command.stamp(cfg, revision, purge=position == 0)
                else:
                    command.upgrade(cfg, revision)
        command.upgrade(cfg, "head")


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for modelyard's scripts, running on ``connection``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg
