"""Change requests and the two-person approval state machine (pure).

PENDING -> APPROVED -> EXECUTING -> SUCCEEDED | PARTIAL | FAILED, plus REJECTED, EXPIRED, VOID.
Every transition is a function returning a new request or raising a ModelbotError; the store
persists it with a compare-and-set on `version`, so concurrent deciders cannot both win.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from bot.core.commands import format_request_id
from bot.core.errors import Conflict, PermissionDenied, UsageError
from bot.core.fleet import Outcome
from bot.core.policy import ApprovalRule, Decision, Identity


class RequestState(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    EXECUTING = "EXECUTING"
    SUCCEEDED = "SUCCEEDED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    VOID = "VOID"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATES

    @property
    def is_final(self) -> bool:
        return self not in OPEN_STATES


OPEN_STATES = frozenset({RequestState.PENDING, RequestState.APPROVED, RequestState.EXECUTING})


@dataclass(frozen=True)
class Approval:
    user_id: str
    at: datetime


@dataclass(frozen=True)
class ChangeRequest:
    """A requested promote/rollback, bound by `digest` to the exact desired state it was computed from."""

    id: int  # 0 until stored; shown as R<id>
    action: str  # "rollback" | "promote"
    model: str
    from_version: int | None
    to_version: int
    label: str
    reason: str
    requester: str
    created_at: datetime
    expires_at: datetime
    required_approvals: int
    approver_roles: frozenset[str]
    digest: str  # of the change: model, from, to, label map, desired generation
    model_generation: int
    state: RequestState = RequestState.PENDING
    approvals: tuple[Approval, ...] = ()
    emergency: bool = False
    dry_run_plan: str = ""  # human summary of the plan shown on the card
    decided_by: str | None = None
    decision_reason: str = ""
    version: int = 0  # optimistic-concurrency counter, bumped by every stored transition
    extra: dict[str, object] = field(default_factory=dict, compare=False)  # e.g. "signature_note" for the card

    @property
    def retro_review(self) -> RetroReview | None:
        """An emergency's retro-review (DESIGN §5): due when, acknowledged by whom; None for other requests."""
        raw = self.extra.get(RETRO_REVIEW)
        if not isinstance(raw, Mapping):
            return None
        at = raw.get("acknowledged_at")
        return RetroReview(
            due=datetime.fromisoformat(str(raw["due"])),
            acknowledged_by=str(raw["acknowledged_by"]) if raw.get("acknowledged_by") else None,
            acknowledged_at=datetime.fromisoformat(str(at)) if at else None,
        )

    @property
    def approvals_missing(self) -> int:
        return max(self.required_approvals - len(self.approvals), 0)

    def approved_by(self, user_id: str) -> bool:
        return any(a.user_id == user_id for a in self.approvals)

    @property
    def withdrawn(self) -> bool:
        """Rejected by its own requester."""
        return self.state is RequestState.REJECTED and self.decided_by == self.requester


RETRO_REVIEW = "retro_review"  # key in ChangeRequest.extra


@dataclass(frozen=True)
class RetroReview:
    """An approver must acknowledge an emergency (human or automatic) within `retro_review_within`."""

    due: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.acknowledged_by is None

    def overdue(self, now: datetime) -> bool:
        return self.open and now >= self.due

    def as_extra(self) -> dict[str, object]:
        return {
            "due": self.due.isoformat(),
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
        }


CHANGE_ACTIONS = ("promote", "rollback")
TWO_PERSON = "two-person rule"  # PermissionDenied.rule when a requester tries to approve their own change


def change_digest(  # noqa: PLR0917 - the six parts of a change, in the order the service contract names them
    model: str,
    from_version: int | None,
    to_version: int,
    label: str,
    label_map: Mapping[str, int],
    generation: int,
) -> str:
    """sha256 of the canonical JSON of the exact change and the desired state it was computed from."""
    change = {
        "model": model,
        "from": from_version,
        "to": to_version,
        "label": label,
        "labels": {str(k): int(v) for k, v in label_map.items()},
        "generation": generation,
    }
    canonical = json.dumps(change, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ChangePlan:
    """What a request asks for: `action` on `model` from -> to under `label`, bound to the desired state it was
    computed from (`label_map`, `generation`), with the plan summary and signature check shown on its card."""

    action: str  # "rollback" | "promote"
    model: str
    from_version: int | None
    to_version: int
    label: str
    label_map: Mapping[str, int]
    generation: int
    emergency: bool = False
    summary: str = ""  # human summary of the rollout plan
    signature_note: str = ""

    @property
    def digest(self) -> str:
        return change_digest(
            self.model, self.from_version, self.to_version, self.label, self.label_map, self.generation
        )


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
