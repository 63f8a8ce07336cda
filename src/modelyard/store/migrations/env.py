"""Alembic environment: runs on the connection modelyard hands over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from modelyard.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("modelyard runs its migrations through modelyard.store.migrate.migrate")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
