"""What a change request is (pure data): its states, approvals, retro-review, and the plan and digest that bind it
to the exact desired state it was computed from. The rules and transitions that act on it are in
bot/core/approvals.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


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
