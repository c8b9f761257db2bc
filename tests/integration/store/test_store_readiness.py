"""Readiness checks the schema, not just the connection: an empty or half-migrated database is not ready."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.core.errors import StoreUnavailable
from bot.frontends.server import Server
from bot.frontends.slack.app import SlackEnv
from bot.store import Database
from bot.store.database import head_revision
from bot.store.tables import metadata
from tests.service_harness import Harness, make_harness

UPGRADE_HINT = "run `modelbot db upgrade`"


@pytest.fixture
def empty_db(db_url: str) -> Iterator[Database]:
    """A reachable database without any table (as after DROP DATABASE and CREATE DATABASE)."""
    database = Database(db_url)
    yield database
    database.dispose()


def test_schema_at_head_is_ready(db: Database) -> None:
    """A database migrated to the newest revision passes the check."""
    db.check_schema()


def test_empty_database_is_not_ready(empty_db: Database) -> None:
    """A database that answers but has no tables fails with 'no modelbot schema' and the command that fixes it."""
    empty_db.ping()  # reachable: ping alone would have said ready
    with pytest.raises(StoreUnavailable) as caught:
        empty_db.check_schema()
    assert "has no modelbot schema" in str(caught.value)
    assert UPGRADE_HINT in str(caught.value)


def test_database_at_an_older_revision_is_not_ready(empty_db: Database) -> None:
    """A database left at revision 0001 names the revision found, the one expected, and the upgrade command."""
    empty_db.upgrade("0001")
    with pytest.raises(StoreUnavailable) as caught:
        empty_db.check_schema()
    assert str(caught.value) == (
        f"The database schema is not at the current revision (found 0001, expected {head_revision()}): {UPGRADE_HINT}."
    )
    empty_db.upgrade()
    empty_db.check_schema()


def test_database_migrated_by_a_newer_modelbot_is_not_ready(db: Database) -> None:
    """A revision this code does not know means a newer modelbot migrated the database; the message says so."""
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(StoreUnavailable, match=r"newer than this modelbot \(found f00d, expected "):
        db.check_schema()


def test_unreachable_database_is_not_ready(tmp_path: Path) -> None:
    """A database that cannot be opened fails the check as unavailable, not as a missing schema."""
    db = Database(f"sqlite:///{tmp_path / 'no-such-dir' / 'modelbot.db'}")
    with pytest.raises(StoreUnavailable, match="cannot open the database file"):
        db.check_schema()
    db.dispose()


@pytest.fixture
def harness(tmp_path: Path, db_url: str) -> Iterator[Harness]:
    """The service on a migrated database with a fake fleet."""
    h = make_harness(tmp_path, db_url)
    yield h
    h.bot.close()


def test_readyz_turns_503_when_the_schema_disappears(harness: Harness) -> None:
    """GET /readyz is 200 at head, and 503 naming the missing schema once every table is dropped."""
    env = SlackEnv(bot_token="xoxb-test", signing_secret="s", app_token="", api_url="http://127.0.0.1:9/api/")
    server = Server(harness.bot, env, alert_token="t", token_verification_enabled=False)
    app = server.router()
    assert _get(app, "/readyz") == ("200 OK", "ready\n")
    with harness.bot.db.engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE alembic_version"))
    status, body = _get(app, "/readyz")
    assert status == "503 Service Unavailable"
    assert body.startswith("database: The database (") and "has no modelbot schema" in body


def _get(app: Any, path: str) -> tuple[str, str]:
    """One in-process WSGI GET: (status line, body)."""
    started: list[str] = []
    chunks = app({"REQUEST_METHOD": "GET", "PATH_INFO": path}, lambda status, _headers: started.append(status))
    return started[0], b"".join(chunks).decode()
