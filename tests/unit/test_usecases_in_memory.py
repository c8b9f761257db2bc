"""The real Service over the in-memory store (tests/memory_store.py) and the FakeFleet: the use cases' fast tier.

The same flows run on SQLite and PostgreSQL in tests/integration (test_service_flow.py, test_break_glass.py,
test_freezes.py); here they run in-process, without a database, in milliseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.audit import verify_chain
from bot.core.change_request import ChangeRequest, RequestState
from bot.core.errors import Conflict
from bot.core.policy import Identity
from bot.service import Service
from bot.serving.config_proto import read_model_config_file
from bot.usecases.context import Context, Deps, Reply
from tests.fakes import FakeCatalog, FakeFleet
from tests.memory_store import MemoryStore
from tests.service_harness import ALICE, BOB, CAROL, DAVE, Clock, demo_policy, demo_settings, initial_config

MODEL = "fraud_detector"
ROLLBACK = 'rollback fraud_detector 2 --reason "INC-481 false positives"'
EMERGENCY = 'rollback fraud_detector 1 --reason "INC-482 fraud spike" --emergency'
AUDIT_CHANNEL = "C0AUDIT"


@dataclass
class Bot:
    """A Service over a MemoryStore and a FakeFleet, with a hand-moved clock."""

    service: Service
    db: MemoryStore
    fleet: FakeFleet
    clock: Clock

    def say(self, user: str, text: str) -> Reply:
        return self.service.handle_text(Context(Identity(user, frozenset()), channel="C0OPS"), text)

    def request(self, request_id: int) -> ChangeRequest:
        with self.db.uow(readonly=True) as uow:
            found = uow.requests.get(request_id)
        assert found is not None
        return found

    def trail(self, request_id: int | None = None) -> list[tuple[str, str, str]]:
        with self.db.uow(readonly=True) as uow:
            rows = list(uow.audit.iter_all()) if request_id is None else uow.audit.for_request(request_id)
        return [(e.actor, e.action, e.outcome) for e in rows]


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    settings = demo_settings(tmp_path)
    fleet = FakeFleet()
    fleet.sent.append(initial_config(settings.models[MODEL].base_path, (1, 2, 3)))
    clock = Clock()
    db = MemoryStore(audit_channel=settings.slack.audit_channel)
    deps = Deps(
        settings=settings,
        policy=demo_policy(),
        db=db,
        fleet=fleet,
        catalog=FakeCatalog(),
        clock=clock,
        holder="test-host:1:abcdef",
        read_model_config=read_model_config_file,
        finish_retry_delays_s=(),
        late_record_delays_s=(),
    )
    service = Service(deps)
    service.start()
    yield Bot(service, db, fleet, clock)


def test_rollback_needs_a_second_person_then_executes_with_a_verified_trail(bot: Bot) -> None:
    """alice's rollback is refused her own approval, bob's approval runs it to SUCCEEDED on the fleet, and the audit
    rows are chained, verify, and were queued to the audit channel one for one."""
    requested = bot.say(ALICE, ROLLBACK)
    assert requested.ok and requested.request_id == 1, requested.text
    own = bot.say(ALICE, "approve R1")
    assert not own.ok and "two-person" in own.text.lower()
    assert bot.request(1).state is RequestState.PENDING and bot.fleet.rollouts == 0
    done = bot.say(BOB, "approve R1")
    assert done.ok and "SUCCEEDED" in done.text, done.text
    assert bot.fleet.rollouts == 1
    served = bot.fleet.current.model(MODEL)
    assert served is not None and served.label("stable") == 2
    assert bot.request(1).state is RequestState.SUCCEEDED
    trail = bot.trail(1)
    assert (ALICE, "rollback", "requested") in trail and (ALICE, "approve", "refused") in trail
    assert (BOB, "approve", "approved") in trail and (BOB, "execute", "succeeded") in trail
    with bot.db.uow(readonly=True) as uow:
        entries = list(uow.audit.iter_all())
        assert uow.audit.verify().ok and verify_chain(entries, head=uow.audit.head()).ok
        assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
        audit_keys = [m.key for m in uow.outbox.pending(AUDIT_CHANNEL, limit=1000)]
        assert audit_keys == [f"audit:{e.seq}" for e in entries]
        (operation,) = uow.operations.for_request(1)
        assert operation["outcome"] == "SUCCEEDED" and len(operation["replicas"]) == 3
        assert uow.fleet_lock.holder(bot.clock()) is None and not uow.operations.any_unfinished()
        desired = uow.desired.get(MODEL)
        assert desired is not None and desired.label("stable") == 2


def test_a_user_without_the_role_is_denied_and_audited(bot: Bot) -> None:
    """carol holds no approver role: her approval is denied, audited, and nothing runs."""
    bot.say(ALICE, ROLLBACK)
    denied = bot.say(CAROL, "approve R1")
    assert not denied.ok and "deny" in denied.text.lower()
    assert (CAROL, "approve", "denied") in bot.trail()
    assert bot.fleet.rollouts == 0 and bot.request(1).state is RequestState.PENDING


def test_reject_ends_the_request(bot: Bot) -> None:
    """bob rejects R1: it is REJECTED, a later approval does nothing, and the model is free again."""
    bot.say(ALICE, ROLLBACK)
    assert bot.say(BOB, 'reject R1 --reason "not the cause"').ok
    assert bot.request(1).state is RequestState.REJECTED
    assert not bot.say(BOB, "approve R1").ok
    assert bot.fleet.rollouts == 0
    assert bot.say(ALICE, ROLLBACK).ok


def test_only_the_requester_can_cancel(bot: Bot) -> None:
    """dave cannot cancel alice's request; alice withdraws it, nothing is sent, and the model is free again."""
    bot.say(ALICE, ROLLBACK)
    sent = len(bot.fleet.sent)
    not_theirs = bot.say(DAVE, "cancel R1")
    assert not not_theirs.ok and "only U01ALICE" in not_theirs.text, not_theirs.text
    withdrawn = bot.say(ALICE, "cancel R1")
    assert withdrawn.ok and "withdrawn" in withdrawn.text, withdrawn.text
    req = bot.request(1)
    assert req.state is RequestState.REJECTED and req.withdrawn
    assert len(bot.fleet.sent) == sent
    assert bot.say(ALICE, ROLLBACK).ok


def test_one_open_request_per_model(bot: Bot) -> None:
    """A second ordinary request for the model is refused and names the open one and how to end it."""
    assert bot.say(ALICE, ROLLBACK).ok
    second = bot.say(DAVE, 'rollback fraud_detector 1 --reason "me too"')
    assert not second.ok and "R1" in second.text and "/model cancel R1" in second.text, second.text
    assert bot.request(1).state is RequestState.PENDING


def test_an_emergency_supersedes_a_pending_request_and_opens_a_retro_review(bot: Bot) -> None:
    """dave's emergency voids alice's pending R1, runs at once, and its retro-review is acknowledged by alice
    (not by dave, and only once) with `/model review`."""
    assert bot.say(ALICE, ROLLBACK).ok
    done = bot.say(DAVE, EMERGENCY)
    assert done.ok and "SUCCEEDED" in done.text, done.text
    r1, r2 = bot.request(1), bot.request(2)
    assert r1.state is RequestState.VOID and "emergency rollback R2 of U04DAVE" in r1.decision_reason
    assert r2.state is RequestState.SUCCEEDED and r2.emergency
    served = bot.fleet.current.model(MODEL)
    assert served is not None and served.label("stable") == 1
    assert not bot.say(BOB, "approve R1").ok
    listed = bot.say(BOB, "requests").text
    assert "retro-review" in listed and "R2" in listed, listed
    assert not bot.say(DAVE, "review R2").ok
    acknowledged = bot.say(ALICE, "review R2")
    assert acknowledged.ok and "acknowledged by U01ALICE" in acknowledged.text, acknowledged.text
    assert "retro-review" not in bot.say(BOB, "requests").text
    assert not bot.say(BOB, "review R2").ok
    assert (ALICE, "review", "acknowledged") in bot.trail(2)
    review = bot.request(2).retro_review
    assert review is not None and review.acknowledged_by == ALICE


def test_an_overdue_retro_review_is_reminded_once(bot: Bot) -> None:
    """Past its deadline an unacknowledged emergency gets one incident reminder, however many sweeps run."""
    bot.service.deps.retro_review_within = timedelta(minutes=5)
    assert bot.say(DAVE, EMERGENCY).ok
    bot.clock.advance(minutes=6)
    bot.service.expire_due()
    bot.service.expire_due()
    with bot.db.uow(readonly=True) as uow:
        incidents = [m for m in uow.outbox.pending(limit=1000) if m.kind == "incident"]
    reminders = [m for m in incidents if "Retro-review overdue" in str(m.payload)]
    assert len(reminders) == 1 and "/model review R1" in str(reminders[0].payload)
    assert "OVERDUE" in bot.say(BOB, "requests").text


def test_a_freeze_refuses_a_rollback_and_an_emergency_overrides_it(bot: Bot) -> None:
    """While dave's freeze holds, alice's rollback is refused naming it; dave's emergency runs and says it
    overrode the freeze; unfreezing lifts it."""
    frozen = bot.say(DAVE, 'freeze fraud_detector --reason "INC-9 investigating" --for 2h')
    assert frozen.ok and "frozen by U04DAVE" in frozen.text, frozen.text
    refused = bot.say(ALICE, ROLLBACK)
    assert not refused.ok and "INC-9 investigating" in refused.text, refused.text
    assert not bot.say(ALICE, 'freeze fraud_detector --reason "me"').ok
    done = bot.say(DAVE, EMERGENCY)
    assert done.ok and "SUCCEEDED" in done.text and "overrode U04DAVE's freeze" in done.text, done.text
    assert bot.say(DAVE, "unfreeze fraud_detector").ok
    assert not bot.say(DAVE, "unfreeze fraud_detector").ok
    assert bot.say(ALICE, 'rollback fraud_detector 2 --reason "after the freeze"').ok


def test_an_expired_request_never_executes(bot: Bot) -> None:
    """After the approval TTL the sweep expires R1 (audited) and bob's approval runs nothing."""
    bot.say(ALICE, ROLLBACK)
    bot.clock.advance(minutes=31)
    assert bot.service.expire_due() == 1
    assert bot.request(1).state is RequestState.EXPIRED
    assert ("expire", "expired") in [(action, outcome) for _, action, outcome in bot.trail(1)]
    late = bot.say(BOB, "approve R1")
    assert not late.ok and "expired" in late.text.lower(), late.text
    assert bot.fleet.rollouts == 0


def test_an_approval_after_the_ttl_expires_the_request_itself(bot: Bot) -> None:
    """Without a sweep in between, an approval past the TTL finds R1 expired and runs nothing."""
    bot.say(ALICE, ROLLBACK)
    bot.clock.advance(minutes=31)
    late = bot.say(BOB, "approve R1")
    assert not late.ok and "expired" in late.text.lower(), late.text
    assert bot.request(1).state is RequestState.EXPIRED and bot.fleet.rollouts == 0


def test_two_approvers_at_once_run_the_rollout_once(bot: Bot) -> None:
    """bob and dave approve R1 on two threads at the same moment: one rollout, one outcome."""
    bot.say(ALICE, ROLLBACK)
    start = threading.Barrier(2)
    replies: list[Reply] = []

    def approve(user: str) -> None:
        start.wait()
        replies.append(bot.say(user, "approve R1"))

    threads = [threading.Thread(target=approve, args=(u,)) for u in (BOB, DAVE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(replies) == 2 and bot.fleet.rollouts == 1
    assert bot.request(1).state is RequestState.SUCCEEDED
    with bot.db.uow(readonly=True) as uow:
        assert len(uow.operations.for_request(1)) == 1 and uow.audit.verify().ok


# --- the in-memory store's own transaction semantics ------------------------------------------------------------


def test_changes_are_visible_only_after_commit(bot: Bot) -> None:
    """A freeze added without commit() is gone after the block; a readonly reader opened during a write sees the
    state before it."""
    now = bot.clock()
    with bot.db.uow() as uow:
        uow.freezes.add(MODEL, "uncommitted", DAVE, now, None)
        with bot.db.uow(readonly=True) as reader:
            assert reader.freezes.active(MODEL, now) is None
    with bot.db.uow(readonly=True) as uow:
        assert uow.freezes.active(MODEL, now) is None
    with bot.db.uow() as uow:
        uow.freezes.add(MODEL, "committed", DAVE, now, None)
        uow.commit()
    with bot.db.uow(readonly=True) as uow:
        frozen = uow.freezes.active(MODEL, now)
        assert frozen is not None and frozen.reason == "committed"


def test_a_readonly_unit_of_work_refuses_writes_and_a_nested_writer_fails_fast(bot: Bot) -> None:
    """Writing (or picking due outbox messages) in a readonly uow raises; a second writing uow in the same
    thread raises instead of waiting."""
    with bot.db.uow(readonly=True) as uow, pytest.raises(RuntimeError, match="readonly"):
        uow.fleet_lock.acquire("me", bot.clock(), timedelta(seconds=15))
    with bot.db.uow(readonly=True) as uow, pytest.raises(RuntimeError, match="readonly"):
        uow.outbox.due(bot.clock())  # it locks rows on PostgreSQL, which a READ ONLY transaction refuses
    with bot.db.uow(), pytest.raises(RuntimeError, match="already open"), bot.db.uow():
        pass


def test_requests_save_is_a_compare_and_set(bot: Bot) -> None:
    """Saving R1 with a stale version raises Conflict and changes nothing."""
    bot.say(ALICE, ROLLBACK)
    stale = bot.request(1)
    with bot.db.uow() as uow:
        uow.requests.save(stale, stale.version)
        uow.commit()
    with bot.db.uow() as uow, pytest.raises(Conflict, match="changed while you were deciding"):
        uow.requests.save(stale, stale.version)
    assert bot.request(1).version == stale.version + 1


def test_a_tampered_audit_row_fails_verification(bot: Bot) -> None:
    """Editing a stored audit row's outcome breaks the chain at that row's seq."""
    bot.say(ALICE, ROLLBACK)
    with bot.db.uow() as uow:
        seq, _ = uow.audit.head()
        uow.audit.tamper(seq, outcome="forged")
        result = uow.audit.verify()
    assert not result.ok and result.first_bad_seq == seq
