"""The database handle: engine set-up per backend, migrations, readiness, error translation.

SQLite: several console processes may share one file, so every connection runs in WAL mode with a
busy timeout and foreign keys on, and write transactions start with BEGIN IMMEDIATE (the write lock
is taken up front, so two processes never both read and then collide when upgrading to write).
PostgreSQL: row locks (SELECT ... FOR UPDATE) and a lock timeout, so nothing waits forever.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, StaticPool, create_engine, event, make_url, text
from sqlalchemy import exc as sa_exc

from bot.core.errors import StoreUnavailable
from bot.store.unit_of_work import UnitOfWork

MIGRATIONS = Path(__file__).with_name("migrations")
READONLY_OPTION = "modelbot_readonly"


class Database:
    """One database (SQLite file or PostgreSQL), shared by every unit of work of a process.

    `audit_channel`: when set, every audit row appended through this database is also queued in the
    outbox (kind "audit") for that Slack channel, in the same transaction.
    `lock_timeout_s`: how long a transaction waits for another one's lock before StoreUnavailable.
    """

    def __init__(self, url: str, *, audit_channel: str | None = None, lock_timeout_s: float = 30.0) -> None:
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError:
            # The URL may carry a password, so it is not repeated back.
            raise StoreUnavailable(
                "The database URL is not valid (expected e.g. sqlite:///modelbot.db or postgresql+psycopg://...)."
            ) from None
        self.audit_channel = audit_channel
        self.where = describe_url(parsed)
        self._url = parsed
        self._lock_timeout_s = lock_timeout_s
        self._engine = self._create_engine()
        self.writers = threading.local()  # per thread: is a writing unit of work open? (see UnitOfWork)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tools and tests; the bot goes through `uow()`)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._engine.dialect.name

    def uow(self, *, readonly: bool = False) -> UnitOfWork:
        """A new unit of work (one transaction): `with db.uow() as uow: ...; uow.commit()`.

        `readonly=True` is for pure reads: on SQLite it starts a deferred transaction that never
        waits for writers (WAL); on PostgreSQL the transaction is READ ONLY. Do not write in it.
        """
        return UnitOfWork(self, readonly=readonly)

    def connect(self, *, readonly: bool = False) -> Connection:
        """A raw connection, translated errors included (used by UnitOfWork)."""
        try:
            conn = self._engine.connect()
        except sa_exc.SQLAlchemyError as exc:
            raise self.unavailable(exc) from exc
        return conn.execution_options(**{READONLY_OPTION: True}) if readonly else conn

    def upgrade(self, revision: str = "head") -> None:
        """Create or migrate the schema to the newest Alembic revision (idempotent, safe to run
        from several processes at once). `revision`: stop at that one instead (tests of migrations)."""
        from alembic import command  # noqa: PLC0415 - alembic is only needed here, keep imports light
        from alembic.config import Config  # noqa: PLC0415

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self._engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
        except sa_exc.SQLAlchemyError as exc:
            raise self.unavailable(exc) from exc

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers a trivial query."""
        with self.connect(readonly=True) as conn:
            try:
                conn.exec_driver_sql("SELECT 1").scalar_one()
            except sa_exc.SQLAlchemyError as exc:
                raise self.unavailable(exc) from exc

    def check_schema(self) -> None:
        """Raise StoreUnavailable unless the database answers and its schema is at the newest migration
        (for readiness: a database dropped and re-created empty answers `ping()` but fails every command).
        One small query; the expected revision is read from the migrations once per process."""
        with self.connect(readonly=True) as conn:
            try:
                found = sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
            except sa_exc.DBAPIError as exc:
                if not _is_missing_table(exc):
                    raise self.unavailable(exc) from exc
                found = []
        expected, known = _migrations()
        if found == [expected]:
            return
        if not found:
            raise StoreUnavailable(f"The database ({self.where}) has no modelbot schema: run `modelbot db upgrade`.")
        shown = ", ".join(found)
        if set(found) - known:
            raise StoreUnavailable(
                f"The database schema is newer than this modelbot (found {shown}, expected {expected}): "
                "run the modelbot version that migrated it."
            )
        raise StoreUnavailable(
            f"The database schema is not at the current revision (found {shown}, expected {expected}): "
            "run `modelbot db upgrade`."
        )

    def dispose(self) -> None:
        """Close every pooled connection (call on shutdown, and in a child process after fork)."""
        self._engine.dispose()

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        """A readable StoreUnavailable for a driver or pool error (never contains the password)."""
        return StoreUnavailable(f"The database ({self.where}) is unavailable: {self._reason(exc)}")

    def _reason(self, exc: BaseException) -> str:
        original = getattr(exc, "orig", None) or exc
        text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
        if self._url.password:
            text = text.replace(self._url.password, "***")
        text = redact(text)
        lowered = text.lower()
        if "locked" in lowered or "lock timeout" in lowered or "deadlock" in lowered:
            return f"it is busy (another transaction held a lock for more than {self._lock_timeout_s:g}s); try again"
        if isinstance(exc, sa_exc.TimeoutError):
            return "no connection became free in time; try again"
        if "unable to open database file" in lowered:
            return "cannot open the database file (does its directory exist and is it writable?)"
        return text[:300]

    def _create_engine(self) -> Engine:
        backend = self._url.get_backend_name()
        try:
            if backend == "sqlite":
                return _sqlite_engine(self._url, self._lock_timeout_s)
            if backend == "postgresql":
                return _postgres_engine(self._url, self._lock_timeout_s)
            raise StoreUnavailable(f"Unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://.")
        except ImportError as exc:
            raise StoreUnavailable(
                f"The driver for {backend} is not installed ({exc.name}); for PostgreSQL install modelbot[postgres]."
            ) from None
        except sa_exc.ArgumentError as exc:
            raise StoreUnavailable(f"The database URL is not usable: {exc}") from None


@functools.cache
def _migrations() -> tuple[str, frozenset[str]]:
    """(head revision, every revision) of bot/store/migrations, read once per process."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - alembic is only needed here, keep imports light

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None, "bot/store/migrations has no revision"
    return head, frozenset(rev.revision for rev in script.walk_revisions())


def head_revision() -> str:
    """The revision id `upgrade()` migrates to (the newest file in bot/store/migrations/versions)."""
    return _migrations()[0]


def _is_missing_table(exc: sa_exc.DBAPIError) -> bool:
    """True for "relation does not exist" (PostgreSQL, SQLSTATE 42P01) or "no such table" (SQLite)."""
    return getattr(exc.orig, "sqlstate", None) == "42P01" or "no such table" in str(exc.orig)


def describe_url(url: URL) -> str:
    """Where the database is, for messages: no user name, no password, no query options."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"sqlite {url.database or ':memory:'}"
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"{backend} {host}{port}/{url.database or ''}"


def _sqlite_engine(url: URL, lock_timeout_s: float) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    extra: dict[str, Any] = {"poolclass": StaticPool} if in_memory else {}
    engine = create_engine(url, connect_args={"timeout": lock_timeout_s, "check_same_thread": False}, **extra)
    busy_ms = int(lock_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module; `_on_begin` emits BEGIN itself.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            if not in_memory:
                _set_wal(cursor, lock_timeout_s)
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get(READONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _set_wal(cursor: Any, lock_timeout_s: float) -> None:
    """Switching to WAL needs a moment without other connections' locks, and SQLite does not wait for it
    (busy_timeout does not apply): while another process creates or migrates the file, try again briefly."""
    deadline = time.monotonic() + lock_timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _postgres_engine(url: URL, lock_timeout_s: float) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 10
    engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    lock_ms = int(lock_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"SET lock_timeout = {lock_ms}")
        finally:
            cursor.close()
        dbapi_conn.commit()  # a SET inside a later rolled-back transaction would be undone

    return engine


_PASSWORD_IN_URL = re.compile(r"://([^:/@]+):([^@]+)@")


def redact(text: str) -> str:
    """Text with any `user:password@` of a URL replaced (for log lines that quote a URL)."""
    return _PASSWORD_IN_URL.sub(r"://\1:***@", text)
