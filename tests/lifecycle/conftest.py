"""Fixtures for lifecycle tests: a registry on SQLite (fast) and the services around it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database


@pytest.fixture
def fast_registry(sqlite_settings: Settings) -> Iterator[Registry]:
    db = Database(sqlite_settings.resolved_database_url)
    yield Registry(db, open_blob_store(sqlite_settings), sqlite_settings)
    db.close()
