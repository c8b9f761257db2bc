"""approve / reject / expiry: the two-person rule, each step a compare-and-set on the request row."""

from __future__ import annotations

from collections.abc import Callable

from bot.core import approvals
from bot.core import commands as c
from bot.core.approvals import ChangeRequest, RequestState
from bot.core.errors import Conflict, ModelbotError, NotFound
from bot.core.policy import ApprovalRule
from bot.store.unit_of_work import UnitOfWork
from bot.texts import replies as texts
from bot.usecases.audit_trail import notify_card, record
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.execution import Claim, execute, try_claim

CAS_ATTEMPTS = 3  # a concurrent decider bumped the row: re-read and decide again on the fresh state


def approve(deps: Deps, ctx: Context, cmd: c.Approve) -> Reply:
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


def reject(deps: Deps, ctx: Context, cmd: c.Reject) -> Reply:
    def step(req: ChangeRequest) -> ChangeRequest:
        may = deps.policy.decide(ctx.actor, "reject", req.model).allowed
        return approvals.reject(req, ctx.actor, may, deps.clock(), cmd.reason)

    decided = _decide(deps, ctx, cmd.request_id, "reject", step)
    return Reply(texts.request_rejected(decided), public=True, request_id=decided.id)


def _approve_step(deps: Deps, ctx: Context) -> Step:
    def step(req: ChangeRequest) -> ChangeRequest:
        rule = ApprovalRule(req.required_approvals, req.approver_roles or None)
        can = deps.policy.can_approve(ctx.actor, rule)
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
            if action == "approve" and _waiting_for_fleet(req, ctx):
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
                    uow, deps, ctx, decided, req.version, action=action, outcome=decided.state.value.lower()
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


def _waiting_for_fleet(req: ChangeRequest, ctx: Context) -> bool:
    """An APPROVED request is only left un-executed when the fleet was busy; another approver may retry it."""
    return req.state is RequestState.APPROVED and req.requester != ctx.actor.user_id


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
