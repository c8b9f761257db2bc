"""The alerts table (migration 0006) and its repository, on SQLite and PostgreSQL: a firing recorded once, resolved
once, the auto-rollback decision a compare-and-set, and the facts an automatic rollback is judged on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from bot.core.alerts import FIRING, NEW, REPEAT, RESOLVED, RESOLVED_NOW, AlertNotice, AutoState
from bot.core.auto_rollback import StableChange
from bot.core.change_request import RequestState
from bot.core.fleet import Outcome, RolloutResult
from bot.store import Database
from bot.store.database import MIGRATIONS
from tests.integration.store.conftest import T0


def notice(status: str = FIRING, fingerprint: str = "fp1", starts: str = "2025-03-01T11:58:00Z") -> AlertNotice:
    return AlertNotice(
        source="alertmanager",
        fingerprint=fingerprint,
        starts_key=starts,
        status=status,
        model="fraud_detector",
        alertname="FraudScoreDrift",
        summary="PSI 0.31",
        link="https://prometheus.example/g",
        firing_since=T0 - timedelta(minutes=2),
    )


@pytest.fixture
def db_at_0005(db_url: str) -> Iterator[Database]:
    """A database at revision 0005 (before the alerts table), holding a freeze row."""
    database = Database(db_url)
    database.upgrade("0005")
    with database.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO freezes (model, reason, actor, created_at) VALUES ('m', 'r', 'U1', :at)"), {"at": T0}
        )
    yield database
    database.dispose()


def test_upgrade_from_0005_adds_alerts_and_keeps_rows(db_at_0005: Database) -> None:
    """0005 -> 0006 creates the alerts table with its unique firing key; earlier rows stay; its downgrade drops it."""
    db_at_0005.upgrade()
    with db_at_0005.engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert "alerts" in inspector.get_table_names()
        uniques = {u["name"]: u["column_names"] for u in inspector.get_unique_constraints("alerts")}
        assert uniques["uq_alerts_firing"] == ["source", "fingerprint", "starts_key"]
        assert conn.execute(sa.text("SELECT count(*) FROM freezes")).scalar_one() == 1
    with db_at_0005.uow() as uow:
        assert uow.alerts.record(notice(), T0, None)[1] == NEW
        uow.commit()
    _downgrade(db_at_0005, "0005")
    with db_at_0005.engine.connect() as conn:
        assert "alerts" not in sa.inspect(conn).get_table_names()
        assert conn.execute(sa.text("SELECT count(*) FROM freezes")).scalar_one() == 1


def _downgrade(db: Database, revision: str) -> None:
    """Alembic downgrade on the database's own connection (as Database.upgrade runs its upgrades)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_a_firing_is_recorded_once_and_resolved_once(db: Database) -> None:
    """Repeats only count; the resolution is reported once; a later resolution is a repeat; a new start is new."""
    with db.uow() as uow:
        first, what = uow.alerts.record(notice(), T0, AutoState.PENDING)
        assert what == NEW and first.auto_state is AutoState.PENDING and first.firing_since == T0 - timedelta(minutes=2)
        assert uow.alerts.record(notice(), T0 + timedelta(minutes=1), AutoState.PENDING)[1] == REPEAT
        resolved, what = uow.alerts.record(notice(RESOLVED), T0 + timedelta(minutes=3), None)
        assert what == RESOLVED_NOW and resolved.status == RESOLVED and resolved.notifications == 3
        assert resolved.auto_state is AutoState.SKIPPED  # resolved before anyone decided
        assert uow.alerts.record(notice(RESOLVED), T0 + timedelta(minutes=4), None)[1] == REPEAT
        again, what = uow.alerts.record(notice(starts="2025-03-01T13:00:00Z"), T0 + timedelta(hours=1), None)
        assert what == NEW and again.id != first.id
        uow.alerts.set_post(first.id, "C0INC", "1.000001")
        uow.commit()
    with db.uow(readonly=True) as uow:
        assert uow.alerts.get(first.id).post == ("C0INC", "1.000001")  # type: ignore[union-attr]


def test_auto_decision_is_a_compare_and_set(db: Database) -> None:
    """Only the first decider moves PENDING on; acted decisions count towards the hourly budget."""
    with db.uow() as uow:
        alert, _ = uow.alerts.record(notice(), T0, AutoState.PENDING)
        assert [a.id for a in uow.alerts.pending_auto()] == [alert.id]
        assert uow.alerts.decide_auto(alert.id, AutoState.ACTED, T0, request_id=7)
        assert not uow.alerts.decide_auto(alert.id, AutoState.HELD, T0, reason="late")
        assert uow.alerts.pending_auto() == []
        assert uow.alerts.acted_since("fraud_detector", T0 - timedelta(hours=1)) == 1
        assert uow.alerts.acted_since("fraud_detector", T0 + timedelta(seconds=1)) == 0
        uow.commit()
    with db.uow(readonly=True) as uow:
        stored = uow.alerts.get(alert.id)
        assert stored is not None and (stored.auto_state, stored.auto_request_id) == (AutoState.ACTED, 7)


def test_stable_timeline_and_last_change_come_from_the_records(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """Adopted v3 at bootstrap, then a finished rollback to v2: the timeline and the last change time say so."""
    with db.uow() as uow:
        uow.audit.append(
            at=T0, actor="modelbot", action="bootstrap", outcome="adopted", request_id=None, model=None, detail={}
        )
        req = uow.requests.add(make_request(state=RequestState.EXECUTING, from_version=3, to_version=2))
        op = uow.operations.start(req.id, req.model, T0 + timedelta(hours=1))
        uow.operations.finish(op, RolloutResult(Outcome.SUCCEEDED, (), ""), T0 + timedelta(hours=1, seconds=5))
        uow.commit()
    with db.uow(readonly=True) as uow:
        assert uow.alerts.stable_timeline("fraud_detector", "stable") == [
            StableChange(T0, 3),
            StableChange(T0 + timedelta(hours=1, seconds=5), 2, by_rollback=True),
        ]
        assert uow.alerts.last_change_at("fraud_detector") == T0 + timedelta(hours=1, seconds=5)
        assert uow.alerts.last_change_at("other") is None
