"""The open transaction as the repositories see it (shared by unit_of_work and every repository)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, CursorResult, Executable
from sqlalchemy import exc as sa_exc

if TYPE_CHECKING:
    from bot.store.database import Database


class Tx:
    """The open transaction as the repositories see it: execute statements, translate errors.

    Connection and operational errors become StoreUnavailable; IntegrityError is left for the
    repository to turn into a domain error.
    """

    def __init__(self, db: Database, conn: Connection) -> None:
        self.db = db
        self.conn = conn
        self.dialect = conn.dialect.name

    def execute(self, statement: Executable, params: Any = None) -> CursorResult[Any]:
        if self.conn.closed:
            raise RuntimeError("this unit of work is closed; start a new one")
        try:
            return self.conn.execute(statement, params)
        except sa_exc.IntegrityError:
            raise
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            raise self.db.unavailable(exc) from exc
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise self.db.unavailable(exc) from exc
            raise

    def insert_id(self, statement: Executable, params: Mapping[str, Any] | None = None) -> int:
        """Execute an INSERT of one row and return its new integer primary key. Passing the values as `params`
        (with a bare `insert(table)`) keeps the statement cached: no per-call SQL construction."""
        key = self.execute(statement, params).inserted_primary_key
        assert key is not None and isinstance(key[0], int)
        return key[0]

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run a block in a SAVEPOINT, so an IntegrityError in it leaves the transaction usable
        (PostgreSQL aborts the whole transaction otherwise)."""
        nested = self.conn.begin_nested()
        try:
            yield
        except BaseException:
            nested.rollback()
            raise
        nested.commit()
