"""Change requests: add/get, one open request per model, compare-and-set saves, approvals, cards."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.core.change_request import Approval, RequestState
from bot.core.errors import Conflict, NotFound
from bot.store import Database
from tests.integration.store.conftest import T0


def test_add_assigns_increasing_ids_and_get_round_trips(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """add() returns the request with a new id, and get() returns an equal request."""
    req = make_request(extra={"ticket": "INC-481"}, emergency=True, dry_run_plan="load 2; move stable")
    with db.uow() as uow:
        first = uow.requests.add(req)
        second = uow.requests.add(make_request(model="churn"))
        uow.commit()
    assert first.id >= 1 and second.id == first.id + 1
    with db.uow(readonly=True) as uow:
        loaded = uow.requests.get(first.id)
        assert uow.requests.get(9999) is None
    assert loaded == first
    assert loaded.extra == {"ticket": "INC-481"}
    assert loaded.approver_roles == frozenset({"approver"})


def test_uncommitted_add_is_rolled_back(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """Leaving a unit of work without commit() discards its changes."""
    with db.uow() as uow:
        stored = uow.requests.add(make_request())
    with db.uow() as uow:
        assert uow.requests.get(stored.id) is None
        assert uow.requests.open_for_model("fraud_detector") is None


def test_second_open_request_for_a_model_conflicts_naming_the_first(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """While R1 is open for fraud_detector, another request for it is refused with a message naming R1, its state
    and requester, and how to end it."""
    with db.uow() as uow:
        first = uow.requests.add(make_request())
        uow.commit()
    with (
        db.uow() as uow,
        pytest.raises(Conflict, match=rf"R{first.id} \(pending, by U\w+\) is already open for fraud_detector") as err,
    ):
        uow.requests.add(make_request(requester="U03DAVE"))
    assert f"/model cancel R{first.id}" in str(err.value) and "--emergency" in str(err.value)


def test_unique_index_backs_the_one_open_request_rule(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """Even bypassing the repository's check, the database refuses a second open row for a model."""
    with db.uow() as uow:
        uow.requests.add(make_request())
        uow.commit()
    copy_open_row = (
        "INSERT INTO requests (action, model, open_model, to_version, label, reason, requester, created_at, "
        "expires_at, required_approvals, approver_roles, digest, model_generation, state, emergency, dry_run_plan, "
        "decision_reason, version, extra) SELECT action, model, open_model, to_version, label, reason, requester, "
        "created_at, expires_at, required_approvals, approver_roles, digest, model_generation, state, emergency, "
        "dry_run_plan, decision_reason, version, extra FROM requests"
    )
    with db.engine.connect() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(sa.text(copy_open_row))


def test_a_closed_request_frees_the_model(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """Once a request is final (here REJECTED), a new request for the same model is accepted."""
    with db.uow() as uow:
        first = uow.requests.add(make_request())
        uow.requests.save(replace(first, state=RequestState.REJECTED, decided_by="U02BOB"), first.version)
        second = uow.requests.add(make_request())
        uow.commit()
    assert second.id != first.id
    with db.uow() as uow:
        assert [r.id for r in uow.requests.list_open()] == [second.id]
        assert uow.requests.open_for_model("fraud_detector") == second


def test_save_is_compare_and_set_on_version(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """save() bumps the version; a save based on a stale version is refused with a retry message."""
    with db.uow() as uow:
        req = uow.requests.add(make_request())
        uow.commit()
    approved = replace(req, state=RequestState.APPROVED, approvals=(Approval("U02BOB", T0),))
    with db.uow() as uow:
        saved = uow.requests.save(approved, req.version)
        uow.commit()
    assert saved.version == req.version + 1
    with db.uow() as uow, pytest.raises(Conflict, match=rf"R{req.id} changed while you were deciding; try again"):
        uow.requests.save(replace(approved, state=RequestState.REJECTED), req.version)
    with db.uow() as uow:
        stored = uow.requests.get(req.id)
    assert stored is not None
    assert stored.state is RequestState.APPROVED and stored.version == saved.version
    assert stored.approvals == (Approval("U02BOB", T0),)


def test_save_of_unknown_request_is_not_found(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """Saving a request id that does not exist raises NotFound, not a misleading Conflict."""
    with db.uow() as uow, pytest.raises(NotFound, match="R42"):
        uow.requests.save(make_request(id=42), 0)


def test_approvals_accumulate_and_each_user_counts_once(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """Approvals are appended across saves; the database refuses the same user twice on one request."""
    with db.uow() as uow:
        req = uow.requests.add(make_request(required_approvals=2))
        one = uow.requests.save(replace(req, approvals=(Approval("U02BOB", T0),)), req.version)
        two = uow.requests.save(replace(one, approvals=(*one.approvals, Approval("U04EVE", T0))), one.version)
        uow.commit()
    with db.uow() as uow:
        assert [a.user_id for a in uow.requests.get(req.id).approvals] == ["U02BOB", "U04EVE"]
    assert two.version == req.version + 2
    with db.engine.connect() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(
            sa.text("INSERT INTO approvals (request_id, user_id, at) VALUES (:r, 'U02BOB', :at)"),
            {"r": req.id, "at": T0.replace(tzinfo=None)},
        )


def test_list_due_for_expiry_returns_only_waiting_requests_past_their_ttl(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """PENDING and APPROVED requests past expires_at are due; fresh, executing and final ones are not."""
    with db.uow() as uow:
        due = uow.requests.add(make_request(model="a", expires_at=T0))
        fresh = uow.requests.add(make_request(model="b", expires_at=T0 + timedelta(hours=1)))
        executing = uow.requests.add(make_request(model="c", expires_at=T0, state=RequestState.EXECUTING))
        uow.requests.add(make_request(model="d", expires_at=T0, state=RequestState.SUCCEEDED))
        uow.commit()
    with db.uow() as uow:
        assert [r.id for r in uow.requests.list_due_for_expiry(T0)] == [due.id]
        assert [r.id for r in uow.requests.list_open()] == [due.id, fresh.id, executing.id]


def test_card_location_is_stored_without_bumping_the_version(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """set_card() records the Slack message of the card and does not disturb compare-and-set."""
    with db.uow() as uow:
        req = uow.requests.add(make_request())
        assert uow.requests.get_card(req.id) is None
        uow.requests.set_card(req.id, "C0INCIDENT", "1700000000.000100")
        uow.commit()
    with db.uow() as uow:
        assert uow.requests.get_card(req.id) == ("C0INCIDENT", "1700000000.000100")
        assert uow.requests.save(replace(req, state=RequestState.VOID), req.version).version == req.version + 1


def test_get_for_update_returns_the_request(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """get_for_update() reads the same request as get() (and locks it on PostgreSQL)."""
    with db.uow() as uow:
        req = uow.requests.add(make_request())
        uow.commit()
    with db.uow() as uow:
        assert uow.requests.get_for_update(req.id) == req
        assert uow.requests.get_for_update(req.id + 1) is None


def test_work_after_commit_is_a_new_transaction(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """After commit() the unit of work can read on; a change made then is rolled back unless committed again."""
    with db.uow() as uow:
        first = uow.requests.add(make_request())
        uow.commit()
        assert uow.requests.get(first.id) == first
        uow.requests.add(make_request(model="churn"))
    with db.uow() as uow:
        assert [r.model for r in uow.requests.list_open()] == ["fraud_detector"]


def test_a_closed_unit_of_work_cannot_be_used(db: Database) -> None:
    """Repositories kept past the `with` block refuse to run instead of using a pooled connection."""
    with db.uow() as uow:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        uow.requests.list_open()


def test_nested_writing_units_of_work_fail_fast(db: Database) -> None:
    """Opening a writing uow inside another in the same thread raises at once instead of deadlocking."""
    with db.uow() as outer:
        with pytest.raises(RuntimeError, match="already open in this thread"), db.uow():
            pass
        with db.uow(readonly=True) as reader:  # reads underneath are fine (WAL / MVCC)
            assert reader.requests.list_open() == []
        assert outer.requests.list_open() == []
    with db.uow() as again:  # the guard is released on exit
        assert again.requests.list_open() == []
