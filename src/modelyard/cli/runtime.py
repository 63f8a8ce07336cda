"""What a CLI command works with: settings, and the database, blobs and registry it opens lazily."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from modelyard.config import Settings

if TYPE_CHECKING:  # the database layer is imported when a command first opens it
    from modelyard.catalog.registry import Registry
    from modelyard.operators.principal import Operator
    from modelyard.store.blobs import BlobStore
    from modelyard.store.database import Database


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def db(self) -> Database:
        from modelyard.governance.default_policy import ensure_default_policy
        from modelyard.store.database import Database

        self.settings.ensure_home()
        ensure_default_policy(self.settings)
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

    @cached_property
    def operator(self) -> Operator:
        """Who runs this command: the logged-in operator, else the OS user (``os:NAME``)."""
        from modelyard.operators.cli_session import cli_operator
        from modelyard.operators.sessions import OperatorSessions

        return cli_operator(self.settings, OperatorSessions(self.db, self.settings))

    def acting(self, action: str, as_actor: str | None = None) -> str:
        """The actor to record for ``action``: Forbidden unless this operator's roles allow
        it; ``as_actor`` (``--actor``) is an admin-only impersonation, itself audited."""
        operator = self.operator
        operator.require(action)
        if as_actor is None:
            return operator.actor
        from modelyard.operators.accounts import OperatorAccounts

        return OperatorAccounts(self.db, self.settings).impersonate(as_actor, by=operator)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
