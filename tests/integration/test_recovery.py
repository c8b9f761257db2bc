"""Recovery of a rollout whose process died, on a real database (SQLite and PostgreSQL) with a fake fleet:
the fleet is read, one consistent state is restored or confirmed, and the request is closed truthfully."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.change_request import RequestState
from bot.core.rollout import ChangeSpec, plan_rollout
from tests.service_harness import ALICE, BOB, Harness, make_harness

ROLLBACK = 'rollback fraud_detector 2 --reason "INC-481 false positives"'
DEAD = "crashed-host:1:dead00"


@pytest.fixture
def h(tmp_path: Path, db_url: str) -> Harness:
    harness = make_harness(tmp_path, db_url)
    yield harness
    harness.bot.close()


def _crash_after(h: Harness, phases: tuple[str, ...]) -> int:
    """Leave R1 as a process that died after sending `phases` would: EXECUTING, an open operation, its lease
    held by a dead holder, and each phase's config persisted (before) and sent (after), as a rollout does."""
    deps = h.bot.service.deps
    h.say(ALICE, ROLLBACK)
    with h.bot.db.uow() as uow:
        req = uow.requests.get_for_update(1)
        executing = uow.requests.save(replace(req, state=RequestState.EXECUTING), req.version)
        base = uow.desired.load()
        before = base.model("fraud_detector")
        op_id = uow.operations.start(1, "fraud_detector", h.clock(), holder=DEAD, before=before)
        assert uow.fleet_lock.acquire(DEAD, h.clock(), timedelta(seconds=deps.lease_s))
        uow.commit()
    plan = plan_rollout(before, ChangeSpec("fraud_detector", 2, "stable"))
    for phase in phases:
        config = base.with_model(getattr(plan, phase))
        with h.bot.db.uow() as uow:
            uow.desired.save(config)
            uow.commit()
        h.fleet.apply(config)
    assert executing.state is RequestState.EXECUTING
    return op_id


def _desired_matches_fleet(h: Harness) -> bool:
    with h.bot.db.uow() as uow:
        desired = uow.desired.load()
    return desired.model("fraud_detector").served_config() == h.fleet.current.model("fraud_detector").served_config()


def _audit(h: Harness) -> list[tuple[str, str, str]]:
    with h.bot.db.uow() as uow:
        return [(e.actor, e.action, e.outcome) for e in uow.audit.iter_all()]


def test_a_live_lease_protects_the_rollout_and_a_lapsed_one_is_recovered(h: Harness) -> None:
    """While the dead holder's lease is live nothing is touched; once it lapses (seconds, not minutes) the
    loaded-only rollout is undone: the previous state is sent, saved, and R1 closed FAILED as recovered."""
    _crash_after(h, ("load",))
    sent_before = len(h.fleet.sent)
    h.bot.service.expire_due()
    assert h.bot.service.deps.lease_s <= 30
    with h.bot.db.uow() as uow:
        assert uow.requests.get(1).state is RequestState.EXECUTING
    assert len(h.fleet.sent) == sent_before
    h.clock.advance(seconds=h.bot.service.deps.lease_s + 1)
    h.bot.service.expire_due()
    with h.bot.db.uow() as uow:
        req = uow.requests.get(1)
        op = uow.operations.for_request(1)[0]
    assert req.state is RequestState.FAILED
    assert h.fleet.current.model("fraud_detector").label("stable") == 3
    assert h.fleet.current.model("fraud_detector").policy.versions == (3,)
    assert _desired_matches_fleet(h)
    assert ("modelbot", "execute", "recovered") in _audit(h)
    assert op["outcome"] == "FAILED" and DEAD in op["message"]
    assert all("not switched" in r["detail"] and "restored v3" in r["detail"] for r in op["replicas"])


def test_a_rollout_that_switched_every_replica_is_confirmed_succeeded(h: Harness) -> None:
    """Killed after the switch reached every replica: recovery confirms it (SUCCEEDED, recorded as recovered)."""
    _crash_after(h, ("load", "switch"))
    h.clock.advance(seconds=h.bot.service.deps.lease_s + 1)
    assert h.bot.service.expire_due() == 0
    with h.bot.db.uow() as uow:
        req = uow.requests.get(1)
        op = uow.operations.for_request(1)[0]
    assert req.state is RequestState.SUCCEEDED
    assert op["outcome"] == "SUCCEEDED" and all(r["ok"] for r in op["replicas"])
    assert h.fleet.current.model("fraud_detector").label("stable") == 2
    assert _desired_matches_fleet(h)


def test_after_recovery_the_next_rollback_works(h: Harness) -> None:
    """The model is not blocked after a recovery: a new rollback is requested, approved and executed."""
    _crash_after(h, ("load",))
    h.clock.advance(seconds=h.bot.service.deps.lease_s + 1)
    h.bot.service.expire_due()
    h.say(ALICE, ROLLBACK)
    done = h.say(BOB, "approve R2")
    assert done.ok and "SUCCEEDED" in done.text, done.text
    assert h.fleet.current.model("fraud_detector").label("stable") == 2


def test_the_recovery_never_touches_a_rollout_of_this_process(h: Harness) -> None:
    """A rollout running in this process is skipped by the sweep even when its lease looks lapsed."""
    op_id = _crash_after(h, ("load",))
    deps = h.bot.service.deps
    deps.running.add(op_id)
    h.clock.advance(seconds=deps.lease_s + 1)
    h.bot.service.expire_due()
    with h.bot.db.uow() as uow:
        assert uow.requests.get(1).state is RequestState.EXECUTING
    deps.running.discard(op_id)


def test_an_approval_recovers_a_dead_rollout_before_starting_its_own(h: Harness) -> None:
    """A rollout never starts over a dead process's unfinished operation: the claim recovers it first (here an
    operation whose request is unknown, so the state before it is restored), then executes."""
    deps = h.bot.service.deps
    with h.bot.db.uow() as uow:
        before = uow.desired.load().model("fraud_detector")
        orphan = uow.operations.start(None, "fraud_detector", h.clock(), holder=DEAD, before=before)
        assert uow.fleet_lock.acquire(DEAD, h.clock(), timedelta(seconds=deps.lease_s))
        uow.commit()
    h.clock.advance(seconds=deps.lease_s + 1)
    h.say(ALICE, ROLLBACK)
    done = h.say(BOB, "approve R1")
    assert done.ok and "SUCCEEDED" in done.text, done.text
    with h.bot.db.uow() as uow:
        recovered = uow.operations.get(orphan)
        mine = uow.operations.for_request(1)[0]
    assert recovered["outcome"] == "FAILED" and recovered["finished_at"] <= mine["started_at"]
    assert ("modelbot", "execute", "recovered") in _audit(h)
