"""Governance: teams, key policies, the hash-chained audit log and data-subject keys.

Revision ID: 0006_governance
Revises: 0004_evaluation
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_governance"
down_revision = "0004_evaluation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "key_policies",
        sa.Column("key_name", sa.String(128), primary_key=True),
        sa.Column("team", sa.String(64), nullable=True, index=True),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False, index=True),
        sa.Column("at", sa.String(32), nullable=False, index=True),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("team", sa.String(64), nullable=True, index=True),
        sa.Column("route", sa.String(32), nullable=True),
        sa.Column("target", sa.String(256), nullable=True),
        sa.Column("blob_sha256", sa.String(64), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("data_subject", sa.String(36), nullable=True, index=True),
        sa.Column("text_mode", sa.String(16), nullable=False),
        sa.Column("prompt_ct", sa.Text(), nullable=True),
        sa.Column("response_ct", sa.Text(), nullable=True),
        sa.Column("prompt_sha256", sa.String(64), nullable=True),
        sa.Column("response_sha256", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        sa.table(
            "audit_head",
            sa.column("id", sa.Integer()),
            sa.column("seq", sa.Integer()),
            sa.column("hash", sa.String()),
        ),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )
    op.create_table(
        "audit_subject_keys",
        sa.Column("subject_digest", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_subject_keys", "audit_head", "audit_records", "key_policies", "teams"):
        op.drop_table(table)
