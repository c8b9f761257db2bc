"""Alembic environment for modelbot.

`Database.upgrade()` hands over an open connection (config.attributes["connection"]) inside a
transaction. Run through the `alembic` command instead, the URL comes from `sqlalchemy.url` or
MODELBOT_DATABASE_URL and the engine is built by `Database`, so SQLite gets the same pragmas.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from bot.store.tables import metadata

# Any constant works; it only has to be the same for every modelbot process.
PG_MIGRATION_LOCK = 0x6D6F64656C626F74  # "modelbot"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds the table
        compare_type=True,
    )
    if connection.dialect.name == "postgresql":
        # Two processes upgrading at once: the second waits here, then finds the schema at head.
        # (On SQLite the transaction already began with BEGIN IMMEDIATE, which serialises them.)
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return context.config.get_main_option("sqlalchemy.url") or os.environ.get(
        "MODELBOT_DATABASE_URL", "sqlite:///modelbot.db"
    )


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from bot.store.database import Database  # noqa: PLC0415 - only when run by the alembic CLI

    db = Database(_url())
    try:
        with db.engine.begin() as conn:
            _run(conn)
    finally:
        db.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
