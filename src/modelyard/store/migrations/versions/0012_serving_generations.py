"""Generation counters for the gateway's caches, moved by triggers on the tables they guard.

Revision ID: 0012_serving_generations
Revises: 0011_endpoints
"""

import sqlalchemy as sa
from alembic import op

from modelyard.store.generation_tables import (
    drop_statements,
    function_statements,
    trigger_statements,
)

revision = "0012_serving_generations"
down_revision = "0011_endpoints"
branch_labels = None
depends_on = None

GUARDED = {
    "catalog_generation": (
        "models",
        "model_versions",
        "version_files",
        "aliases",
        "alias_canaries",
        "alias_events",
        "version_states",
        "stage_transitions",
        "advisories",
    ),
    "access_generation": ("key_policies", "teams", "api_keys"),
}
"""The tables as of this revision (frozen here; a later revision adds its own)."""


def upgrade() -> None:
    table = op.create_table(
        "serving_generations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("catalog_generation", sa.BigInteger(), nullable=False),
        sa.Column("access_generation", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="serving_generations_one_row"),
    )
    op.bulk_insert(table, [{"id": 1, "catalog_generation": 0, "access_generation": 0}])
    dialect = op.get_bind().dialect.name
    for statement in function_statements(dialect):
        op.execute(statement)
    for counter, tables in GUARDED.items():
        for name in tables:
            for statement in trigger_statements(dialect, name, counter):
                op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for counter, tables in GUARDED.items():
        for name in tables:
            for statement in drop_statements(dialect, name, counter):
                op.execute(statement)
    if dialect == "postgresql":
        for counter in GUARDED:
            op.execute(f"DROP FUNCTION IF EXISTS modelyard_bump_{counter}()")
    op.drop_table("serving_generations")
