"""Change requests: one open request per model (unique index), compare-and-set on `version`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, bindparam, insert, select, update
from sqlalchemy import exc as sa_exc

from bot.core.change_request import OPEN_STATES, Approval, ChangeRequest, RequestState
from bot.core.commands import format_request_id
from bot.core.errors import Conflict, NotFound
from bot.store.tables import approvals, requests
from bot.store.tx import Tx

# States in which a request may still time out (EXECUTING never does: the rollout owns it).
EXPIRABLE_STATES = (RequestState.PENDING.value, RequestState.APPROVED.value)
EXECUTED_STATES = (RequestState.SUCCEEDED.value, RequestState.PARTIAL.value, RequestState.FAILED.value)


class RequestRepository:
    """ChangeRequest rows and their approvals."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def add(self, req: ChangeRequest) -> ChangeRequest:
        """Store a new request and return it with its id. Raises Conflict naming the open request
        when the model already has one (PENDING, APPROVED or EXECUTING)."""
        if req.state.is_open:
            existing = self.open_for_model(req.model)
            if existing is not None:
                raise _already_open(existing)
        try:
            with self._tx.savepoint():
                request_id = self._tx.insert_id(insert(requests).values(**_columns(req, req.version)))
        except sa_exc.IntegrityError:
            # Another transaction opened one between our check and our insert (PostgreSQL).
            existing = self.open_for_model(req.model)
            raise (
                _already_open(existing) if existing else Conflict(f"{req.model} already has an open request")
            ) from None
        stored = replace(req, id=request_id)
        self._insert_approvals(request_id, req.approvals, known=set())
        return stored

    def get(self, request_id: int) -> ChangeRequest | None:
        """The request, or None."""
        return self._one(select(requests).where(requests.c.id == request_id))

    def get_for_update(self, request_id: int) -> ChangeRequest | None:
        """The request, row-locked until the end of the transaction (PostgreSQL; SQLite write
        transactions are already exclusive)."""
        return self._one(select(requests).where(requests.c.id == request_id).with_for_update())

    def save(self, req: ChangeRequest, expected_version: int) -> ChangeRequest:
        """Compare-and-set: store `req` only if the row still has `expected_version`; returns it with
        version expected_version + 1. New approvals are added (each user once per request).
        Raises Conflict when someone else changed the request first, NotFound if it does not exist."""
        values = _columns(req, expected_version + 1)
        del values["created_at"]
        label = format_request_id(req.id)
        try:  # the SET clause comes from the parameters: one cached statement, no per-call SQL construction
            result = self._tx.execute(_SAVE, {**values, "_id": req.id, "_expected": expected_version})
        except sa_exc.IntegrityError:
            raise Conflict(f"{req.model} already has another open request") from None
        if result.rowcount == 0:
            if self._tx.execute(select(requests.c.id).where(requests.c.id == req.id)).first() is None:
                raise NotFound(f"{label} does not exist")
            raise Conflict(f"{label} changed while you were deciding; try again")
        known = set(self._tx.execute(select(approvals.c.user_id).where(approvals.c.request_id == req.id)).scalars())
        try:
            self._insert_approvals(req.id, req.approvals, known)
        except sa_exc.IntegrityError:
            raise Conflict(f"{label} changed while you were deciding; try again") from None
        return replace(req, version=expected_version + 1)

    def open_for_model(self, model: str) -> ChangeRequest | None:
        """The model's open request, if any."""
        return self._one(select(requests).where(requests.c.open_model == model))

    def emergencies(self) -> list[ChangeRequest]:
        """Every emergency request, oldest first (few: they are the break-glass ones); callers read their
        retro-review from `ChangeRequest.retro_review`."""
        return self._many(select(requests).where(requests.c.emergency.is_(True)).order_by(requests.c.id))

    def list_open(self) -> list[ChangeRequest]:
        """Every open request, oldest first."""
        return self._many(select(requests).where(requests.c.open_model.is_not(None)).order_by(requests.c.id))

    def recent_executed(self, limit: int = 10) -> list[ChangeRequest]:
        """The last `limit` requests that ran on the fleet (SUCCEEDED, PARTIAL or FAILED), newest first."""
        executed = requests.c.state.in_(EXECUTED_STATES)
        return self._many(select(requests).where(executed).order_by(requests.c.id.desc()).limit(limit))

    def list_due_for_expiry(self, now: datetime) -> list[ChangeRequest]:
        """PENDING or APPROVED requests whose expires_at is at or before `now`, oldest first (the
        approvals state machine decides what actually expires)."""
        statement = (
            select(requests)
            .where(requests.c.state.in_(EXPIRABLE_STATES), requests.c.expires_at <= now)
            .order_by(requests.c.id)
        )
        return self._many(statement)

    def set_card(self, request_id: int, channel: str, ts: str) -> None:
        """Remember the Slack message (channel, ts) of the request's approval card. Not a state change:
        `version` is not bumped, so it never makes a decider's compare-and-set fail."""
        self._tx.execute(update(requests).where(requests.c.id == request_id).values(card_channel=channel, card_ts=ts))

    def get_card(self, request_id: int) -> tuple[str, str] | None:
        """(channel, ts) of the approval card, or None if none was posted."""
        row = self._tx.execute(
            select(requests.c.card_channel, requests.c.card_ts).where(requests.c.id == request_id)
        ).first()
        if row is None or row.card_channel is None or row.card_ts is None:
            return None
        return (row.card_channel, row.card_ts)

    def _one(self, statement: Select[Any]) -> ChangeRequest | None:
        found = self._many(statement)
        return found[0] if found else None

    def _many(self, statement: Select[Any]) -> list[ChangeRequest]:
        rows = self._tx.execute(statement).all()
        if not rows:
            return []
        by_request: dict[int, list[Approval]] = {row.id: [] for row in rows}
        approval_rows = self._tx.execute(
            select(approvals).where(approvals.c.request_id.in_(by_request)).order_by(approvals.c.id)
        )
        for a in approval_rows:
            by_request[a.request_id].append(Approval(user_id=a.user_id, at=a.at))
        return [_request(row, tuple(by_request[row.id])) for row in rows]

    def _insert_approvals(self, request_id: int, new: Sequence[Approval], known: set[str]) -> None:
        rows = [{"request_id": request_id, "user_id": a.user_id, "at": a.at} for a in new if a.user_id not in known]
        if rows:
            self._tx.execute(insert(approvals), rows)


def _already_open(existing: ChangeRequest) -> Conflict:
    rid = format_request_id(existing.id)
    if existing.state is RequestState.EXECUTING:
        how = "it is executing now; wait for its outcome"
    else:
        how = (
            f"{existing.requester} can withdraw it with `/model cancel {rid}`, an approver can `/model reject {rid}`,"
            " and an incident commander's `--emergency` rollback supersedes it"
        )
    return Conflict(
        f"{rid} ({existing.state.value.lower()}, by {existing.requester}) is already open for {existing.model}: {how}"
    )


_SAVE = update(requests).where(requests.c.id == bindparam("_id"), requests.c.version == bindparam("_expected"))


def _columns(req: ChangeRequest, version: int) -> dict[str, Any]:
    return {
        "action": req.action,
        "model": req.model,
        "open_model": req.model if req.state in OPEN_STATES else None,
        "from_version": req.from_version,
        "to_version": req.to_version,
        "label": req.label,
        "reason": req.reason,
        "requester": req.requester,
        "created_at": req.created_at,
        "expires_at": req.expires_at,
        "required_approvals": req.required_approvals,
        "approver_roles": json.dumps(sorted(req.approver_roles)),
        "digest": req.digest,
        "model_generation": req.model_generation,
        "state": req.state.value,
        "emergency": req.emergency,
        "dry_run_plan": req.dry_run_plan,
        "decided_by": req.decided_by,
        "decision_reason": req.decision_reason,
        "version": version,
        "extra": json.dumps(req.extra, sort_keys=True, default=str),
    }


def _request(row: Row[Any], approval_list: tuple[Approval, ...]) -> ChangeRequest:
    return ChangeRequest(
        id=row.id,
        action=row.action,
        model=row.model,
        from_version=row.from_version,
        to_version=row.to_version,
        label=row.label,
        reason=row.reason,
        requester=row.requester,
        created_at=row.created_at,
        expires_at=row.expires_at,
        required_approvals=row.required_approvals,
        approver_roles=frozenset(json.loads(row.approver_roles)),
        digest=row.digest,
        model_generation=row.model_generation,
        state=RequestState(row.state),
        approvals=approval_list,
        emergency=row.emergency,
        dry_run_plan=row.dry_run_plan,
        decided_by=row.decided_by,
        decision_reason=row.decision_reason,
        version=row.version,
        extra=json.loads(row.extra),
    )
