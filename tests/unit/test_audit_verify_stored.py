"""verify_stored (the fast path `audit verify` uses) gives exactly verify_chain's verdict on stored rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.core.audit import GENESIS, AuditEntry, canonical_json, seal, verify_chain, verify_stored

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _chain(n: int) -> list[AuditEntry]:
    entries, prev = [], GENESIS
    for i in range(1, n + 1):
        entry = seal(
            AuditEntry(
                seq=i,
                at=T0 + timedelta(seconds=i, microseconds=i),
                actor='U1 "quoted" \\ ünï' if i % 2 else "U2",
                action="approve",
                outcome="approved",
                request_id=None if i == 2 else i,
                model=None if i == 3 else "fraud_detector",
                detail={"i": i, "ratio": 0.1 * i, "note": "✓ </script>", "nested": {"b": [1, 2], "a": None}},
                prev_hash=prev,
            )
        )
        entries.append(entry)
        prev = entry.hash
    return entries


def _row(e: AuditEntry, detail: str | None = None) -> tuple[Any, ...]:
    text = canonical_json(e.detail) if detail is None else detail
    return (e.seq, e.at, e.actor, e.action, e.outcome, e.request_id, e.model, text, e.prev_hash, e.hash)


ACTOR, DETAIL, PREV_HASH = 2, 7, 8  # columns of a stored row


def _set(rows: list[tuple[Any, ...]], index: int, column: int, value: object) -> None:
    row = list(rows[index])
    row[column] = value
    rows[index] = tuple(row)


def _entry_of(row: Sequence[Any]) -> AuditEntry:
    seq, at, actor, action, outcome, request_id, model, detail, prev_hash, hash_ = row
    try:
        parsed = json.loads(detail)
    except ValueError:
        parsed = {"unreadable_detail": detail}
    return AuditEntry(seq, at, actor, action, outcome, request_id, model, parsed, prev_hash, hash_)


def test_intact_chain_verifies_like_verify_chain() -> None:
    """An intact chain (quotes, backslashes, unicode, nulls, floats) passes both checks with the same count."""
    entries = _chain(6)
    head = (6, entries[-1].hash)
    assert verify_stored([_row(e) for e in entries], _entry_of, head) == verify_chain(entries, head)
    assert verify_stored([_row(e) for e in entries], _entry_of, head).ok


@pytest.mark.parametrize(
    "tamper",
    [
        lambda rows: _set(rows, 3, ACTOR, "U666"),
        lambda rows: _set(rows, 2, DETAIL, '{"i":3}'),
        lambda rows: _set(rows, 1, DETAIL, "not json"),
        lambda rows: rows.pop(4),
        lambda rows: rows.pop(),
        lambda rows: rows.insert(2, rows.pop(4)),
        lambda rows: _set(rows, 2, PREV_HASH, "0" * 64),
    ],
    ids=["actor", "detail", "garbage-detail", "deleted", "deleted-newest", "reordered", "prev-hash"],
)
def test_tampering_gives_the_same_verdict(tamper: Any) -> None:
    """Edits, deletions, reordering and broken links give the same first bad seq and problem as verify_chain."""
    entries = _chain(6)
    head = (6, entries[-1].hash)
    rows = [_row(e) for e in entries]
    tamper(rows)
    expected = verify_chain([_entry_of(r) for r in rows], head)
    assert not expected.ok
    assert verify_stored(rows, _entry_of, head) == expected


def test_equivalent_but_non_canonical_detail_still_verifies() -> None:
    """A detail stored as other JSON for the same object verifies, as verify_chain (which re-serialises it) says."""
    entries = _chain(3)
    rows = [_row(e) for e in entries]
    rows[1] = _row(entries[1], json.dumps(dict(entries[1].detail), indent=2))
    head = (3, entries[-1].hash)
    assert verify_stored(rows, _entry_of, head) == verify_chain([_entry_of(r) for r in rows], head)
    assert verify_stored(rows, _entry_of, head).ok
