"""A database that is wrong, unreachable, gone or busy surfaces as StoreUnavailable with a readable message."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.core.errors import StoreUnavailable
from bot.store import Database
from tests.integration.store.conftest import T0


def test_malformed_url_is_refused_without_echoing_it() -> None:
    """A URL that cannot be parsed is reported without repeating it (it might hold a password)."""
    with pytest.raises(StoreUnavailable, match="URL is not valid") as caught:
        Database("not a url with hunter2")
    assert "hunter2" not in str(caught.value)


def test_unsupported_backend_is_named() -> None:
    """A backend other than SQLite/PostgreSQL is refused with the supported choices."""
    with pytest.raises(StoreUnavailable, match="Unsupported database 'mysql'"):
        Database("mysql://root:pw@localhost/db")


def test_unreachable_postgres_names_the_host_but_not_the_credentials() -> None:
    """Nothing listens on port 1: ping() says where it tried and why, without user or password."""
    db = Database("postgresql+psycopg://modelbot:hunter2@127.0.0.1:1/prod?connect_timeout=2")
    with pytest.raises(StoreUnavailable) as caught:
        db.ping()
    message = str(caught.value)
    assert "127.0.0.1:1/prod" in message and "refused" in message.lower()
    assert "hunter2" not in message and "modelbot:" not in message
    with pytest.raises(StoreUnavailable), db.uow():
        pass
    db.dispose()


def test_sqlite_file_in_a_missing_directory(tmp_path: Path) -> None:
    """An SQLite path whose directory does not exist gives a hint instead of a driver error."""
    db = Database(f"sqlite:///{tmp_path / 'missing' / 'modelbot.db'}")
    with pytest.raises(StoreUnavailable, match="cannot open the database file"):
        db.upgrade()
    db.dispose()


def test_connection_lost_mid_transaction_then_recovers(db: Database, db_url: str) -> None:
    """PostgreSQL closing our session mid-transaction raises StoreUnavailable; the next unit of work reconnects."""
    if db.dialect != "postgresql":
        pytest.skip("an SQLite file cannot drop a connection")
    admin = sa.create_engine(db_url)
    with pytest.raises(StoreUnavailable, match="is unavailable"), db.uow() as uow:
        pid = uow.requests._tx.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with admin.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        uow.audit.append(at=T0, actor="U1", action="a", outcome="ok", request_id=None, model=None, detail={})
    admin.dispose()
    with db.uow() as uow:
        assert uow.audit.head()[0] == 0
    db.ping()


def test_a_lock_held_too_long_is_reported_as_busy(db: Database, db_url: str) -> None:
    """When another transaction holds the lock past lock_timeout_s, the waiter gets a 'busy' StoreUnavailable."""
    impatient = Database(db_url, lock_timeout_s=0.3)
    with db.uow() as holder:
        holder.fleet_lock.acquire("replica-1", T0, timedelta(minutes=5))  # takes the write lock / row lock
        with pytest.raises(StoreUnavailable, match="busy"), impatient.uow() as waiter:
            waiter.fleet_lock.acquire("replica-2", T0, timedelta(minutes=5))
    impatient.dispose()
