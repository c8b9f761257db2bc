"""The two-person approval rules and the change-request state machine (pure); the request itself (states, digest,
plan) is bot/core/change_request.py.

PENDING -> APPROVED -> EXECUTING -> SUCCEEDED | PARTIAL | FAILED, plus REJECTED, EXPIRED, VOID.
Every transition is a function returning a new request or raising a ModelbotError; the store
persists it with a compare-and-set on `version`, so concurrent deciders cannot both win.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.core.change_request import (
    CHANGE_ACTIONS,
    RETRO_REVIEW,
    Approval,
    ChangePlan,
    ChangeRequest,
    RequestState,
    RetroReview,
)
from bot.core.commands import format_request_id
from bot.core.errors import Conflict, PermissionDenied, UsageError
from bot.core.fleet import Outcome
from bot.core.policy import ApprovalRule, Decision, Identity

TWO_PERSON = "two-person rule"  # PermissionDenied.rule when a requester tries to approve their own change


def new_request(
    plan: ChangePlan,
    rule: ApprovalRule,
    requester: Identity | str,
    now: datetime,
    reason: str,
    *,
    ttl: timedelta,
    retro_review_within: timedelta = timedelta(hours=24),
) -> ChangeRequest:
    """A PENDING request under `rule` (the policy's rule, approver roles resolved), expiring after `ttl`; or an
    APPROVED one when no approval is needed (an emergency rollback, due for retro-review within
    `retro_review_within`, or a rule of `approvals: 0`). A rollback needs a reason; only a rollback may be an
    emergency."""
    if plan.action not in CHANGE_ACTIONS:
        raise ValueError(f"not a change action: {plan.action!r}")
    if rule.approvals < 0 or plan.to_version < 1 or ttl <= timedelta(0):
        raise ValueError("required_approvals >= 0, to_version >= 1 and a positive ttl are needed")
    user = requester if isinstance(requester, Identity) else Identity(requester)
    if user.is_bot or not user.user_id:
        raise PermissionDenied("bots-never-act: a bot may not request a change", rule="bots-never-act")
    if plan.action == "rollback" and not reason.strip():
        raise UsageError('a rollback needs a reason: add --reason "what is wrong" (an incident id helps)')
    if plan.emergency and plan.action != "rollback":
        raise UsageError("only a rollback can be an emergency")
    required = 0 if plan.emergency else rule.approvals
    request = ChangeRequest(
        id=0,
        action=plan.action,
        model=plan.model,
        from_version=plan.from_version,
        to_version=plan.to_version,
        label=plan.label,
        reason=reason.strip(),
        requester=user.user_id,
        created_at=now,
        expires_at=now + ttl,
        required_approvals=required,
        approver_roles=frozenset(rule.approver_roles or ()),
        digest=plan.digest,
        model_generation=plan.generation,
        emergency=plan.emergency,
        dry_run_plan=plan.summary,
        extra={"signature_note": plan.signature_note} if plan.signature_note else {},
    )
    if required > 0:
        return request
    if plan.emergency:
        review = RetroReview(due=now + retro_review_within)
        request = replace(request, extra={**request.extra, RETRO_REVIEW: review.as_extra()})
    why = "emergency rollback: no second approver needed" if plan.emergency else "the policy requires no approver"
    return replace(request, state=RequestState.APPROVED, decided_by=user.user_id, decision_reason=why)


def rule_of(req: ChangeRequest) -> ApprovalRule:
    """The approval rule `req` was opened under (its approvals and approver roles), to check an approver against."""
    return ApprovalRule(req.required_approvals, req.approver_roles or None)


def two_person_rule_excludes(req: ChangeRequest, user_id: str) -> bool:
    """The two-person rule: the requester never approves (nor reviews) their own change."""
    return user_id == req.requester


def has_quorum(req: ChangeRequest) -> bool:
    """Enough distinct approvers other than the requester agreed."""
    approvers = {a.user_id for a in req.approvals if not two_person_rule_excludes(req, a.user_id)}
    return len(approvers) >= req.required_approvals


def approval_retries_rollout(req: ChangeRequest, approver: Identity) -> bool:
    """Waiting for the fleet: a request is only left APPROVED (un-executed) when the fleet was busy, so an
    approval of it by someone other than the requester records nothing and retries its rollout instead."""
    return req.state is RequestState.APPROVED and not two_person_rule_excludes(req, approver.user_id)


def approve(req: ChangeRequest, approver: Identity, can_approve: Decision, now: datetime) -> ChangeRequest:
    """Count `approver`'s approval; APPROVED once enough distinct people other than the requester agree.
    `can_approve` is Policy.can_approve(approver, rule of this request)."""
    rid = format_request_id(req.id)
    _require(req, (RequestState.PENDING,), "approve")
    _require_unexpired(req, now)
    if approver.is_bot or not approver.user_id:
        raise PermissionDenied(f"bots-never-act: {approver.user_id or 'a bot'} may not approve {rid}", "bots-never-act")
    if two_person_rule_excludes(req, approver.user_id):
        others = tuple(w for w in can_approve.who_can if not two_person_rule_excludes(req, w))
        raise PermissionDenied(
            f"two-person rule: you requested {rid}, so someone else must approve it", TWO_PERSON, others
        )
    if req.approved_by(approver.user_id):
        raise Conflict(f"you already approved {rid}; each person counts once ({req.approvals_missing} more needed)")
    if not can_approve.allowed:
        raise PermissionDenied(can_approve.reason, can_approve.rule, can_approve.who_can)
    approved = replace(req, approvals=(*req.approvals, Approval(approver.user_id, now)))
    if not has_quorum(approved):
        return approved
    return replace(approved, state=RequestState.APPROVED, decided_by=approver.user_id)


def reject(req: ChangeRequest, user: Identity, can_reject: bool, now: datetime, reason: str = "") -> ChangeRequest:
    """REJECTED: by someone with the reject permission, or withdrawn by the requester themself."""
    rid = format_request_id(req.id)
    _require(req, (RequestState.PENDING, RequestState.APPROVED), "reject")
    _require_unexpired(req, now)
    if user.is_bot or not user.user_id:
        raise PermissionDenied(f"bots-never-act: {user.user_id or 'a bot'} may not reject {rid}", "bots-never-act")
    if user.user_id != req.requester and not can_reject:
        message = f"reject-permission: only the requester or someone with the 'reject' permission may reject {rid}"
        raise PermissionDenied(message, "reject-permission")
    return replace(req, state=RequestState.REJECTED, decided_by=user.user_id, decision_reason=reason.strip())


def acknowledge(req: ChangeRequest, approver: Identity, can_approve: Decision, now: datetime) -> ChangeRequest:
    """An approver other than the emergency's requester acknowledges its retro-review (once)."""
    rid = format_request_id(req.id)
    review = req.retro_review
    if review is None:
        raise Conflict(f"{rid} is not an emergency, so it has no retro-review")
    if not review.open:
        raise Conflict(f"{rid}'s retro-review was already acknowledged by {review.acknowledged_by}")
    if req.state.is_open:
        raise Conflict(f"{rid} has not finished yet; review it once it has")
    if approver.is_bot or not approver.user_id:
        raise PermissionDenied(f"bots-never-act: {approver.user_id or 'a bot'} may not review {rid}", "bots-never-act")
    if two_person_rule_excludes(req, approver.user_id):
        raise PermissionDenied(f"two-person rule: you ran emergency {rid}, so someone else must review it", TWO_PERSON)
    if not can_approve.allowed:
        raise PermissionDenied(can_approve.reason, can_approve.rule, can_approve.who_can)
    done = replace(review, acknowledged_by=approver.user_id, acknowledged_at=now)
    return replace(req, extra={**req.extra, RETRO_REVIEW: done.as_extra()})


def cancel(req: ChangeRequest, user: Identity, now: datetime) -> ChangeRequest:
    """The requester withdraws their own PENDING or APPROVED request (REJECTED by themself: `withdrawn`)."""
    rid = format_request_id(req.id)
    _require(req, (RequestState.PENDING, RequestState.APPROVED), "cancel")
    if user.user_id != req.requester:
        raise PermissionDenied(f"only {req.requester}, who requested {rid}, may cancel it", "requester-only")
    return replace(
        req, state=RequestState.REJECTED, decided_by=user.user_id, decision_reason="withdrawn by the requester"
    )


def supersede(req: ChangeRequest, actor: str, emergency_id: int | None = None) -> ChangeRequest:
    """VOID a PENDING or APPROVED request that an emergency rollback of the same model replaces. Called again
    on the VOID request once the emergency request has its id, to name it."""
    _require(req, (RequestState.PENDING, RequestState.APPROVED, RequestState.VOID), "supersede")
    which = f" {format_request_id(emergency_id)}" if emergency_id is not None else ""
    return replace(req, state=RequestState.VOID, decision_reason=f"superseded by emergency rollback{which} of {actor}")


def expire_if_due(req: ChangeRequest, now: datetime) -> ChangeRequest:
    """EXPIRED when an unexecuted request is past `expires_at`; otherwise `req` itself, unchanged."""
    if req.state in (RequestState.PENDING, RequestState.APPROVED) and now >= req.expires_at:
        return replace(req, state=RequestState.EXPIRED, decision_reason=f"expired at {_when(req.expires_at)}")
    return req


def start_execution(req: ChangeRequest, live_digest: str, now: datetime) -> ChangeRequest:
    """APPROVED -> EXECUTING; or VOID when the live desired state no longer matches what was approved."""
    rid = format_request_id(req.id)
    _require(req, (RequestState.APPROVED,), "execute")
    _require_unexpired(req, now)
    if not has_quorum(req):  # unreachable through approve(); guards hand-built or corrupted rows
        raise Conflict(f"cannot execute {rid}: it lacks {req.required_approvals} distinct approval(s)")
    if live_digest != req.digest:
        why = f"the desired state of {req.model} changed after {rid} was requested; request it again"
        return replace(req, state=RequestState.VOID, decision_reason=why)
    return replace(req, state=RequestState.EXECUTING)


def void(req: ChangeRequest, reason: str) -> ChangeRequest:
    """VOID an open request that has not started, e.g. because another change moved the model first."""
    _require(req, (RequestState.PENDING, RequestState.APPROVED), "void")
    return replace(req, state=RequestState.VOID, decision_reason=reason)


def finish(req: ChangeRequest, outcome: Outcome) -> ChangeRequest:
    """EXECUTING -> SUCCEEDED | PARTIAL | FAILED."""
    _require(req, (RequestState.EXECUTING,), "finish")
    return replace(req, state=RequestState(outcome.value))


def _require(req: ChangeRequest, states: tuple[RequestState, ...], verb: str) -> None:
    if req.state not in states:
        raise Conflict(f"cannot {verb} {format_request_id(req.id)}: it is {req.state.value.lower()}")


def _require_unexpired(req: ChangeRequest, now: datetime) -> None:
    if now >= req.expires_at:
        raise Conflict(f"{format_request_id(req.id)} expired at {_when(req.expires_at)}")


def _when(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
