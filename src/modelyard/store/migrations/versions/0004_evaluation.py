"""Evaluation runs (the evidence lifecycle gates read).

Revision ID: 0004_evaluation
Revises: 0003_lifecycle
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_evaluation"
down_revision = "0003_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False, index=True),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("model_digest", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(128), nullable=True),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("data_path", sa.Text(), nullable=False),
        sa.Column("data_sha256", sa.String(64), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("eval_runs")
