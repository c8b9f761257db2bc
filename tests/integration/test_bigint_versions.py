"""Versions and request ids beyond 32 bits through the whole service, on SQLite and PostgreSQL (issue 7 item 5):
timestamp-named versions such as 20240101120000 are common, and TF Serving versions are int64."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.core import commands
from bot.core.change_request import RequestState
from bot.core.policy import Identity
from bot.store import audit_export
from bot.texts import replies
from bot.usecases.context import Context
from bot.wiring import build_bot
from tests.fakes import FakeCatalog, FakeFleet
from tests.service_harness import ALICE, BOB, Clock, Harness, demo_policy, demo_settings, initial_config

VERSION = 20240101120000  # > 2^31-1
BIG_ID = 999_999_999_999


@pytest.fixture
def h(tmp_path: Path, db_url: str) -> Iterator[Harness]:
    """The service with a fake fleet serving fraud_detector v3 and a catalog that also lists v20240101120000."""
    settings = demo_settings(tmp_path)
    fleet = FakeFleet()
    fleet.sent.append(initial_config(settings.models["fraud_detector"].base_path, (3,)))
    clock = Clock()
    catalog = FakeCatalog(default=(1, 2, 3, VERSION))
    bot = build_bot(settings, demo_policy(), db_url, fleet=fleet, catalog=catalog, clock=clock)
    harness = Harness(bot, fleet, clock)
    yield harness
    harness.bot.close()


def test_promote_to_a_timestamp_named_version_end_to_end(h: Harness) -> None:
    """alice promotes v20240101120000, bob approves, the fleet serves it, and request, operation and audit carry it."""
    asked = h.say(ALICE, f'promote fraud_detector {VERSION} --reason "nightly retrain"')
    assert asked.ok and asked.request_id == 1, asked.text
    assert f"v3 -> v{VERSION}" in asked.text
    done = h.say(BOB, "approve R1")
    assert done.ok and "SUCCEEDED" in done.text, done.text
    assert h.fleet.current.model("fraud_detector").label("stable") == VERSION  # type: ignore[union-attr]
    with h.bot.db.uow(readonly=True) as uow:
        req = uow.requests.get(1)
        assert req is not None and (req.state, req.to_version) == (RequestState.SUCCEEDED, VERSION)
        (operation,) = uow.operations.for_request(1)
        assert {r["served_version"] for r in operation["replicas"]} == {VERSION}
        rows = [(e.action, e.outcome, e.detail.get("to_version")) for e in uow.audit.for_request(1)]
    assert ("promote", "requested", VERSION) in rows
    assert ("execute", "succeeded", VERSION) in rows
    assert audit_export.verify(h.bot.db).ok
    history = h.say(ALICE, "history fraud_detector")
    assert f"v3->v{VERSION}: succeeded" in history.text, history.text
    status = h.say(ALICE, "status fraud_detector")
    assert f"`stable` -> v{VERSION}" in status.text, status.text


def test_request_ids_beyond_32_bits_are_approved_and_executed(h: Harness) -> None:
    """Once request ids pass 2^31 (here R999999999999), requesting, approving and executing still work."""
    with h.bot.db.engine.begin() as conn:
        if h.bot.db.dialect == "postgresql":
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('requests', 'id'), :v)"), {"v": BIG_ID - 1})
        else:  # AUTOINCREMENT: the next id follows sqlite_sequence (which has no row before the first insert)
            conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'requests'"))
            conn.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('requests', :v)"), {"v": BIG_ID - 1})
    asked = h.say(ALICE, 'rollback fraud_detector 2 --reason "INC-481"')
    assert asked.ok and asked.request_id == BIG_ID, asked.text
    done = h.say(BOB, f"approve R{BIG_ID}")
    assert done.ok and "SUCCEEDED" in done.text, done.text
    with h.bot.db.uow(readonly=True) as uow:
        assert [e.outcome for e in uow.audit.for_request(BIG_ID)][-1] == "succeeded"


@pytest.mark.parametrize("request_id", [999_999_999_999_999_999, 2**63 - 1])
def test_unknown_large_request_id_is_not_found_not_a_database_error(h: Harness, request_id: int) -> None:
    """An approval of a large id nobody has (as a card button sends it) says the request does not exist."""
    reply = h.bot.service.handle(Context(Identity(BOB), channel="C0OPS"), commands.Approve(request_id))
    assert not reply.ok
    assert f"R{request_id} does not exist" in reply.text
    assert replies.STORE_DOWN not in reply.text


def test_request_number_beyond_int64_is_a_usage_error(h: Harness) -> None:
    """A typed request number no request can have is refused by the parser, before the store sees it."""
    reply = h.say(BOB, "approve R99999999999999999999999")
    assert not reply.ok
    assert "is too large" in reply.text and "/model approve REQUEST_ID" in reply.text
