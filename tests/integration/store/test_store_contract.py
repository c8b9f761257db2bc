"""The store contract: one set of repository behaviours run against the in-memory store (tests/memory_store.py),
SQLite and PostgreSQL, so the fake the fast use-case tier relies on cannot drift from the real store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.alerts import FIRING, NEW, REPEAT, RESOLVED, RESOLVED_NOW, AlertNotice, AutoState
from bot.core.change_request import Approval, ChangeRequest, RequestState
from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.errors import Conflict, NotFound
from bot.core.fleet import Outcome, ReplicaResult, RolloutResult
from bot.store import Database
from tests.dbs import BACKENDS, fresh_database_url
from tests.integration.store.conftest import AUDIT_CHANNEL, T0
from tests.memory_store import MemoryStore

MODEL = "fraud_detector"
TTL = timedelta(seconds=15)


@pytest.fixture(params=["memory", *BACKENDS])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """An empty store with an audit channel: in memory, SQLite or PostgreSQL (skipped when not configured)."""
    if request.param == "memory":
        yield MemoryStore(audit_channel=AUDIT_CHANNEL)
        return
    with fresh_database_url(request.param, tmp_path) as url:
        database = Database(url, audit_channel=AUDIT_CHANNEL)
        database.upgrade()
        yield database
        database.dispose()


def _add(store: Any, req: ChangeRequest) -> ChangeRequest:
    with store.uow() as uow:
        stored: ChangeRequest = uow.requests.add(req)
        uow.commit()
    return stored


def _state(name: str, stable: int, generation: int = 0) -> ModelState:
    state = ModelState(name, f"/models/{name}", policy=VersionPolicy.specific((stable,)), generation=generation)
    return state.with_labels({"stable": stable})


def test_requests_round_trip_and_uncommitted_changes_vanish(store: Any, make_request: Callable[..., Any]) -> None:
    """add() gives increasing ids and get() an equal request; an add left without commit() is gone."""
    first = _add(store, make_request(extra={"ticket": "INC-481", "n": 1}, emergency=True))
    second = _add(store, make_request(model="churn", approvals=(Approval("U02BOB", T0),)))
    assert first.id >= 1 and second.id == first.id + 1
    with store.uow(readonly=True) as uow:
        assert uow.requests.get(first.id) == first and uow.requests.get(first.id).extra == {"ticket": "INC-481", "n": 1}
        assert uow.requests.get(second.id).approvals == (Approval("U02BOB", T0),)
        assert uow.requests.get(9999) is None
    with store.uow() as uow:
        uow.requests.add(make_request(model="ranker"))
    with store.uow(readonly=True) as uow:
        assert uow.requests.open_for_model("ranker") is None
        assert [r.id for r in uow.requests.list_open()] == [first.id, second.id]
        assert [r.id for r in uow.requests.emergencies()] == [first.id]


def test_one_open_request_per_model(store: Any, make_request: Callable[..., Any]) -> None:
    """A second open request for a model is a Conflict naming the first; once it is final the model is free."""
    first = _add(store, make_request())
    with store.uow() as uow, pytest.raises(Conflict, match="already open"):
        uow.requests.add(make_request(to_version=1))
    with store.uow() as uow:
        uow.requests.save(replace(first, state=RequestState.REJECTED), first.version)
        uow.commit()
    second = _add(store, make_request(to_version=1))
    with store.uow() as uow, pytest.raises(Conflict, match="another open request"):
        reopened = uow.requests.get(first.id)
        uow.requests.save(replace(reopened, state=RequestState.PENDING), reopened.version)
    with store.uow(readonly=True) as uow:
        assert uow.requests.open_for_model(MODEL).id == second.id


def test_save_is_a_compare_and_set_and_approvals_accumulate(store: Any, make_request: Callable[..., Any]) -> None:
    """save() bumps the version; a stale version is a Conflict, an unknown id NotFound; each approver counts once."""
    req = _add(store, make_request(required_approvals=2))
    approved = replace(req, approvals=(Approval("U02BOB", T0),))
    with store.uow() as uow:
        saved = uow.requests.save(approved, req.version)
        uow.commit()
    assert saved.version == req.version + 1
    with store.uow() as uow, pytest.raises(Conflict, match="changed while you were deciding"):
        uow.requests.save(approved, req.version)
    with store.uow() as uow, pytest.raises(NotFound):
        uow.requests.save(replace(req, id=9999), 0)
    twice = replace(saved, approvals=(*saved.approvals, Approval("U04DAVE", T0 + timedelta(seconds=1))))
    with store.uow() as uow:
        uow.requests.save(twice, saved.version)
        uow.requests.set_card(req.id, "C0OPS", "1.2")  # not a state change: the version stays
        uow.commit()
    with store.uow(readonly=True) as uow:
        loaded = uow.requests.get(req.id)
        assert [a.user_id for a in loaded.approvals] == ["U02BOB", "U04DAVE"]
        assert loaded.version == req.version + 2
        assert uow.requests.get_card(req.id) == ("C0OPS", "1.2")


def test_expiry_and_history_queries(store: Any, make_request: Callable[..., Any]) -> None:
    """list_due_for_expiry takes PENDING/APPROVED past their TTL; recent_executed lists finished runs newest first."""
    a = _add(store, make_request(model="a"))
    b = _add(store, make_request(model="b", expires_at=T0 + timedelta(hours=2)))
    c = _add(store, make_request(model="c"))
    d = _add(store, make_request(model="d"))
    with store.uow() as uow:
        uow.requests.save(replace(c, state=RequestState.SUCCEEDED), c.version)
        uow.requests.save(replace(d, state=RequestState.FAILED), d.version)
        uow.commit()
    with store.uow(readonly=True) as uow:
        assert [r.id for r in uow.requests.list_due_for_expiry(T0 + timedelta(minutes=30))] == [a.id]
        assert [r.id for r in uow.requests.list_due_for_expiry(T0 + timedelta(hours=3))] == [a.id, b.id]
        assert [r.id for r in uow.requests.recent_executed()] == [d.id, c.id]
        assert [r.id for r in uow.requests.recent_executed(limit=1)] == [d.id]


def test_desired_state_is_none_until_saved_and_replaced_whole(store: Any) -> None:
    """load() is None before the first save; save() replaces the whole config (absent models removed)."""
    with store.uow() as uow:
        assert uow.desired.load() is None and uow.desired.get(MODEL) is None
        uow.desired.save(FleetConfig((_state(MODEL, 3), _state("churn", 1))))
        uow.commit()
    with store.uow() as uow:
        assert [m.name for m in uow.desired.load().models] == ["churn", MODEL]
        uow.desired.save(FleetConfig((_state(MODEL, 2, generation=1),)))
        uow.commit()
    with store.uow(readonly=True) as uow:
        assert uow.desired.load() == FleetConfig((_state(MODEL, 2, generation=1),))
        assert uow.desired.get("churn") is None and uow.desired.get(MODEL).label("stable") == 2


def test_operations_finish_exactly_once(store: Any, make_request: Callable[..., Any]) -> None:
    """finish() writes only an unfinished operation; the record, before-state and unfinished list agree."""
    req = _add(store, make_request())
    result = RolloutResult(
        Outcome.SUCCEEDED, (ReplicaResult("r1", True, "verify", "stable -> v2", 2),), "", ("load", "switch"), 1.5
    )
    with store.uow() as uow:
        op = uow.operations.start(req.id, MODEL, T0, holder="h:1:x", before=_state(MODEL, 3))
        bare = uow.operations.start(None, "churn", T0, holder="h:1:x")
        uow.commit()
    with store.uow() as uow:
        assert uow.operations.any_unfinished() and [o["id"] for o in uow.operations.unfinished()] == [op, bare]
        assert uow.operations.before_state(op) == (True, _state(MODEL, 3))
        assert uow.operations.before_state(bare) == (True, None)
        assert uow.operations.finish(op, result, T0 + timedelta(seconds=2))
        assert not uow.operations.finish(op, replace(result, outcome=Outcome.FAILED), T0 + timedelta(seconds=3))
        uow.commit()
    with store.uow(readonly=True) as uow:
        (record,) = uow.operations.for_request(req.id)
        assert {k: record[k] for k in ("model", "holder", "outcome", "phases_run", "elapsed_s")} == {
            "model": MODEL,
            "holder": "h:1:x",
            "outcome": "SUCCEEDED",
            "phases_run": ["load", "switch"],
            "elapsed_s": 1.5,
        }
        assert record["finished_at"] == T0 + timedelta(seconds=2)
        assert record["replicas"] == [
            {"replica": "r1", "ok": True, "phase": "verify", "detail": "stable -> v2", "served_version": 2}
        ]
        assert [o["id"] for o in uow.operations.unfinished()] == [bare]


def test_fleet_lease_is_taken_only_when_free_or_lapsed(store: Any) -> None:
    """acquire() is not re-entrant; a lapsed lease goes to the next taker, after which the old holder cannot renew
    or release it."""
    with store.uow() as uow:
        assert uow.fleet_lock.acquire("a", T0, TTL)
        assert not uow.fleet_lock.acquire("a", T0, TTL) and not uow.fleet_lock.acquire("b", T0, TTL)
        assert uow.fleet_lock.renew("a", T0 + timedelta(seconds=10), TTL)
        uow.commit()
    later = T0 + timedelta(seconds=30)
    with store.uow() as uow:
        assert uow.fleet_lock.holder(T0 + timedelta(seconds=20)) == "a"
        assert uow.fleet_lock.holder(later) is None
        assert uow.fleet_lock.acquire("b", later, TTL)
        assert not uow.fleet_lock.renew("a", later, TTL) and not uow.fleet_lock.release("a")
        assert uow.fleet_lock.release("b") and uow.fleet_lock.holder(later) is None
        uow.commit()


def test_audit_rows_chain_verify_and_are_queued_for_the_audit_channel(store: Any) -> None:
    """append() chains rows (details as they read back), verify() passes, and each row is queued once by seq."""
    with store.uow() as uow:
        first = uow.audit.append(
            at=T0, actor="U01ALICE", action="rollback", outcome="requested", request_id=1, model=MODEL,
            detail={"versions": (3, 2), "at": T0},
        )  # fmt: skip
        second = uow.audit.append(
            at=T0, actor="U02BOB", action="approve", outcome="approved", request_id=1, model=MODEL, detail={}
        )
        uow.audit.append(at=T0, actor="modelbot", action="bootstrap", outcome="adopted", request_id=None,
                         model=None, detail={})  # fmt: skip
        uow.commit()
    assert first.detail == {"versions": [3, 2], "at": "2025-03-01T12:00:00.123456+00:00"}
    assert (first.seq, second.seq, second.prev_hash) == (1, 2, first.hash)
    with store.uow() as uow:  # due() locks rows on PostgreSQL: a writing unit of work
        assert uow.audit.head() == (3, uow.audit.recent(limit=1)[0].hash)
        assert uow.audit.verify().ok and uow.audit.verify().checked == 3
        assert [e.seq for e in uow.audit.recent(MODEL)] == [2, 1]
        assert uow.audit.for_request(1) == [first, second]
        assert [(m.kind, m.key) for m in uow.outbox.due(T0)] == [("audit", "audit:1")]
        assert uow.outbox.pending_count() == 3


def test_outbox_keys_are_unique_and_channels_deliver_in_order(store: Any) -> None:
    """A repeated key returns the first id; due() offers each channel's oldest message; a failure holds the channel,
    giving up releases it; a message delayed with due_at does not hold its channel back."""
    with store.uow() as uow:
        one = uow.outbox.enqueue("card", "C1", {"n": 1}, key="k1", at=T0)
        assert uow.outbox.enqueue("card", "C1", {"n": 9}, key="k1", at=T0) == one
        two = uow.outbox.enqueue("card", "C1", {"n": 2}, at=T0)
        delayed = uow.outbox.enqueue("card", "C2", {"n": 3}, at=T0, due_at=T0 + timedelta(minutes=1))
        other = uow.outbox.enqueue("card", "C2", {"n": 4}, at=T0)
        uow.commit()
    with store.uow() as uow:
        assert [m.id for m in uow.outbox.due(T0)] == [one, other]
        assert uow.outbox.claim(one, "me", T0, TTL) and not uow.outbox.claim(one, "you", T0, TTL)
        assert [m.id for m in uow.outbox.due(T0)] == [other]
        uow.outbox.mark_failed(one, T0, "ratelimited", T0 + timedelta(seconds=30))
        uow.outbox.mark_delivered(other, T0, {"ts": "1.1"})
        uow.commit()
    with store.uow() as uow:
        assert [m.id for m in uow.outbox.due(T0 + timedelta(seconds=1))] == []
        assert [m.id for m in uow.outbox.due(T0 + timedelta(minutes=1))] == [one, delayed]
        uow.outbox.give_up(one, T0, "channel_not_found")
        uow.commit()
    with store.uow() as uow:
        assert [m.id for m in uow.outbox.due(T0 + timedelta(minutes=1))] == [two, delayed]
        assert uow.outbox.pending_count() == 2 and uow.outbox.oldest_pending_created_at() == T0


def test_freezes_and_drift_episodes(store: Any) -> None:
    """The newest freeze in force speaks (all-models included) until lifted or past; one drift episode per model."""
    with store.uow() as uow:
        uow.freezes.add("*", "change freeze", "U04DAVE", T0, None)
        uow.freezes.add(MODEL, "INC-9", "U04DAVE", T0, T0 + timedelta(hours=1))
        assert uow.freezes.active(MODEL, T0).reason == "INC-9"
        assert uow.freezes.active(MODEL, T0 + timedelta(hours=2)).reason == "change freeze"
        assert uow.freezes.active("churn", T0).model == "churn"
        assert uow.freezes.lift("*", "U04DAVE", T0) == 1 and uow.freezes.lift("*", "U04DAVE", T0) == 0
        assert uow.freezes.active("churn", T0) is None
        assert uow.drift.open(MODEL, T0, {"r2": ["stable -> v2"]})
        assert not uow.drift.open(MODEL, T0, {"r3": ["x"]})
        uow.drift.update(MODEL, T0 + timedelta(minutes=1), {"r2": ["stable -> v1"]})
        uow.commit()
    with store.uow() as uow:
        (episode,) = uow.drift.open_episodes().values()
        assert (episode.since, episode.replicas) == (T0, {"r2": ["stable -> v1"]})
        assert uow.drift.close(MODEL) and not uow.drift.close(MODEL)
        uow.commit()


def test_alert_firings_are_recorded_once_and_decided_once(store: Any) -> None:
    """A firing is NEW then REPEAT, its resolution RESOLVED_NOW once; decide_auto moves pending only once."""
    firing = AlertNotice("alertmanager", "fp1", "2025-03-01T11:59:00Z", FIRING, MODEL, "HighErrorRate")
    with store.uow() as uow:
        stored, what = uow.alerts.record(firing, T0, AutoState.PENDING)
        assert what == NEW and stored.firing_since == T0 and stored.auto_state is AutoState.PENDING
        again, what = uow.alerts.record(firing, T0 + timedelta(minutes=1), AutoState.PENDING)
        assert what == REPEAT and again.notifications == 2
        assert [a.id for a in uow.alerts.pending_auto()] == [stored.id]
        assert uow.alerts.decide_auto(stored.id, AutoState.HELD, T0, reason="frozen")
        assert not uow.alerts.decide_auto(stored.id, AutoState.ACTED, T0)
        resolved = replace(firing, status=RESOLVED)
        assert uow.alerts.record(resolved, T0 + timedelta(minutes=2), None)[1] == RESOLVED_NOW
        assert uow.alerts.record(resolved, T0 + timedelta(minutes=3), None)[1] == REPEAT
        uow.alerts.set_post(stored.id, "C0INC", "9.9")
        uow.commit()
    with store.uow(readonly=True) as uow:
        final = uow.alerts.get(stored.id)
        assert (final.status, final.auto_state, final.auto_reason, final.post) == (
            RESOLVED,
            AutoState.HELD,
            "frozen",
            ("C0INC", "9.9"),
        )
        assert uow.alerts.acted_since(MODEL, T0) == 0 and uow.alerts.pending_auto() == []
