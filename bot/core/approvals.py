"""Change requests and the two-person approval state machine (pure).

PENDING -> APPROVED -> EXECUTING -> SUCCEEDED | PARTIAL | FAILED, plus REJECTED, EXPIRED, VOID.
Every transition is a function returning a new request or raising a ModelbotError; the store
persists it with a compare-and-set on `version`, so concurrent deciders cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class RequestState(str, Enum):
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
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def approvals_missing(self) -> int:
        return max(self.required_approvals - len(self.approvals), 0)

    def approved_by(self, user_id: str) -> bool:
        return any(a.user_id == user_id for a in self.approvals)
