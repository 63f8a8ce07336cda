"""What a CLI command works with: settings, and the database, blobs and registry it opens lazily."""

from __future__ import annotations

from functools import cached_property

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.intake.importer import open_blob_store
from modelyard.store.blobs import BlobStore
from modelyard.store.database import Database


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def db(self) -> Database:
        self.settings.ensure_home()
        return Database(self.settings.resolved_database_url)

    @cached_property
    def blobs(self) -> BlobStore:
        self.settings.ensure_home()
        return open_blob_store(self.settings)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.db, self.blobs)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
