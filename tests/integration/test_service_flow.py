"""The service end to end on a real database (SQLite and PostgreSQL) with a fake fleet."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.change_request import RequestState
from bot.serving.config_proto import write_model_config_file
from bot.store import audit_export
from tests.devstack_support import wait_until
from tests.fakes import FlakyDatabase
from tests.service_harness import ALICE, BOB, CAROL, DAVE, Harness, demo_settings, initial_config, make_harness

ROLLBACK = 'rollback fraud_detector 2 --reason "INC-481 false positives"'


@pytest.fixture
def h(tmp_path: Path, db_url: str) -> Harness:
    harness = make_harness(tmp_path, db_url)
    yield harness
    harness.bot.close()


def _request(h: Harness, request_id: int):  # type: ignore[no-untyped-def]
    with h.bot.db.uow() as uow:
        return uow.requests.get(request_id)


def _audit(h: Harness) -> list[tuple[str, str, str]]:
    with h.bot.db.uow() as uow:
        return [(e.actor, e.action, e.outcome) for e in uow.audit.iter_all()]


def test_rollback_needs_a_second_person(h: Harness) -> None:
    """alice requests, her own approval is refused, bob's approval executes and the fleet serves v2 as stable."""
    reply = h.say(ALICE, ROLLBACK)
    assert reply.ok and reply.request_id == 1, reply.text
    assert h.fleet.rollouts == 0
    own = h.say(ALICE, "approve R1")
    assert not own.ok and "two-person" in own.text.lower()
    assert _request(h, 1).state is RequestState.PENDING
    done = h.say(BOB, "approve R1")
    assert done.ok and "SUCCEEDED" in done.text, done.text
    assert h.fleet.rollouts == 1
    assert h.fleet.current.model("fraud_detector").label("stable") == 2
    assert _request(h, 1).state is RequestState.SUCCEEDED
    assert audit_export.verify(h.bot.db).ok


def test_every_decision_is_audited(h: Harness) -> None:
    """Request, refused self-approval, denial of a user with no role and the execution all leave audit rows."""
    h.say(ALICE, ROLLBACK)
    h.say(ALICE, "approve R1")
    h.say(CAROL, "approve R1")
    h.say(BOB, "approve R1")
    rows = _audit(h)
    assert (ALICE, "rollback", "requested") in rows
    assert (ALICE, "approve", "refused") in rows
    assert (CAROL, "approve", "denied") in rows
    assert (BOB, "approve", "approved") in rows
    assert (BOB, "execute", "succeeded") in rows


def test_user_without_role_is_denied_with_rule_and_who_can(h: Harness) -> None:
    """carol holds no role: the denial names the rule and who can approve."""
    h.say(ALICE, ROLLBACK)
    reply = h.say(CAROL, "approve R1")
    assert not reply.ok
    assert "deny" in reply.text.lower()
    assert BOB in reply.text or "approver" in reply.text
    assert h.fleet.rollouts == 0


def test_dry_run_changes_nothing(h: Harness) -> None:
    """--dry-run shows the per-replica plan and creates no request and sends no config."""
    reply = h.say(ALICE, "rollback fraud_detector 2 --dry-run")
    assert reply.ok and "r1" in reply.text and "v2" in reply.text, reply.text
    assert reply.request_id is None
    assert len(h.fleet.sent) == 1
    assert "No open requests" in h.say(ALICE, "requests").text


def test_version_missing_on_disk_is_refused(h: Harness) -> None:
    """A version that is not on disk is refused before any request or reload."""
    reply = h.say(ALICE, 'rollback fraud_detector 9 --reason "x"')
    assert not reply.ok and "not on disk" in reply.text
    assert "No open requests" in h.say(ALICE, "requests").text


def test_refused_changes_are_audited_with_the_reason(h: Harness) -> None:
    """DESIGN §5, every decision is an audit row: a version not on disk, a second request while one is open and a
    frozen model are each refused with a row naming who, the permission and why; a refused dry run writes none."""
    assert not h.say(ALICE, 'rollback fraud_detector 9 --reason "x" --dry-run').ok
    assert not h.say(ALICE, 'rollback fraud_detector 9 --reason "x"').ok
    assert h.say(ALICE, ROLLBACK).ok
    assert not h.say(ALICE, ROLLBACK).ok
    assert h.say(DAVE, 'freeze fraud_detector --reason "INC-9 investigating"').ok
    assert h.say(BOB, 'reject R1 --reason "not now"').ok
    assert not h.say(ALICE, ROLLBACK).ok
    with h.bot.db.uow() as uow:
        rows = [e for e in uow.audit.iter_all() if e.outcome == "refused"]
    refused = [(e.actor, e.action, str(e.detail.get("why"))) for e in rows]
    assert [(actor, action) for actor, action, _ in refused] == [(ALICE, "rollback")] * 3
    assert "not on disk" in refused[0][2]
    assert "R1" in refused[1][2] and "open" in refused[1][2]
    assert "frozen" in refused[2][2] and "INC-9 investigating" in refused[2][2]


def test_incompatible_signature_is_refused(h: Harness) -> None:
    """Version 4's serving_default input shape differs from v3's: the promote is refused up front."""
    reply = h.say(ALICE, 'promote fraud_detector 4 --reason "new features"')
    assert not reply.ok and "signature" in reply.text.lower(), reply.text


def test_one_open_request_per_model(h: Harness) -> None:
    """A second request for the same model is refused and points at the open one."""
    assert h.say(ALICE, ROLLBACK).ok
    second = h.say(ALICE, 'rollback fraud_detector 1 --reason "other"')
    assert not second.ok and "R1" in second.text


def test_expired_request_never_executes(h: Harness) -> None:
    """After the approval TTL the request is EXPIRED and bob's approval does nothing."""
    h.say(ALICE, ROLLBACK)
    h.clock.advance(minutes=31)
    reply = h.say(BOB, "approve R1")
    assert not reply.ok and "expired" in reply.text.lower()
    assert _request(h, 1).state is RequestState.EXPIRED
    assert h.fleet.rollouts == 0


def test_request_is_void_when_desired_state_moved(h: Harness) -> None:
    """If the model's desired state changes after the request, the approval voids it instead of executing."""
    h.say(ALICE, ROLLBACK)
    with h.bot.db.uow() as uow:
        config = uow.desired.load()
        state = config.model("fraud_detector")
        uow.desired.save(config.with_model(replace(state, generation=state.generation + 1)))
        uow.commit()
    reply = h.say(BOB, "approve R1")
    assert not reply.ok and "void" in reply.text.lower()
    assert _request(h, 1).state is RequestState.VOID
    assert h.fleet.rollouts == 0


def test_emergency_rollback_by_incident_commander(h: Harness) -> None:
    """dave (incident_commander) can roll back with --emergency without a second person; alice cannot."""
    denied = h.say(ALICE, 'rollback fraud_detector 2 --emergency --reason "fire"')
    assert not denied.ok and h.fleet.rollouts == 0
    reply = h.say(DAVE, 'rollback fraud_detector 2 --emergency --reason "fire"')
    assert reply.ok and "SUCCEEDED" in reply.text, reply.text
    assert h.fleet.current.model("fraud_detector").label("stable") == 2


def test_reject_ends_the_request(h: Harness) -> None:
    """bob rejects with a reason: the request is REJECTED and can no longer be approved."""
    h.say(ALICE, ROLLBACK)
    assert h.say(BOB, 'reject R1 --reason "not the cause"').ok
    assert _request(h, 1).state is RequestState.REJECTED
    again = h.say(BOB, "approve R1")
    assert not again.ok and h.fleet.rollouts == 0


def test_replica_down_gives_partial(h: Harness) -> None:
    """With one replica unreachable the rollout ends PARTIAL naming it, and the incident channel is told."""
    h.fleet.down.add("r2")
    h.say(ALICE, ROLLBACK)
    reply = h.say(BOB, "approve R1")
    assert "PARTIAL" in reply.text and "r2" in reply.text
    with h.bot.db.uow() as uow:
        kinds = [m.kind for m in uow.outbox.pending(limit=500)]
    assert "incident" in kinds


def test_history_and_whoami(h: Harness) -> None:
    """history lists the rollback; whoami shows alice's roles; help hides verbs bob may not use."""
    h.say(ALICE, ROLLBACK)
    h.say(BOB, "approve R1")
    assert "execute" in h.say(ALICE, "history fraud_detector").text
    assert "operator" in h.say(ALICE, "whoami").text
    helptext = h.say(BOB, "help").text
    assert "/model approve" in helptext and "/model rollback" not in helptext


def test_approved_request_waiting_for_the_fleet_can_be_retried(h: Harness) -> None:
    """If another rollout holds the fleet lock, the approval is kept and a later approve executes it."""
    h.bot.service.deps.lock_wait_s = 0.0
    with h.bot.db.uow() as uow:
        assert uow.fleet_lock.acquire("someone-else", h.clock(), timedelta(minutes=5))
        uow.commit()
    h.say(ALICE, ROLLBACK)
    busy = h.say(BOB, "approve R1")
    assert not busy.ok and "Another rollout" in busy.text
    assert _request(h, 1).state is RequestState.APPROVED and h.fleet.rollouts == 0
    h.clock.advance(minutes=6)  # the other holder's lease lapses
    assert not h.say(ALICE, "approve R1").ok  # the requester still cannot push her own change through
    done = h.say(BOB, "approve R1")
    assert done.ok and "SUCCEEDED" in done.text, done.text
    assert h.fleet.rollouts == 1


def test_bootstrap_adopts_what_is_served_and_sends_nothing(h: Harness) -> None:
    """On first start the bot adopts the fleet's state (stable=3, v3 loaded) into the database without a reload."""
    assert len(h.fleet.sent) == 1  # only the harness's own initial config: the bot sent nothing
    with h.bot.db.uow(readonly=True) as uow:
        state = uow.desired.get("fraud_detector")
    assert state is not None and state.label("stable") == 3 and state.policy.versions == (3,)
    assert ("modelbot", "bootstrap", "adopted") in _audit(h)


def test_bootstrap_prefers_the_model_config_file(tmp_path: Path, db_url: str) -> None:
    """With serving.model_config_file present, its content (what the fleet was started with) is adopted."""
    settings = demo_settings(tmp_path)
    base = settings.models["fraud_detector"].base_path
    write_model_config_file(settings.serving.model_config_file, initial_config(base, versions=(1, 2), stable=1))
    h = make_harness(tmp_path, db_url)
    try:
        with h.bot.db.uow(readonly=True) as uow:
            state = uow.desired.get("fraud_detector")
        assert state.label("stable") == 1 and state.policy.versions == (1, 2)
        assert len(h.fleet.sent) == 1
    finally:
        h.bot.close()


def test_short_database_outage_after_the_rollout_is_ridden_out(h: Harness) -> None:
    """If the database blips while replicas switch, the outcome is still recorded once it is back."""
    flaky = FlakyDatabase(h.bot.db, heal_after=2)
    h.bot.service.deps.db = flaky
    h.bot.service.deps.finish_retry_delays_s = (0.0, 0.0, 0.0)
    h.fleet.after_rollout = lambda: setattr(flaky, "down", True)
    h.say(ALICE, ROLLBACK)
    reply = h.say(BOB, "approve R1")
    assert reply.ok and "SUCCEEDED" in reply.text, reply.text
    assert _request(h, 1).state is RequestState.SUCCEEDED


def test_long_database_outage_after_the_rollout_is_reported_truthfully(h: Harness) -> None:
    """If the outcome cannot be recorded, the reply says what the fleet serves, never 'nothing was changed';
    the lease is kept, no sweep second-guesses it, and the outcome is recorded (late, once) when it is back."""
    deps = h.bot.service.deps
    flaky = FlakyDatabase(h.bot.db)
    deps.db = flaky
    deps.finish_retry_delays_s = (0.0,)
    deps.late_record_delays_s = (0.5,)
    h.fleet.after_rollout = lambda: setattr(flaky, "down", True)
    h.say(ALICE, ROLLBACK)
    reply = h.say(BOB, "approve R1")
    assert not reply.ok
    assert "SUCCEEDED" in reply.text and "not recorded" in reply.text
    assert "nothing was changed" not in reply.text.lower()
    h.clock.advance(seconds=deps.lease_s + 1)  # its lease looks lapsed, but this process still runs it
    flaky.down = False
    assert h.bot.service.recover() == []  # the lapsed-looking lease belongs to a rollout this process runs
    done = wait_until(lambda: _request(h, 1).state is RequestState.SUCCEEDED or None, 10, "the late record")
    assert done
    with h.bot.db.uow() as uow:
        rows = [e for e in uow.audit.for_request(1) if e.action == "execute" and e.outcome != "executing"]
        assert uow.fleet_lock.holder(h.clock()) is None  # released with the record
    assert [e.outcome for e in rows] == ["succeeded"] and "recorded late" in rows[0].detail["recorded_late"]
    assert h.fleet.rollouts == 1


def test_database_outage_before_the_first_reload_changes_nothing(h: Harness) -> None:
    """Configs are persisted before they are sent, so with the database gone no replica is touched."""
    flaky = FlakyDatabase(h.bot.db)
    h.bot.service.deps.db = flaky
    h.bot.service.deps.finish_retry_delays_s = ()
    h.bot.service.deps.late_record_delays_s = (0.2,)
    h.fleet.on_rollout = lambda: setattr(flaky, "down", True)
    h.say(ALICE, ROLLBACK)
    reply = h.say(BOB, "approve R1")
    assert not reply.ok and "not switched" in reply.text
    assert len(h.fleet.sent) == 1  # still only the initial config
    flaky.down = False  # back: the outcome is recorded late and the lease released (no retry thread outlives this)
    assert wait_until(lambda: _request(h, 1).state.is_final or None, 10, "the late record")
    with h.bot.db.uow() as uow:
        assert uow.fleet_lock.holder(h.clock()) is None
    assert len(h.fleet.sent) == 1
