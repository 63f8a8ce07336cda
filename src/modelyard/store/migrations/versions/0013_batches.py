"""The Batch API: uploaded files, batches and their lines.

Revision ID: 0013_batches
Revises: 0012_serving_generations
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013_batches"
down_revision = "0012_serving_generations"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "batch_files",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_key_id", sa.String(64), nullable=False, index=True),
        sa.Column("owner_key_name", sa.String(160), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        _when("created_at", nullable=False),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_key_id", sa.String(64), nullable=False, index=True),
        sa.Column("owner_key_name", sa.String(160), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("input_file_id", sa.String(64), nullable=False),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("metadata_json", sa.Text(), nullable=True),
        sa.Column("errors_json", sa.Text(), nullable=True),
        sa.Column("output_file_id", sa.String(64), nullable=True),
        sa.Column("error_file_id", sa.String(64), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("in_progress_at"),
        _when("finalizing_at"),
        _when("completed_at"),
        _when("failed_at"),
        _when("expired_at"),
        _when("cancelling_at"),
        _when("cancelled_at"),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        _when("lease_until"),
    )
    op.create_table(
        "batch_lines",
        sa.Column(
            "batch_id",
            sa.String(64),
            sa.ForeignKey("batches.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line_no", sa.Integer(), primary_key=True),
        sa.Column("custom_id", sa.String(512), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        _when("finished_at"),
    )
    op.create_index("ix_batch_lines_batch_status", "batch_lines", ["batch_id", "status", "line_no"])


def downgrade() -> None:
    op.drop_index("ix_batch_lines_batch_status", table_name="batch_lines")
    op.drop_table("batch_lines")
    op.drop_table("batches")
    op.drop_table("batch_files")
