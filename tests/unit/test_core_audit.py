"""The pure audit hash chain: canonical JSON, sealing, and tamper detection."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.audit import (
    GENESIS,
    AuditEntry,
    canonical_json,
    chain_hash,
    normalise_detail,
    seal,
    verify_chain,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        entry = seal(
            AuditEntry(
                seq=seq,
                at=T0 + timedelta(seconds=seq),
                actor=f"U{seq % 3}",
                action="approve",
                outcome="approved",
                request_id=seq,
                model="fraud_detector",
                detail={"n": seq, "reason": "INC-481 ünïcode"},
                prev_hash=prev,
            )
        )
        entries.append(entry)
        prev = entry.hash
    return entries


def test_canonical_json_is_independent_of_key_order() -> None:
    """Two dicts with the same items in a different order serialise identically, without spaces."""
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1}) == '{"a":[1,2],"b":1}'


def test_canonical_json_refuses_nan_and_unknown_types() -> None:
    """NaN and arbitrary objects have no canonical form and are refused rather than guessed."""
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError):
        canonical_json({"x": object()})


def test_normalise_detail_converts_datetimes_enums_sets_and_tuples() -> None:
    """Detail values with one obvious JSON form are converted the same way on every run."""

    class Colour(Enum):
        RED = "red"

    at = datetime(2025, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert normalise_detail({"t": at, "c": Colour.RED, "s": {3, 1}, "v": (1, 2)}) == {
        "t": "2025-01-01T12:00:00.000000+00:00",
        "c": "red",
        "s": [1, 3],
        "v": [1, 2],
    }


def test_chain_hash_depends_on_prev_hash_and_content() -> None:
    """Changing either the previous hash or the content changes the hash."""
    base = chain_hash(GENESIS, {"a": 1})
    assert len(base) == 64
    assert chain_hash("1" * 64, {"a": 1}) != base
    assert chain_hash(GENESIS, {"a": 2}) != base


def test_valid_chain_verifies() -> None:
    """An untouched chain verifies and reports how many rows it checked."""
    result = verify_chain(make_chain(10), head=(10, make_chain(10)[-1].hash))
    assert result.ok and result.checked == 10 and result.first_bad_seq is None


def test_empty_chain_verifies_against_empty_head() -> None:
    """No rows and a head at seq 0 is a valid (empty) trail."""
    assert verify_chain([], head=(0, GENESIS)).ok


def test_edited_row_is_detected_at_its_seq() -> None:
    """Changing a row's detail breaks its own hash, so verification names that seq."""
    chain = make_chain(10)
    chain[3] = replace(chain[3], detail={"n": 4, "reason": "nothing to see"})
    result = verify_chain(chain)
    assert not result.ok and result.first_bad_seq == 4 and "hash" in result.problem


def test_rehashed_edit_is_detected_at_the_next_row() -> None:
    """Re-sealing an edited row does not help: the next row's prev_hash no longer matches."""
    chain = make_chain(10)
    chain[3] = seal(replace(chain[3], outcome="denied"))
    result = verify_chain(chain)
    assert not result.ok and result.first_bad_seq == 5 and "prev_hash" in result.problem


def test_deleted_row_is_detected_as_missing_seq() -> None:
    """A gap in seq is reported as the first missing seq."""
    chain = make_chain(10)
    del chain[4]
    result = verify_chain(chain)
    assert not result.ok and result.first_bad_seq == 5 and "missing" in result.problem


def test_swapped_rows_are_detected() -> None:
    """Swapping the seq of two rows changes both rows' content, so the earlier seq is named."""
    chain = make_chain(10)
    a, b = chain[2], chain[6]
    chain[2], chain[6] = replace(b, seq=3), replace(a, seq=7)
    result = verify_chain(chain)
    assert not result.ok and result.first_bad_seq == 3


def test_out_of_order_iteration_is_detected() -> None:
    """Rows delivered out of seq order fail at the first row that goes backwards."""
    chain = make_chain(5)
    chain[1], chain[2] = chain[2], chain[1]
    result = verify_chain(chain)
    assert not result.ok and result.first_bad_seq == 2


def test_truncated_tail_is_detected_with_head() -> None:
    """Deleting the newest rows is only visible against the head, which still records the old end."""
    chain = make_chain(10)
    result = verify_chain(chain[:8], head=(10, chain[-1].hash))
    assert not result.ok and result.first_bad_seq == 9 and "head" in result.problem


def test_head_hash_mismatch_is_detected() -> None:
    """A head whose hash differs from the last row's hash fails at the head's seq."""
    chain = make_chain(3)
    result = verify_chain(chain, head=(3, "f" * 64))
    assert not result.ok and result.first_bad_seq == 3


def test_to_dict_round_trips() -> None:
    """from_dict(to_dict(e)) gives back an equal entry that still verifies."""
    chain = make_chain(3)
    again = [AuditEntry.from_dict(e.to_dict()) for e in chain]
    assert again == chain
    assert verify_chain(again).ok


def test_naive_timestamps_are_refused() -> None:
    """A naive datetime cannot be hashed: its meaning depends on the machine's time zone."""
    with pytest.raises(ValueError):
        seal(AuditEntry(1, datetime(2025, 1, 1), "U1", "a", "ok", None, None))


@given(
    index=st.integers(min_value=0, max_value=7),
    field=st.sampled_from(["actor", "action", "outcome", "model", "request_id", "detail", "at"]),
)
def test_any_single_field_edit_is_detected(index: int, field: str) -> None:
    """Whatever field of whatever row is changed, verification fails at exactly that row."""
    chain = make_chain(8)
    entry = chain[index]
    changed = {
        "actor": "UMALLORY",
        "action": "reject",
        "outcome": "denied",
        "model": "other",
        "request_id": 999,
        "detail": {"n": -1},
        "at": entry.at + timedelta(microseconds=1),
    }[field]
    chain[index] = replace(entry, **{field: changed})
    result = verify_chain(chain)
    assert not result.ok and result.first_bad_seq == entry.seq
