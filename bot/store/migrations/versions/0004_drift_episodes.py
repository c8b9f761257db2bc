"""Drift episodes: which models' replicas differ from the desired state, since when (one post per episode).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_episodes",
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replicas", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("model", name="pk_drift_episodes"),
    )


def downgrade() -> None:
    op.drop_table("drift_episodes")
