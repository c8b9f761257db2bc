"""Initial schema: requests, approvals, desired state, registry, operations, audit chain, outbox, fleet lock.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS = "0" * 64
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("open_model", sa.String(200), nullable=True),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requester", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("required_approvals", sa.Integer, nullable=False),
        sa.Column("approver_roles", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("model_generation", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("emergency", sa.Boolean, nullable=False),
        sa.Column("dry_run_plan", sa.Text, nullable=False),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("extra", sa.Text, nullable=False),
        sa.Column("card_channel", sa.String(100), nullable=True),
        sa.Column("card_ts", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
        sa.UniqueConstraint("open_model", name="uq_requests_open_model"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_requests_expires_at", "requests", ["expires_at"])
    op.create_index("ix_requests_state", "requests", ["state"])

    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.String(100), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name="fk_approvals_request_id_requests"),
        sa.UniqueConstraint("request_id", "user_id", name="uq_approvals_request_user"),
    )

    op.create_table(
        "desired_models",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_desired_models"),
    )
    desired_meta = op.create_table(
        "desired_meta",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_desired_meta"),
    )
    op.bulk_insert(desired_meta, [{"id": 1, "revision": 0}])

    op.create_table(
        "registry",
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("model", "version", name="pk_registry"),
    )

    op.create_table(
        "operations",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer, nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("phases_run", sa.Text, nullable=True),
        sa.Column("elapsed_s", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_operations"),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name="fk_operations_request_id_requests"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_operations_request_id", "operations", ["request_id"])

    op.create_table(
        "operation_replicas",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("replica", sa.String(300), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("served_version", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_operation_replicas"),
        sa.ForeignKeyConstraint(
            ["operation_id"], ["operations.id"], name="fk_operation_replicas_operation_id_operations"
        ),
    )
    op.create_index("ix_operation_replicas_operation_id", "operation_replicas", ["operation_id"])

    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("request_id", sa.Integer, nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_request_id", "audit_log", ["request_id"])
    op.create_index("ix_audit_log_model", "audit_log", ["model"])
    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "hash": GENESIS}])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("key", sa.String(200), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_attempt_at", TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("abandoned_at", TS, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("key", name="uq_outbox_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_channel", "outbox", ["channel"])

    fleet_lock = op.create_table(
        "fleet_lock",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("acquired_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_fleet_lock"),
    )
    op.bulk_insert(fleet_lock, [{"name": "fleet"}])


def downgrade() -> None:
    for table in (
        "fleet_lock",
        "outbox",
        "audit_head",
        "audit_log",
        "operation_replicas",
        "operations",
        "registry",
        "desired_meta",
        "desired_models",
        "approvals",
        "requests",
    ):
        op.drop_table(table)
