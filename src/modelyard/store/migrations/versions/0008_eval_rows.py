"""Per-row results of evaluation runs (what makes a run resumable).

Revision ID: 0008_eval_rows
Revises: 0006_governance
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_eval_rows"
down_revision = "0006_governance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_rows",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("row_index", sa.Integer(), primary_key=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("eval_rows")
