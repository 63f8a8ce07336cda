"""Migrations: one line of revisions; databases left by the branched history upgrade cleanly;
a database at the head is opened without running (or importing) Alembic."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from modelyard.config import Settings
from modelyard.store.database import Database, make_engine
from modelyard.store.migrate import (
    FIRST_TABLE,
    HEAD,
    LEGACY_PARENTS,
    LINEAR,
    MIGRATIONS_DIR,
    alembic_config,
    legacy_applied,
    version_rows,
)

RELEASED_STATES = {
    "registry": {"0001_registry"},
    "evaluation": {"0001_registry", "0004_evaluation"},
    "governance": {"0001_registry", "0004_evaluation", "0006_governance"},
    "gateway": {"0001_registry", "0002_keys", "0004_evaluation", "0006_governance"},
    "eval-rows": {
        "0001_registry",
        "0002_keys",
        "0004_evaluation",
        "0006_governance",
        "0008_eval_rows",
    },
    "lifecycle": set(LEGACY_PARENTS) - {"0009_signatures"},
    "signatures": set(LEGACY_PARENTS),
}
"""The revisions each earlier release shipped (from the repository's history); each release
ran ``upgrade heads`` on the branched graph."""


@pytest.fixture
def url(settings: Settings) -> str:
    """SQLite in a home that exists, or a fresh PostgreSQL schema."""
    return settings.resolved_database_url


def _legacy_database(url: str, revisions: Collection[str], scripts: Path) -> set[str]:
    """A database as a release with ``revisions`` (on their old parents) left it; returns the
    rows of its version table."""
    (scripts / "versions").mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        shutil.copy(MIGRATIONS_DIR / name, scripts / name)
    for revision in revisions:
        source = (MIGRATIONS_DIR / "versions" / f"{revision}.py").read_text(encoding="utf-8")
        patched, count = re.subn(
            r"^down_revision = .*$",
            f"down_revision = {LEGACY_PARENTS[revision]!r}",
            source,
            flags=re.MULTILINE,
        )
        assert count == 1
        (scripts / "versions" / f"{revision}.py").write_text(patched, encoding="utf-8")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            cfg = Config()
            cfg.set_main_option("script_location", str(scripts))
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "heads")
            connection.execute(
                sa.text("INSERT INTO models (id, name, created_at) VALUES (1, 'old', :now)"),
                {"now": "2026-01-01 00:00:00"},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO model_versions (id, model_id, version, digest, format,"
                    " size_bytes, metadata, origin, lineage, source_path, created_by,"
                    " created_at) VALUES (1, 1, 1, :digest, 'gguf', 1, '{}', 'imported', '{}',"
                    " 'x', 'alice', :now)"
                ),
                {"digest": "a" * 64, "now": "2026-01-01 00:00:00"},
            )
            return version_rows(connection)
    finally:
        engine.dispose()


def _schema(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {
            table: sorted(column["name"] for column in inspector.get_columns(table))
            for table in inspector.get_table_names()
        }
    finally:
        engine.dispose()


def _count(db: Database, table: str) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_revisions_form_one_line_ending_at_head() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(cfg)
    assert scripts.get_heads() == [HEAD]
    walked = [script.revision for script in scripts.walk_revisions()]
    assert tuple(reversed(walked)) == LINEAR
    for script in scripts.walk_revisions():
        assert not isinstance(script.down_revision, tuple), script.revision
    assert set(LEGACY_PARENTS) <= set(LINEAR) and set(FIRST_TABLE) == set(LEGACY_PARENTS)


@pytest.mark.parametrize("release", sorted(RELEASED_STATES))
def test_a_database_from_the_branched_history_upgrades_to_the_head(
    release: str, url: str, tmp_path: Path
) -> None:
    revisions = RELEASED_STATES[release]
    rows = _legacy_database(url, revisions, tmp_path / "old-scripts")
    heads = {r for r in revisions if not any(LEGACY_PARENTS[o] == r for o in revisions)}
    assert rows == heads  # the old runner's version table: one row per head

    db = Database(url)
    try:
        with db.engine.connect() as connection:
            assert version_rows(connection) == {HEAD}
        # each migration ran exactly once: 0003's data step only where it had not run before
        expected_states = 0 if "0003_lifecycle" in revisions else 1
        assert _count(db, "version_states") == expected_states
        assert _count(db, "stage_transitions") == expected_states
        assert _count(db, "audit_head") == 1
        assert _count(db, "model_versions") == 1
    finally:
        db.close()
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"  # the same tables and columns
    Database(fresh_url).close()
    assert _schema(url) == _schema(fresh_url)


def test_a_single_row_on_the_line_is_read_as_the_line(url: str) -> None:
    """0004 with 0002 and 0003 applied before it (the line's reading): nothing is run twice."""
    engine = make_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0004_evaluation")
    engine.dispose()
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            assert version_rows(connection) == {HEAD}
        assert _count(db, "audit_head") == 1
    finally:
        db.close()


def test_legacy_readings() -> None:
    everything = set(FIRST_TABLE.values())
    assert legacy_applied(set(), set()) is None
    assert legacy_applied({HEAD}, everything) is None
    assert legacy_applied({"0001_registry"}, {"models"}) is None
    assert legacy_applied({"0002_keys"}, {"models", "api_keys"}) is None
    assert legacy_applied({"0010_later"}, everything) is None
    assert legacy_applied({"0004_evaluation"}, {"models", "eval_runs"}) == {
        "0001_registry",
        "0004_evaluation",
    }
    assert legacy_applied({"0004_evaluation"}, everything - {"teams"}) is None
    assert legacy_applied({"0002_keys", "0008_eval_rows"}, everything) == {
        "0001_registry",
        "0002_keys",
        "0004_evaluation",
        "0008_eval_rows",
    }


def test_a_database_at_the_head_runs_no_migration(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Database(url).close()

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("Alembic ran on a database already at the head")

    monkeypatch.setattr(command, "upgrade", refuse)
    monkeypatch.setattr(command, "stamp", refuse)
    db = Database(url)
    try:
        assert db.ping()
    finally:
        db.close()


def test_opening_a_database_at_the_head_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'yard.db'}"
    Database(url).close()
    check = (
        "import sys\n"
        "from modelyard.store.database import Database\n"
        f"Database({url!r}).close()\n"
        "assert not [m for m in sys.modules if m.startswith('alembic')], 'alembic imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
