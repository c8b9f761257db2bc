"""Alerts: one row per alert firing (incident post location, auto-rollback decision).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
INT64 = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", INT64, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(200), nullable=False),
        sa.Column("starts_key", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("alertname", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("link", sa.Text, nullable=False),
        sa.Column("firing_since", TS, nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("notifications", sa.Integer, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("post_channel", sa.String(100), nullable=True),
        sa.Column("post_ts", sa.String(64), nullable=True),
        sa.Column("auto_state", sa.String(16), nullable=True),
        sa.Column("auto_reason", sa.Text, nullable=False),
        sa.Column("auto_request_id", INT64, nullable=True),
        sa.Column("auto_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("source", "fingerprint", "starts_key", name="uq_alerts_firing"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_alerts_model", "alerts", ["model"])
    op.create_index("ix_alerts_auto_state", "alerts", ["auto_state"])


def downgrade() -> None:
    op.drop_index("ix_alerts_auto_state", table_name="alerts")
    op.drop_index("ix_alerts_model", table_name="alerts")
    op.drop_table("alerts")
