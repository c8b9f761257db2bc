"""Unit of work: one database transaction and the repositories that work inside it."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from bot.store.alerts import AlertRepository
from bot.store.audit import AuditRepository
from bot.store.desired import DesiredRepository
from bot.store.drift import DriftRepository
from bot.store.fleet_lock import FleetLockRepository
from bot.store.freezes import FreezeRepository
from bot.store.operations import OperationRepository
from bot.store.outbox import OutboxRepository
from bot.store.registry import RegistryRepository
from bot.store.requests import RequestRepository
from bot.store.tx import Tx

if TYPE_CHECKING:
    from bot.store.database import Database


class UnitOfWork:
    """One transaction. `with db.uow() as uow:` ... `uow.commit()`; leaving the block without
    commit() rolls everything back. Using the repositories again after commit() starts a new
    transaction, which is likewise rolled back on exit unless committed.

    Repositories: `requests`, `desired`, `registry`, `operations`, `audit`, `outbox`, `fleet_lock`, `drift`, `freezes`,
    `alerts`.
    """

    requests: RequestRepository
    desired: DesiredRepository
    registry: RegistryRepository
    operations: OperationRepository
    audit: AuditRepository
    outbox: OutboxRepository
    fleet_lock: FleetLockRepository
    drift: DriftRepository
    freezes: FreezeRepository
    alerts: AlertRepository

    def __init__(self, db: Database, *, readonly: bool = False) -> None:
        self._db = db
        self._readonly = readonly
        self._conn: Connection | None = None
        self._entered = False

    def __enter__(self) -> Self:
        if self._entered:
            raise RuntimeError("a unit of work can be entered only once")
        self._entered = True
        self._claim_thread()
        try:
            conn = self._db.connect(readonly=self._readonly)
        except BaseException:
            self._release_thread()
            raise
        try:
            conn.begin()  # now, so that a busy or unreachable database fails here (SQLite: BEGIN IMMEDIATE)
            if self._readonly and conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        except sa_exc.SQLAlchemyError as exc:
            conn.close()
            self._release_thread()
            raise self._db.unavailable(exc) from exc
        self._conn = conn
        tx = Tx(self._db, conn)
        self.outbox = OutboxRepository(tx)
        self.requests = RequestRepository(tx)
        self.desired = DesiredRepository(tx)
        self.registry = RegistryRepository(tx)
        self.operations = OperationRepository(tx)
        self.audit = AuditRepository(tx, self.outbox, self._db.audit_channel)
        self.fleet_lock = FleetLockRepository(tx)
        self.drift = DriftRepository(tx)
        self.freezes = FreezeRepository(tx)
        self.alerts = AlertRepository(tx)
        return self

    def commit(self) -> None:
        """Make every change of this unit of work durable, atomically."""
        if self._conn is None:
            raise RuntimeError("commit() outside the unit of work's `with` block")
        try:
            self._conn.commit()
        except sa_exc.SQLAlchemyError as exc:
            raise self._db.unavailable(exc) from exc

    def rollback(self) -> None:
        """Discard every change of this unit of work (also done on leaving without commit)."""
        if self._conn is not None and self._conn.in_transaction():
            self._conn.rollback()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            self.rollback()
        except sa_exc.SQLAlchemyError as rollback_error:
            if exc is None:  # don't hide the original error behind a failed rollback
                raise self._db.unavailable(rollback_error) from rollback_error
        finally:
            self._conn = None
            conn.close()
            self._release_thread()

    def _claim_thread(self) -> None:
        # A writing unit of work holds SQLite's single write lock (BEGIN IMMEDIATE) and may hold row
        # locks on PostgreSQL; a second one opened underneath it in the same thread would wait for
        # the first forever (until lock_timeout_s). Fail at once, with the fix in the message.
        if self._readonly:
            return
        if getattr(self._db.writers, "open", False):
            raise RuntimeError(
                "a writing unit of work is already open in this thread; a nested one would wait for its "
                "locks (SQLite: the write lock) until timeout. Pass the open uow down, or use "
                "db.uow(readonly=True) for reads."
            )
        self._db.writers.open = True

    def _release_thread(self) -> None:
        if not self._readonly:
            self._db.writers.open = False
