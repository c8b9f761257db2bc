"""One request's whole story for a postmortem (`/model explain`, `audit export --request`): pure values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.core.audit import AuditEntry, VerifyResult
from bot.core.change_request import ChangeRequest


@dataclass(frozen=True)
class RequestStory:
    """One request's whole story for a postmortem, read in one snapshot: the request, every audit row about it
    (oldest first), its rollout operations with their per-replica rows, the roles of everyone who acted on it,
    and the proof that the whole chain (these rows included) verifies up to the recorded head."""

    request: ChangeRequest
    rows: tuple[AuditEntry, ...]
    operations: tuple[dict[str, Any], ...]
    roles: dict[str, tuple[str, ...]]  # user id -> roles (permissions.yaml as it reads now)
    chain: VerifyResult
    head: tuple[int, str]

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(a.user_id for a in self.request.approvals)

    @property
    def alert(self) -> object | None:
        """The alert that led to the request, when one is linked (request.extra "alert")."""
        return self.request.extra.get("alert")
