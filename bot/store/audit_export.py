"""`modelbot audit verify` and `modelbot audit export`: read the whole trail in one consistent snapshot; and one
request's whole story (`request_story`) for `audit export --request` and `/model explain`."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from bot.core.approvals import ChangeRequest
from bot.core.audit import AuditEntry, VerifyResult, canonical_json
from bot.store.database import Database

ExportFormat = Literal["jsonl", "csv"]
CSV_COLUMNS = ("seq", "at", "actor", "action", "outcome", "request_id", "model", "detail", "prev_hash", "hash")


def verify(db: Database) -> VerifyResult:
    """Check the whole chain, in seq order, against the recorded head (detects edits, deletions
    anywhere including at the end, and reordering)."""
    with db.uow(readonly=True) as uow:
        return uow.audit.verify()


def export(db: Database, fmt: ExportFormat, out: TextIO) -> int:
    """Write every row in seq order to `out`, as JSON lines or CSV (detail as canonical JSON);
    returns the number of rows. Each row keeps prev_hash and hash, so the export can be verified."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r} (use jsonl or csv)")
    count = 0
    with db.uow(readonly=True) as uow:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n") if fmt == "csv" else None
        if writer is not None:
            writer.writeheader()
        for entry in uow.audit.iter_all():
            row = entry.to_dict()
            if writer is None:
                out.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
            else:
                writer.writerow({**row, "detail": canonical_json(row["detail"])})
            count += 1
    return count


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


def request_story(
    db: Database, request_id: int, roles_of: Callable[[str], Iterable[str]] | None = None
) -> RequestStory | None:
    """The story of request `request_id`, or None when no such request exists. `roles_of(user_id)` names the
    roles of each person in it (the requester, approvers, deciders and every audit actor)."""
    with db.uow(readonly=True) as uow:
        request = uow.requests.get(request_id)
        if request is None:
            return None
        rows = tuple(uow.audit.for_request(request_id))
        operations = tuple(uow.operations.for_request(request_id))
        head = uow.audit.head()
        chain = uow.audit.verify()
    people = [request.requester, *(a.user_id for a in request.approvals), *(e.actor for e in rows)]
    if request.decided_by:
        people.append(request.decided_by)
    review = request.retro_review
    if review is not None and review.acknowledged_by:
        people.append(review.acknowledged_by)
    roles = {user: tuple(sorted(roles_of(user))) if roles_of else () for user in dict.fromkeys(people)}
    return RequestStory(request, rows, operations, roles, chain, head)
