"""approve / reject / expiry: the two-person rule, each step a compare-and-set on the request row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from bot.core import approvals, commands
from bot.core.change_request import ChangeRequest, RequestState
from bot.core.errors import Conflict, ModelbotError, NotFound
from bot.texts import replies as texts
from bot.usecases.audit_trail import notify_card, notify_incident, record
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.execution import Claim, execute, try_claim
from bot.usecases.ports import UnitOfWork

REMINDER_EVERY = timedelta(hours=1)  # an overdue retro-review is reminded at most this often
CAS_ATTEMPTS = 3  # a concurrent decider bumped the row: re-read and decide again on the fresh state


def approve(deps: Deps, ctx: Context, cmd: commands.Approve) -> Reply:
    claims: list[Claim] = []

    def claim_at_once(uow: UnitOfWork, stored: ChangeRequest) -> None:
        """The approval that reaches the quorum also claims the fleet, in the same transaction, when it is free."""
        if stored.state is RequestState.APPROVED:
            claim = try_claim(deps, ctx, uow, stored)
            if claim is not None:
                claims.append(claim)

    decided = _decide(deps, ctx, cmd.request_id, "approve", _approve_step(deps, ctx), then=claim_at_once)
    if decided.state is RequestState.APPROVED:
        return execute(deps, ctx, decided.id, claims[-1] if claims else None)
    return Reply(texts.approval_recorded(decided), public=True, request_id=decided.id)


def reject(deps: Deps, ctx: Context, cmd: commands.Reject) -> Reply:
    def step(req: ChangeRequest) -> ChangeRequest:
        may = deps.policy.decide(ctx.actor, "reject", req.model).allowed
        return approvals.reject(req, ctx.actor, may, deps.clock(), cmd.reason)

    decided = _decide(deps, ctx, cmd.request_id, "reject", step)
    return Reply(texts.request_rejected(decided), public=True, request_id=decided.id)


def cancel(deps: Deps, ctx: Context, cmd: commands.Cancel) -> Reply:
    """The requester withdraws their own pending (or approved, not yet executing) request."""

    def step(req: ChangeRequest) -> ChangeRequest:
        return approvals.cancel(req, ctx.actor, deps.clock())

    decided = _decide(deps, ctx, cmd.request_id, "cancel", step)
    return Reply(texts.request_cancelled(decided), public=True, request_id=decided.id)


def review(deps: Deps, ctx: Context, cmd: commands.Review) -> Reply:
    """An approver acknowledges an emergency's retro-review (never the person who ran it)."""

    def step(req: ChangeRequest) -> ChangeRequest:
        can = deps.policy.can_approve(ctx.actor, approvals.rule_of(req))  # holds one of its approver roles
        return approvals.acknowledge(req, ctx.actor, can, deps.clock())

    decided = _decide(deps, ctx, cmd.request_id, "review", step, outcome="acknowledged")
    return Reply(texts.review_acknowledged(decided), public=True, request_id=decided.id)


def remind_retro_reviews(deps: Deps) -> int:
    """Post a reminder to the incident channel for every overdue, unacknowledged retro-review; once per
    reminder period (the outbox key), so repeated sweeps and several bot replicas post it once."""
    now = deps.clock()
    period = max(deps.retro_review_within, REMINDER_EVERY)
    posted = 0
    with deps.db.uow() as uow:
        for req in uow.requests.emergencies():
            review = req.retro_review
            if review is None or not review.overdue(now):
                continue
            round_ = int((now - review.due) / period)
            text = texts.retro_review_reminder(req, review, now)
            payload = {"model": req.model, "text": text, "review_request_id": req.id}  # with Acknowledge
            notify_incident(uow, deps, req, payload, key=f"retro:{req.id}:{round_}")
            posted += 1
        uow.commit()
    return posted


def _approve_step(deps: Deps, ctx: Context) -> Step:
    def step(req: ChangeRequest) -> ChangeRequest:
        can = deps.policy.can_approve(ctx.actor, approvals.rule_of(req))
        return approvals.approve(req, ctx.actor, can, deps.clock())

    return step


Step = Callable[[ChangeRequest], ChangeRequest]


def _decide(
    deps: Deps,
    ctx: Context,
    request_id: int,
    action: str,
    step: Step,
    *,
    then: Callable[[UnitOfWork, ChangeRequest], None] | None = None,
    outcome: str | None = None,
) -> ChangeRequest:
    """Apply `step` to the fresh request and store it with CAS, retrying when a concurrent decider won;
    `then` runs in the same transaction on the stored request."""
    for _ in range(CAS_ATTEMPTS):
        with deps.db.uow() as uow:
            req = uow.requests.get_for_update(request_id)
            if req is None:
                raise NotFound(texts.unknown_request(request_id))
            expired = approvals.expire_if_due(req, deps.clock())
            if expired is not req and expired.state is RequestState.EXPIRED:
                _store(uow, deps, None, expired, req.version, action="expire", outcome="expired")
                uow.commit()
                raise Conflict(texts.request_expired(expired))
            if action == "approve" and approvals.approval_retries_rollout(req, ctx.actor):
                if then is not None:
                    then(uow, req)
                uow.commit()
                return req
            try:
                decided = step(req)
            except ModelbotError as exc:
                record(uow, deps, ctx, action, "refused", request=req, why=str(exc))
                uow.commit()
                raise
            try:
                stored = _store(
                    uow, deps, ctx, decided, req.version, action=action, outcome=outcome or decided.state.value.lower()
                )
            except Conflict:
                continue  # lost the race: the next attempt sees the winner's state
            if then is not None:
                then(uow, stored)
            uow.commit()
            return decided
    raise Conflict(texts.request_busy(request_id))


def _store(
    uow: UnitOfWork, deps: Deps, ctx: Context | None, req: ChangeRequest, expected: int, *, action: str, outcome: str
) -> ChangeRequest:
    stored = uow.requests.save(req, expected)
    record(uow, deps, ctx, action, outcome, request=stored)
    card = uow.requests.get_card(stored.id)
    notify_card(uow, stored, card[0] if card else None)
    return stored


def expire_due(deps: Deps) -> list[ChangeRequest]:
    """Move every request past its TTL to EXPIRED (with audit); cheap when there is none."""
    now = deps.clock()
    expired: list[ChangeRequest] = []
    with deps.db.uow() as uow:
        for req in uow.requests.list_due_for_expiry(now):
            done = approvals.expire_if_due(req, now)
            if done.state is RequestState.EXPIRED:
                try:
                    _store(uow, deps, None, done, req.version, action="expire", outcome="expired")
                except Conflict:
                    continue
                expired.append(done)
        if expired:
            uow.commit()
    return expired
