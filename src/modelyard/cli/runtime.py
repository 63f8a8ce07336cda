"""What a CLI command works with: settings, and the database, blobs and registry it opens lazily."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from modelyard.config import Settings

if TYPE_CHECKING:  # the database layer is imported when a command first opens it
    from modelyard.catalog.registry import Registry
    from modelyard.store.blobs import BlobStore
    from modelyard.store.database import Database


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def db(self) -> Database:
        from modelyard.store.database import Database

        self.settings.ensure_home()
        return Database(self.settings.resolved_database_url)

    @cached_property
    def blobs(self) -> BlobStore:
        from modelyard.store.blobs import open_blob_store

        self.settings.ensure_home()
        return open_blob_store(self.settings)

    @cached_property
    def registry(self) -> Registry:
        from modelyard.catalog.registry import Registry

        return Registry(self.db, self.blobs, self.settings)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
