"""Store fixtures, reusable by any integration test.

`db_url` (from tests/integration/conftest.py) is parametrized over "sqlite" (a fresh file in tmp_path)
and "postgres" (a fresh, uniquely named schema selected with search_path, dropped afterwards; skipped
with a reason when MODELBOT_TEST_POSTGRES_URL is unset), so every test that uses `db` runs on both.

`db` — a migrated `Database` on a fresh `db_url`, without an audit channel, disposed after the test.
`db_with_audit_channel` — the same database, opened with `audit_channel=AUDIT_CHANNEL`.
`make_request` — builds a valid `ChangeRequest` (id 0, PENDING) with keyword overrides.
To use them outside tests/integration/store, move this file's fixtures up to tests/integration/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.core.change_request import ChangeRequest
from bot.store import Database

AUDIT_CHANNEL = "C0AUDIT"
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated, empty database; the test runs once on SQLite and once on PostgreSQL."""
    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def db_with_audit_channel(db: Database, db_url: str) -> Iterator[Database]:
    """`db`, opened a second time with an audit channel (audit rows are queued in the outbox)."""
    database = Database(db_url, audit_channel=AUDIT_CHANNEL)
    yield database
    database.dispose()


@pytest.fixture
def make_request() -> Callable[..., ChangeRequest]:
    """Factory of PENDING rollback requests for fraud_detector (override any field by keyword)."""

    def build(**overrides: Any) -> ChangeRequest:
        fields: dict[str, Any] = {
            "id": 0,
            "action": "rollback",
            "model": "fraud_detector",
            "from_version": 3,
            "to_version": 2,
            "label": "stable",
            "reason": "INC-481 false positives",
            "requester": "U01ALICE",
            "created_at": T0,
            "expires_at": T0 + timedelta(minutes=30),
            "required_approvals": 1,
            "approver_roles": frozenset({"approver"}),
            "digest": "d" * 64,
            "model_generation": 4,
        }
        fields.update(overrides)
        return ChangeRequest(**fields)

    return build
