"""Break-glass and withdrawal on a real database (SQLite and PostgreSQL) with a fake fleet: an emergency
rollback is never blocked by a pending request, and a requester can withdraw their own request."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from bot.core.change_request import RequestState
from bot.core.policy import parse_policy
from bot.store.tables import outbox
from tests.service_harness import ALICE, BOB, DAVE, REPO, Harness, make_harness

ROLLBACK = 'rollback fraud_detector 2 --reason "INC-481 false positives"'
EMERGENCY = 'rollback fraud_detector 1 --reason "INC-482 fraud spike" --emergency'
ERIN = "U09ERIN"  # holds only incident_commander in the test that adds her


@pytest.fixture
def h(tmp_path: Path, db_url: str) -> Harness:
    harness = make_harness(tmp_path, db_url, versions=(1, 2, 3))
    yield harness
    harness.bot.close()


def _request(h: Harness, request_id: int):  # type: ignore[no-untyped-def]
    with h.bot.db.uow() as uow:
        return uow.requests.get(request_id)


def test_an_emergency_supersedes_a_pending_request(h: Harness) -> None:
    """dave's emergency rollback while alice's request waits: R1 becomes VOID naming R2, R2 executes at once."""
    assert h.say(ALICE, ROLLBACK).ok
    done = h.say(DAVE, EMERGENCY)
    assert done.ok and "SUCCEEDED" in done.text, done.text
    r1, r2 = _request(h, 1), _request(h, 2)
    assert r1.state is RequestState.VOID and "emergency rollback R2 of U04DAVE" in r1.decision_reason
    assert r2.state is RequestState.SUCCEEDED and r2.emergency
    assert h.fleet.current.model("fraud_detector").label("stable") == 1
    with h.bot.db.uow() as uow:
        trail = [(e.action, e.outcome, e.request_id) for e in uow.audit.iter_all()]
    assert ("void", "superseded", 1) in trail
    assert not h.say(BOB, "approve R1").ok  # the superseded request can no longer be approved


def test_an_ordinary_request_does_not_supersede_and_says_how_to_end_the_open_one(h: Harness) -> None:
    """Without --emergency the open request stands, and the refusal names its requester and how to end it."""
    assert h.say(ALICE, ROLLBACK).ok
    refused = h.say(DAVE, 'rollback fraud_detector 1 --reason "me too"')
    assert not refused.ok
    assert "U01ALICE" in refused.text and "/model cancel R1" in refused.text and "--emergency" in refused.text
    assert _request(h, 1).state is RequestState.PENDING


def test_the_requester_can_withdraw_but_nobody_else_can_cancel(h: Harness) -> None:
    """`/model cancel R1`: bob (no rollback permission) and dave (may roll back, but did not ask) are refused;
    alice withdraws it; nothing was sent."""
    sent = len(h.fleet.sent)
    assert h.say(ALICE, ROLLBACK).ok
    assert not h.say(BOB, "cancel R1").ok
    not_theirs = h.say(DAVE, "cancel R1")
    assert not not_theirs.ok and "only U01ALICE" in not_theirs.text, not_theirs.text
    withdrawn = h.say(ALICE, "cancel R1")
    assert withdrawn.ok and "withdrawn" in withdrawn.text
    req = _request(h, 1)
    assert req.state is RequestState.REJECTED and req.withdrawn
    assert len(h.fleet.sent) == sent
    assert h.say(ALICE, ROLLBACK).ok  # the model is free for a new request


def test_an_emergency_opens_a_retro_review_that_an_approver_must_acknowledge(h: Harness) -> None:
    """The emergency is listed in `/model requests` until acknowledged; its requester cannot acknowledge it;
    after the (shortened) deadline a reminder is queued for the incident channel once; alice acknowledges it."""
    h.bot.service.deps.retro_review_within = timedelta(minutes=5)
    assert h.say(DAVE, EMERGENCY).ok
    listed = h.say(BOB, "requests").text
    assert "retro-review" in listed and "R1" in listed and "OVERDUE" not in listed
    assert not h.say(DAVE, "review R1").ok  # two-person rule: not the one who ran it
    h.clock.advance(minutes=6)
    h.bot.service.expire_due()
    h.bot.service.expire_due()  # a second sweep posts nothing new
    with h.bot.db.engine.connect() as conn:
        payloads = conn.execute(sa.select(outbox.c.payload).where(outbox.c.kind == "incident")).scalars().all()
    reminders = [p for p in payloads if "Retro-review overdue" in p]
    assert len(reminders) == 1 and "/model review R1" in reminders[0]
    assert "OVERDUE" in h.say(BOB, "requests").text
    done = h.say(ALICE, "review R1")
    assert done.ok and "acknowledged by U01ALICE" in done.text, done.text
    assert "retro-review" not in h.say(BOB, "requests").text
    assert not h.say(BOB, "review R1").ok  # once
    with h.bot.db.uow() as uow:
        assert ("review", "acknowledged") in [(e.action, e.outcome) for e in uow.audit.for_request(1)]


def test_an_incident_commander_needs_only_rollback_emergency(h: Harness) -> None:
    """DESIGN §2's `incident_commander: [rollback_emergency]` alone is enough for an emergency rollback (it needed
    `rollback` too); without --emergency the same member is denied `rollback`; an operator without
    `rollback_emergency` is denied the emergency, and both denials are audited with the permission lacking."""
    raw = yaml.safe_load((REPO / "permissions.yaml").read_text())
    raw["members"][ERIN] = ["incident_commander"]
    h.bot.service.deps.policy = parse_policy(raw)
    assert not h.say(ERIN, ROLLBACK).ok
    done = h.say(ERIN, EMERGENCY)
    assert done.ok and "SUCCEEDED" in done.text, done.text
    refused = h.say(ALICE, 'rollback fraud_detector 2 --reason "INC-483" --emergency')
    assert not refused.ok and "rollback_emergency" in refused.text, refused.text
    with h.bot.db.uow() as uow:
        denied = [(e.actor, e.action) for e in uow.audit.iter_all() if e.outcome == "denied"]
    assert denied == [(ERIN, "rollback"), (ALICE, "rollback_emergency")]
    assert h.fleet.current.model("fraud_detector").label("stable") == 1


def test_an_emergency_that_waited_out_a_busy_fleet_starts_by_itself(h: Harness) -> None:
    """Another process's rollout holds the fleet longer than the claim waits: dave's emergency is told it is approved
    and will start by itself (he cannot approve his own request to retry it); the sweep leaves it while the fleet is
    busy, runs it once the fleet is free, as dave, and only once."""
    deps = h.bot.service.deps
    deps.lock_wait_s = 0.2
    other = "other-host:7:live00"
    with h.bot.db.uow() as uow:
        assert uow.fleet_lock.acquire(other, h.clock(), timedelta(seconds=deps.lease_s))
        uow.commit()
    waiting = h.say(DAVE, EMERGENCY)
    assert waiting.ok and "waits for the fleet" in waiting.text and "starts by itself" in waiting.text, waiting.text
    assert _request(h, 1).state is RequestState.APPROVED
    h.clock.advance(seconds=1)
    assert h.bot.service.resume_emergencies() == 0  # the other rollout still holds the fleet
    with h.bot.db.uow() as uow:
        uow.fleet_lock.release(other)
        uow.commit()
    assert h.bot.service.resume_emergencies() == 1
    assert _request(h, 1).state is RequestState.SUCCEEDED
    assert h.fleet.current.model("fraud_detector").label("stable") == 1
    assert h.bot.service.resume_emergencies() == 0
    with h.bot.db.uow() as uow:
        executed = [e.actor for e in uow.audit.iter_all() if e.action == "execute" and e.outcome == "succeeded"]
    assert executed == [DAVE]
