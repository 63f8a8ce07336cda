"""Migration 0003_lifecycle keeps versions that were served before it in production."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.registry import Registry
from modelyard.catalog.serving import resolve_for_serving
from modelyard.config import Settings
from modelyard.governance.policy import Policy
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database, make_engine
from modelyard.store.migrate import MIGRATIONS_DIR


def test_existing_versions_stay_served(settings: Settings) -> None:
    engine = make_engine(settings.resolved_database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0001_registry")
        connection.execute(
            sa.text("INSERT INTO models (id, name, created_at) VALUES (1, 'old', :now)"),
            {"now": "2026-01-01 00:00:00"},
        )
        connection.execute(
            sa.text(
                "INSERT INTO model_versions (id, model_id, version, digest, format, size_bytes,"
                " metadata, origin, lineage, source_path, created_by, created_at) VALUES"
                " (1, 1, 1, :digest, 'gguf', 1, '{}', 'imported', '{}', 'x', 'alice', :now)"
            ),
            {"digest": "a" * 64, "now": "2026-01-01 00:00:00"},
        )
    engine.dispose()
    db = Database(settings.resolved_database_url)  # upgrades to every head
    registry = Registry(db, open_blob_store(settings), settings)
    try:
        lifecycle = Lifecycle(registry, settings, Policy())
        assert lifecycle.stage("old@1")[1].stage.value == "production"
        assert [t.reason for t in lifecycle.history("old")] == [
            "served before lifecycle tracking (migration 0003_lifecycle)"
        ]
        assert resolve_for_serving(registry, "old").version.ref == "old@1"
    finally:
        db.close()
