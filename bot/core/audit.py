"""The audit trail's hash chain (pure, standard library only).

Each row's `hash` is sha256(prev_hash + canonical_json(content)), where content is every field
except the two hashes, *including* `seq`. An edited row no longer matches its hash, a deleted row
leaves a gap and a prev_hash mismatch, and a swapped seq changes the content of both rows, so
`verify_chain` names the first seq where the story stops adding up. The store serialises appends
(one head row, locked), so the chain can never fork.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) uses for every str
from typing import Any

GENESIS = "0" * 64  # prev_hash of the first row


@dataclass(frozen=True)
class AuditEntry:
    """One audit row: who did what, with which outcome, chained to the row before it."""

    seq: int  # 1, 2, 3... without gaps
    at: datetime  # aware UTC
    actor: str  # Slack user id, "system", ...
    action: str  # e.g. "rollback.request", "approve", "rollout.finish"
    outcome: str  # e.g. "ok", "denied", "conflict", "SUCCEEDED"
    request_id: int | None
    model: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def content(self) -> dict[str, Any]:
        """The fields covered by `hash` (everything but the two hashes)."""
        return {
            "seq": self.seq,
            "at": format_time(self.at),
            "actor": self.actor,
            "action": self.action,
            "outcome": self.outcome,
            "request_id": self.request_id,
            "model": self.model,
            "detail": dict(self.detail),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by the audit channel mirror and `audit export`)."""
        return {**self.content(), "prev_hash": self.prev_hash, "hash": self.hash}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> AuditEntry:
        """Inverse of `to_dict`."""
        return AuditEntry(
            seq=int(data["seq"]),
            at=datetime.fromisoformat(str(data["at"])).astimezone(UTC),
            actor=str(data["actor"]),
            action=str(data["action"]),
            outcome=str(data["outcome"]),
            request_id=None if data.get("request_id") is None else int(data["request_id"]),
            model=None if data.get("model") is None else str(data["model"]),
            detail=dict(data.get("detail") or {}),
            prev_hash=str(data["prev_hash"]),
            hash=str(data["hash"]),
        )


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a chain check; `first_bad_seq` and `problem` are set when `ok` is False."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def format_time(at: datetime) -> str:
    """The one textual form of a timestamp inside hashed content (UTC, microseconds)."""
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _json_default(value: Any) -> Any:
    # Only types with one obvious, stable JSON form; anything else is a caller bug.
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"audit detail value of type {type(value).__name__} has no canonical JSON form")


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)  # built once: json.dumps with these arguments builds this very encoder on every call


def canonical_json(content: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 text kept, NaN/Infinity refused."""
    return _CANONICAL.encode(content)


def normalise_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """`detail` as it reads back after storage (tuples become lists, datetimes strings...)."""
    result = json.loads(canonical_json(dict(detail)))
    assert isinstance(result, dict)
    return result


def chain_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """sha256 hex of prev_hash followed by the canonical JSON of content."""
    return hashlib.sha256((prev_hash + canonical_json(content)).encode("utf-8")).hexdigest()


def seal(entry: AuditEntry) -> AuditEntry:
    """The entry with `hash` computed from its prev_hash and content."""
    return replace(entry, hash=chain_hash(entry.prev_hash, entry.content()))


def verify_chain(entries: Iterable[AuditEntry], head: tuple[int, str] | None = None) -> VerifyResult:
    """Check entries (in the order given, expected seq 1, 2, 3...) link up and match their hashes.

    `head` is the (seq, hash) the store recorded for the newest row; when given, rows missing from
    the end of the chain are detected too.
    """
    expected_seq, prev_hash, checked = 1, GENESIS, 0
    for entry in entries:
        problem = _link_problem(entry, expected_seq, prev_hash)
        if problem:
            bad = expected_seq if entry.seq > expected_seq else entry.seq
            return VerifyResult(ok=False, checked=checked, first_bad_seq=bad, problem=problem)
        checked += 1
        expected_seq, prev_hash = entry.seq + 1, entry.hash
    return _check_head(head, expected_seq, prev_hash, checked)


def verify_stored(
    rows: Iterable[Sequence[Any]],
    entry_of: Callable[[Sequence[Any]], AuditEntry],
    head: tuple[int, str] | None = None,
) -> VerifyResult:
    """`verify_chain` over stored rows, quicker: each row is a 10-tuple (seq, at, actor, action, outcome,
    request_id, model, detail, prev_hash, hash) where `detail` is the stored JSON text.

    A row whose stored detail is the very text that was hashed (every row `seal` and the store wrote) is checked by
    hashing the canonical content spliced around that text: no JSON parsing, no objects per row. Any other row (a
    link or a hash that does not add up this way) is rebuilt with `entry_of` and judged exactly as `verify_chain`
    judges it, so edits, deletions and reordering give the same first bad seq and problem. (The only input judged
    differently is a hash forged over non-canonical JSON, which `seal` never produces.)
    """
    expected_seq, prev_hash, checked = 1, GENESIS, 0
    sha256, quote = hashlib.sha256, encode_basestring
    for row in rows:
        seq, at, actor, action, outcome, request_id, model, detail, row_prev, row_hash = row
        if seq == expected_seq and row_prev == prev_hash and isinstance(detail, str):
            content = (
                f'{{"action":{quote(action)},"actor":{quote(actor)},"at":{quote(format_time(at))},"detail":{detail},'
                f'"model":{"null" if model is None else quote(model)},"outcome":{quote(outcome)},'
                f'"request_id":{"null" if request_id is None else int(request_id)},"seq":{int(seq)}}}'
            )
            if sha256((prev_hash + content).encode("utf-8")).hexdigest() == row_hash:
                checked += 1
                expected_seq, prev_hash = seq + 1, row_hash
                continue
        entry = entry_of(row)
        problem = _link_problem(entry, expected_seq, prev_hash)
        if problem:
            bad = expected_seq if entry.seq > expected_seq else entry.seq
            return VerifyResult(ok=False, checked=checked, first_bad_seq=bad, problem=problem)
        checked += 1
        expected_seq, prev_hash = entry.seq + 1, entry.hash
    return _check_head(head, expected_seq, prev_hash, checked)


def _check_head(head: tuple[int, str] | None, expected_seq: int, prev_hash: str, checked: int) -> VerifyResult:
    if head is not None:
        head_seq, head_hash = head
        if head_seq != expected_seq - 1:
            return VerifyResult(
                ok=False,
                checked=checked,
                first_bad_seq=expected_seq,
                problem=f"the chain ends at seq {expected_seq - 1} but the head records seq {head_seq}",
            )
        if head_seq and head_hash != prev_hash:
            return VerifyResult(
                ok=False,
                checked=checked,
                first_bad_seq=head_seq,
                problem=f"seq {head_seq}: hash differs from the one recorded in the head",
            )
    return VerifyResult(ok=True, checked=checked)


def _link_problem(entry: AuditEntry, expected_seq: int, prev_hash: str) -> str:
    if entry.seq > expected_seq:
        return f"seq {expected_seq} is missing (seq {entry.seq} follows seq {expected_seq - 1})"
    if entry.seq < expected_seq:
        return f"seq {entry.seq} is out of order (expected seq {expected_seq})"
    if entry.prev_hash != prev_hash:
        return f"seq {entry.seq}: prev_hash does not match the hash of seq {entry.seq - 1}"
    if entry.hash != chain_hash(entry.prev_hash, entry.content()):
        return f"seq {entry.seq}: hash does not match the row's content (edited?)"
    return ""
