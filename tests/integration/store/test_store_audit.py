"""The stored audit trail: chained appends, tamper detection, the audit-channel outbox, export."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import timedelta

import sqlalchemy as sa

from bot.core.audit import GENESIS, AuditEntry, verify_chain
from bot.store import Database, audit, audit_export
from tests.integration.store.conftest import AUDIT_CHANNEL, T0


def append_rows(db: Database, n: int) -> list[AuditEntry]:
    entries = []
    with db.uow() as uow:
        for i in range(n):
            entries.append(
                uow.audit.append(
                    at=T0 + timedelta(seconds=i),
                    actor="U01ALICE" if i % 2 else "U02BOB",
                    action="approve",
                    outcome="approved",
                    request_id=i + 1,
                    model="fraud_detector" if i % 3 else "churn",
                    detail={"i": i, "note": "ünïcode ✓", "ratio": 0.1 * i, "versions": (1, 2)},
                )
            )
        uow.commit()
    return entries


def raw(db: Database, sql: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def test_appends_form_a_chain_that_verifies(db: Database) -> None:
    """Rows get seq 1..n, each linked to the previous hash, and the stored trail verifies."""
    entries = append_rows(db, 7)
    assert [e.seq for e in entries] == list(range(1, 8))
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert entries[0].detail["versions"] == [1, 2]  # returned as it reads back
    result = audit_export.verify(db)
    assert result.ok and result.checked == 7


def test_stored_rows_read_back_identical(db: Database) -> None:
    """iter_all() returns exactly the entries append() returned (timestamps, floats and unicode included)."""
    entries = append_rows(db, 5)
    with db.uow(readonly=True) as uow:
        assert list(uow.audit.iter_all()) == entries
        assert uow.audit.head() == (5, entries[-1].hash)


def test_iter_all_pages_through_long_trails(db: Database) -> None:
    """More rows than one page are all returned, in order."""
    with db.uow() as uow:
        for i in range(audit.PAGE + 3):
            uow.audit.append(at=T0, actor="U1", action="a", outcome="ok", request_id=None, model=None, detail={"i": i})
        uow.commit()
    with db.uow(readonly=True) as uow:
        seqs = [e.seq for e in uow.audit.iter_all()]
    assert seqs == list(range(1, audit.PAGE + 4))


def test_recent_is_newest_first_and_filters_by_model(db: Database) -> None:
    """recent() lists the newest rows first, optionally only one model's, up to `limit`."""
    append_rows(db, 9)
    with db.uow(readonly=True) as uow:
        assert [e.seq for e in uow.audit.recent(limit=3)] == [9, 8, 7]
        assert [e.seq for e in uow.audit.recent(model="churn")] == [7, 4, 1]
        assert [e.seq for e in uow.audit.for_request(5)] == [5]


def test_rolled_back_append_leaves_no_gap(db: Database) -> None:
    """An append in a transaction that is rolled back does not consume a seq."""
    append_rows(db, 2)
    with db.uow() as uow:
        uow.audit.append(at=T0, actor="U1", action="a", outcome="ok", request_id=None, model=None, detail={})
    entries = append_rows(db, 1)
    assert entries[0].seq == 3
    assert audit_export.verify(db).ok


def test_edited_detail_is_detected(db: Database) -> None:
    """Changing one row's detail in the database makes verify fail at that row's seq."""
    append_rows(db, 10)
    raw(db, "UPDATE audit_log SET detail = :d WHERE seq = 4", d=json.dumps({"i": 3, "note": "nothing happened"}))
    result = audit_export.verify(db)
    assert not result.ok and result.first_bad_seq == 4


def test_edited_detail_into_invalid_json_is_detected(db: Database) -> None:
    """Even garbage in a row's detail is reported as a bad row rather than crashing verification."""
    append_rows(db, 5)
    raw(db, "UPDATE audit_log SET detail = 'not json' WHERE seq = 2")
    result = audit_export.verify(db)
    assert not result.ok and result.first_bad_seq == 2


def test_deleted_row_is_detected(db: Database) -> None:
    """Deleting a row from the middle makes verify fail naming the missing seq."""
    append_rows(db, 10)
    raw(db, "DELETE FROM audit_log WHERE seq = 6")
    result = audit_export.verify(db)
    assert not result.ok and result.first_bad_seq == 6 and "missing" in result.problem


def test_deleted_newest_rows_are_detected(db: Database) -> None:
    """Deleting the newest rows is caught by the head row, which still records the old end of the chain."""
    append_rows(db, 10)
    raw(db, "DELETE FROM audit_log WHERE seq >= 9")
    result = audit_export.verify(db)
    assert not result.ok and result.first_bad_seq == 9


def test_reordered_rows_are_detected(db: Database) -> None:
    """Swapping the seq of two rows makes verify fail at the earlier of the two."""
    append_rows(db, 10)
    raw(db, "UPDATE audit_log SET seq = -1 WHERE seq = 3")
    raw(db, "UPDATE audit_log SET seq = 3 WHERE seq = 7")
    raw(db, "UPDATE audit_log SET seq = 7 WHERE seq = -1")
    result = audit_export.verify(db)
    assert not result.ok and result.first_bad_seq == 3


def test_audit_channel_rows_are_queued_in_the_same_transaction(db_with_audit_channel: Database) -> None:
    """With an audit channel each appended row is queued in the outbox; a rollback drops both."""
    db = db_with_audit_channel
    with db.uow() as uow:
        entry = uow.audit.append(at=T0, actor="U1", action="a", outcome="ok", request_id=1, model="m", detail={})
        uow.commit()
    with db.uow() as uow:
        uow.audit.append(at=T0, actor="U1", action="b", outcome="ok", request_id=1, model="m", detail={})
    with db.uow() as uow:
        [message] = uow.outbox.due(T0)
        assert uow.outbox.pending_count() == 1
    assert message.kind == "audit" and message.channel == AUDIT_CHANNEL
    assert message.payload == entry.to_dict()
    assert AuditEntry.from_dict(message.payload) == entry


def test_no_audit_channel_means_no_outbox_message(db: Database) -> None:
    """Without an audit channel appends queue nothing."""
    append_rows(db, 3)
    with db.uow(readonly=True) as uow:
        assert uow.outbox.pending_count() == 0


def test_export_jsonl_round_trips_and_verifies(db: Database) -> None:
    """The JSON-lines export has one object per row that rebuilds entries which still verify."""
    entries = append_rows(db, 4)
    out = io.StringIO()
    assert audit_export.export(db, "jsonl", out) == 4
    lines = out.getvalue().splitlines()
    rebuilt = [AuditEntry.from_dict(json.loads(line)) for line in lines]
    assert rebuilt == entries
    assert verify_chain(rebuilt, head=(4, entries[-1].hash)).ok


def test_export_csv_has_a_header_and_one_row_per_entry(db: Database) -> None:
    """The CSV export has the documented columns, detail as canonical JSON, and verifiable hashes."""
    entries = append_rows(db, 3)
    out = io.StringIO()
    audit_export.export(db, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(audit_export.CSV_COLUMNS)
    assert [int(r["seq"]) for r in rows] == [1, 2, 3]
    rebuilt = [
        AuditEntry.from_dict(
            {**r, "detail": json.loads(r["detail"]), "request_id": r["request_id"] or None, "model": r["model"] or None}
        )
        for r in rows
    ]
    assert rebuilt == entries


def test_verify_of_an_empty_trail_is_ok(db: Database) -> None:
    """A brand-new database has an empty, valid trail."""
    result = audit_export.verify(db)
    assert result.ok and result.checked == 0
