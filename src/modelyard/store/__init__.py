"""Persistence: SQLAlchemy tables, Alembic migrations and the content-addressed blob store."""
