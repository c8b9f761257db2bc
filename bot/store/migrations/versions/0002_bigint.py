"""64-bit ids, versions, generations and audit sequence numbers (BIGINT on PostgreSQL).

TF Serving versions are int64 and timestamp-named version directories (20240101120000) are common;
32-bit INTEGER columns overflowed on PostgreSQL. SQLite's INTEGER is already 64-bit and
bot/store/tables.py keeps that name there, so on SQLite this revision changes nothing: rebuilding
the tables (batch mode) would buy nothing and would have to drop tables that foreign keys point at.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# table -> its 64-bit columns as (name, nullable); referencing columns come with their tables.
COLUMNS: dict[str, tuple[tuple[str, bool], ...]] = {
    "requests": (("id", False), ("from_version", True), ("to_version", False), ("model_generation", False)),
    "approvals": (("id", False), ("request_id", False)),
    "desired_models": (("generation", False),),
    "desired_meta": (("revision", False),),
    "registry": (("version", False),),
    "operations": (("id", False), ("request_id", True)),
    "operation_replicas": (("id", False), ("operation_id", False), ("served_version", True)),
    "audit_log": (("seq", False), ("request_id", True)),
    "audit_head": (("seq", False),),
    "outbox": (("id", False),),
}
# SERIAL keys: PostgreSQL created their sequences `AS integer`, which stop at 2^31-1 on their own.
SERIAL_KEYS = ("requests", "approvals", "operations", "operation_replicas", "outbox")


def upgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger(), "bigint")


def downgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer(), "integer")


def _retype(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int], sequence_type: str) -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, nullable in columns:
                batch.alter_column(name, existing_type=old, type_=new, existing_nullable=nullable)
    for table in SERIAL_KEYS:
        # The sequence's name is looked up, not assumed: it is schema-qualified and may have been renamed.
        # (pg_get_serial_sequence returns it quoted as needed.)
        op.execute(
            f"DO $$ BEGIN EXECUTE 'ALTER SEQUENCE ' || pg_get_serial_sequence('{table}', 'id') "
            f"|| ' AS {sequence_type}'; END $$"
        )
