"""Fixtures shared by integration tests: `db_url` runs a test on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbs import BACKENDS, fresh_database_url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL; the test runs once per backend (PostgreSQL skipped when not configured)."""
    with fresh_database_url(request.param, tmp_path) as url:
        yield url
