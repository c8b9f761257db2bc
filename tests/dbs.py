"""Database URLs for tests: a fresh SQLite file, or a fresh PostgreSQL schema (MODELBOT_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_ENV = "MODELBOT_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield a URL to an empty database of `backend`; PostgreSQL gets its own schema, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'modelbot-test.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set (CI sets it; PostgreSQL is the production database)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        _drop_schema(admin, schema)
        admin.dispose()


def _drop_schema(admin: sa.Engine, schema: str, attempts: int = 5) -> None:
    """DROP SCHEMA ... CASCADE locks every table of the schema one by one; a bot process of the test that is still
    exiting (a fault test's survivor finishing a sweep) can hold one of them and wait for another: PostgreSQL then
    breaks the deadlock by failing one side. The test is over, so the drop simply tries again."""
    for attempt in range(attempts):
        try:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            return
        except sa.exc.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
