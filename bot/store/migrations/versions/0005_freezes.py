"""Ad-hoc freezes (`/model freeze MODEL|all --reason ... [--for 2h]`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "freezes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("until", TS, nullable=True),
        sa.Column("lifted_at", TS, nullable=True),
        sa.Column("lifted_by", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_freezes"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_freezes_model", "freezes", ["model"])


def downgrade() -> None:
    op.drop_index("ix_freezes_model", table_name="freezes")
    op.drop_table("freezes")
