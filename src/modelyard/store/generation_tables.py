"""Generation counters: one row whose numbers move whenever what the gateway serves changes.

``serving_generations`` holds a single row (``id = 1``) with two counters:

* ``catalog_generation``: moves on any change to the rows :func:`resolve_for_serving
  <modelyard.catalog.serving.resolve_for_serving>` reads (models, versions and their files,
  aliases, canaries, alias history, stages and transitions, advisories);
* ``access_generation``: moves on any change to key policies, teams, or a key's creation,
  revocation or deletion (what :meth:`KeyPolicies.access
  <modelyard.governance.teams.KeyPolicies.access>` reads).

Database triggers move them, in the same transaction as the change, whoever writes it (the
CLI, another gateway process, a console). A reader that sees a counter unchanged may reuse
what it loaded under it; a reader must read the counter *before* the rows, so that what it
loads is at least as new as the number it files it under.

SQLite's "move and copy" table rebuilds (Alembic batch mode) drop a table's triggers: a
migration that rebuilds one of :data:`CATALOG_TABLES` or :data:`ACCESS_TABLES` must put them
back with :func:`trigger_statements` (``tests/store/test_generations.py`` checks the head).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Integer, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from modelyard.store.tables import Base

GENERATION_ROW_ID = 1

CATALOG_TABLES = (
    "models",
    "model_versions",
    "version_files",
    "aliases",
    "alias_canaries",
    "alias_events",
    "version_states",
    "stage_transitions",
    "advisories",
)
"""Tables whose changes move ``catalog_generation``."""

ACCESS_TABLES = ("key_policies", "teams", "api_keys")
"""Tables whose changes move ``access_generation``."""

KEY_COLUMNS = ("name", "admin", "revoked_at")
"""The ``api_keys`` columns whose updates count (not ``last_used_at``, touched while serving)."""


class ServingGenerationRow(Base):
    """The one row of counters (see the module docstring)."""

    __tablename__ = "serving_generations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    catalog_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    access_generation: Mapped[int] = mapped_column(BigInteger, default=0)


@dataclass(frozen=True)
class Generations:
    """The counters as one query read them; None when the row is missing (nothing may be
    reused then)."""

    catalog: int | None = None
    access: int | None = None


def read_generations(session: Session) -> Generations:
    """Both counters in one small query (read them before the rows they guard)."""
    row = session.execute(
        select(
            ServingGenerationRow.catalog_generation, ServingGenerationRow.access_generation
        ).where(ServingGenerationRow.id == GENERATION_ROW_ID)
    ).first()
    if row is None:
        return Generations()
    return Generations(int(row[0]), int(row[1]))


class GenerationCache:
    """Values loaded under one generation number: bounded (least recently used go first),
    shared by the threads of one process, dropped as a whole when a request reads another
    number. Exact as long as every value was loaded after its number was read."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.loads = 0
        """Values loaded from the database (misses), for tests and profiles."""
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._entries: OrderedDict[Hashable, object] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, generation: int, key: Hashable) -> tuple[bool, object]:
        """``(True, value)`` when ``key`` was loaded under ``generation``; else a miss."""
        with self._lock:
            if generation != self._generation:
                self._generation = generation
                self._entries.clear()
                return False, None
            if key not in self._entries:
                return False, None
            self._entries.move_to_end(key)
            return True, self._entries[key]

    def put(self, generation: int, key: Hashable, value: object) -> None:
        """Keep ``value`` unless a request has read another number since it was loaded."""
        with self._lock:
            self.loads += 1
            if generation != self._generation:
                return
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


def _bump(counter: str) -> str:
    return (
        f"UPDATE serving_generations SET {counter} = {counter} + 1 WHERE id = {GENERATION_ROW_ID}"
    )


def function_statements(dialect: str) -> list[str]:
    """PostgreSQL: the two trigger functions (SQLite triggers carry their own bodies)."""
    if dialect != "postgresql":
        return []
    return [
        f"CREATE OR REPLACE FUNCTION modelyard_bump_{counter}() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN {_bump(counter)}; RETURN NULL; END $$"
        for counter in ("catalog_generation", "access_generation")
    ]


def trigger_statements(dialect: str, table: str, counter: str) -> list[str]:
    """DDL for the triggers that move ``counter`` on every change to ``table``."""
    columns = f" OF {', '.join(KEY_COLUMNS)}" if table == "api_keys" else ""
    name = f"{table}_bumps_{counter}"
    if dialect == "postgresql":  # per statement: one bump however many rows change
        events = ("INSERT", "DELETE OR TRUNCATE", f"UPDATE{columns}")
        return [
            f"CREATE TRIGGER {name}_{i} AFTER {event} ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION modelyard_bump_{counter}()"
            for i, event in enumerate(events)
        ]
    events = ("INSERT", "DELETE", f"UPDATE{columns}")
    return [
        f"CREATE TRIGGER {name}_{i} AFTER {event} ON {table} BEGIN {_bump(counter)}; END"
        for i, event in enumerate(events)
    ]


def drop_statements(dialect: str, table: str, counter: str) -> list[str]:
    """The inverse of :func:`trigger_statements`."""
    name = f"{table}_bumps_{counter}"
    on = f" ON {table}" if dialect == "postgresql" else ""
    return [f"DROP TRIGGER IF EXISTS {name}_{i}{on}" for i in range(3)]
