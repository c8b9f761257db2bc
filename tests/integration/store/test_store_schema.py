"""Migrations: they create the schema, are idempotent, and agree with bot/store/tables.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.store import Database
from bot.store.database import head_revision
from bot.store.tables import metadata

EXPECTED_TABLES = {
    "alembic_version",
    "requests",
    "approvals",
    "desired_models",
    "desired_meta",
    "registry",
    "operations",
    "operation_replicas",
    "audit_log",
    "audit_head",
    "outbox",
    "fleet_lock",
    "drift_episodes",
    "freezes",
    "alerts",
}


def test_upgrade_creates_every_table(db_url: str) -> None:
    """A fresh database gets every table and the alembic head revision."""
    db = Database(db_url)
    db.upgrade()
    with db.engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) == EXPECTED_TABLES
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
    db.dispose()


def test_upgrade_is_idempotent_and_keeps_data(db: Database) -> None:
    """Running the migrations again changes nothing and keeps rows (including the seeded singletons)."""
    with db.uow() as uow:
        uow.audit.append(
            at=datetime.now(UTC), actor="U1", action="a", outcome="ok", request_id=None, model=None, detail={}
        )
        uow.commit()
    db.upgrade()
    db.upgrade()
    with db.uow() as uow:
        assert uow.audit.head()[0] == 1
        assert uow.fleet_lock.acquire("me", datetime.now(UTC), timedelta(seconds=5))


def test_migrations_match_table_definitions(db: Database) -> None:
    """Autogenerate finds no difference between the migrated schema and tables.py."""
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_sqlite_connections_use_wal_and_foreign_keys(db: Database) -> None:
    """Every SQLite connection runs in WAL mode with foreign keys enforced and a busy timeout."""
    if db.dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_datetimes_come_back_aware_utc_and_naive_ones_are_refused(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """Times are stored as UTC and read back timezone-aware; a naive datetime is a bug and is refused."""
    local = datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    with db.uow() as uow:
        stored = uow.requests.add(make_request(created_at=local))
        uow.commit()
    with db.uow() as uow:
        created = uow.requests.get(stored.id).created_at
    assert created == local and created.tzinfo is UTC and created.hour == 12
    with db.uow() as uow, pytest.raises(sa.exc.StatementError):
        uow.requests.add(make_request(model="naive", created_at=datetime(2025, 3, 1)))
