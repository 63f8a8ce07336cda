"""Remote engines: the upstream allow-list and sealed endpoint credentials.

Revision ID: 0011_endpoints
Revises: 0010_operators
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_endpoints"
down_revision = "0010_operators"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoint_rules",
        sa.Column("rule", sa.String(300), primary_key=True),
        sa.Column("effect", sa.String(8), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "endpoint_credentials",
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("endpoint_credentials")
    op.drop_table("endpoint_rules")
