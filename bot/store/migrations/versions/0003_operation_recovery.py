"""Operations remember who ran them and the model's desired state before they started, so that the
recovery of a dead process's rollout can restore one consistent state across the fleet.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("holder", sa.String(200), nullable=True))
        batch.add_column(sa.Column("before_state", sa.Text, nullable=True))
        batch.create_index("ix_operations_finished_at", ["finished_at"])


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_index("ix_operations_finished_at")
        batch.drop_column("before_state")
        batch.drop_column("holder")
