"""Lifecycle: version stages, stage transitions, alias canaries and events, advisories.

Revision ID: 0003_lifecycle
Revises: 0002_keys
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_lifecycle"
down_revision = "0002_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "version_states",
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("sunset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replacement", sa.String(64), nullable=True),
        sa.Column("intended_use", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "stage_transitions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_name", sa.String(64), nullable=False, index=True),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("model_digest", sa.String(64), nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=True),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("gates", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alias_canaries",
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("alias", sa.String(64), nullable=False, index=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("target", sa.String(96), nullable=True),
        sa.Column("canary", sa.String(96), nullable=True),
        sa.Column("canary_weight", sa.Float(), nullable=True),
        sa.Column("previous_target", sa.String(96), nullable=True),
        sa.Column("previous_canary", sa.String(96), nullable=True),
        sa.Column("previous_weight", sa.Float(), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "advisories",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("advisory_id", sa.String(64), nullable=False, index=True),
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model_ref", sa.String(96), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("advisory_id", "version_id", name="uq_advisory_version"),
    )
    # Versions registered before lifecycle tracking were all served: they stay in production,
    # recorded as a transition so their history says why.
    op.execute(
        "INSERT INTO version_states (version_id, stage, updated_at) "
        "SELECT id, 'production', CURRENT_TIMESTAMP FROM model_versions"
    )
    op.execute(
        "INSERT INTO stage_transitions (model_name, model_version, model_digest, from_stage, "
        "to_stage, actor, reason, evidence, gates, created_at) "
        "SELECT m.name, v.version, v.digest, NULL, 'production', 'migration', "
        "'served before lifecycle tracking (migration 0003_lifecycle)', '[]', '[]', "
        "CURRENT_TIMESTAMP FROM model_versions v JOIN models m ON m.id = v.model_id"
    )


def downgrade() -> None:
    op.drop_table("advisories")
    op.drop_table("alias_events")
    op.drop_table("alias_canaries")
    op.drop_table("stage_transitions")
    op.drop_table("version_states")
