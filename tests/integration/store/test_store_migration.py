"""Migration 0002 (64-bit ids and versions): a database written at 0001 upgrades with its data intact,
and afterwards holds ids and versions beyond 2^31 (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.core.audit import AuditEntry, canonical_json, seal
from bot.core.change_request import Approval, RequestState
from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.fleet import Outcome, ReplicaResult, RolloutResult
from bot.store import Database, audit_export
from bot.store import tables as t
from tests.integration.store.conftest import T0

BIG_VERSION = 20240101120000  # a timestamp-named version directory
BIG_ID = 999_999_999_999
INT64_MAX = 2**63 - 1
GENESIS = "0" * 64
# Every column migration 0002 widens, as (table, column); PostgreSQL must report each one as bigint.
WIDENED = [
    ("requests", "id"),
    ("requests", "from_version"),
    ("requests", "to_version"),
    ("requests", "model_generation"),
    ("approvals", "id"),
    ("approvals", "request_id"),
    ("desired_models", "generation"),
    ("desired_meta", "revision"),
    ("registry", "version"),
    ("operations", "id"),
    ("operations", "request_id"),
    ("operation_replicas", "id"),
    ("operation_replicas", "operation_id"),
    ("operation_replicas", "served_version"),
    ("audit_log", "seq"),
    ("audit_log", "request_id"),
    ("audit_head", "seq"),
    ("outbox", "id"),
]
SERIAL_KEYS = ("requests", "approvals", "operations", "operation_replicas", "outbox")


@pytest.fixture
def old_db(db_url: str) -> Iterator[Database]:
    """A database at revision 0001 holding what a 0001 modelbot wrote: a decided request with an
    approval, a three-row audit chain, a desired state, a finished operation and two outbox messages."""
    database = Database(db_url, audit_channel="C0AUDIT")
    database.upgrade("0001")
    with database.engine.begin() as conn:
        _write_0001_rows(conn)
    yield database
    database.dispose()


def _write_0001_rows(conn: sa.Connection) -> None:
    """Only the columns revision 0001 has, so later migrations that add columns leave this test valid."""
    conn.execute(sa.insert(t.requests).values(**_request_row()))
    conn.execute(sa.insert(t.approvals).values(request_id=1, user_id="U02BOB", at=T0 + timedelta(minutes=2)))
    prev = GENESIS
    for seq, (actor, action, outcome) in enumerate(
        [("U01ALICE", "rollback", "requested"), ("U02BOB", "approve", "approved"), ("U02BOB", "execute", "succeeded")],
        start=1,
    ):
        entry = seal(
            AuditEntry(seq, T0 + timedelta(minutes=seq), actor, action, outcome, 1, "fraud_detector", {"to": 2}, prev)
        )
        conn.execute(sa.insert(t.audit_log).values(**_audit_row(entry)))
        prev = entry.hash
    conn.execute(sa.update(t.audit_head).values(seq=3, hash=prev))
    conn.execute(sa.update(t.desired_meta).values(revision=4))
    state = ModelState("fraud_detector", "/models/fraud_detector", policy=VersionPolicy.specific([2, 3]), generation=4)
    conn.execute(sa.insert(t.desired_models).values(name=state.name, generation=4, state=json.dumps(state.to_dict())))
    conn.execute(
        sa.insert(t.operations).values(
            request_id=1,
            model="fraud_detector",
            started_at=T0 + timedelta(minutes=3),
            finished_at=T0 + timedelta(minutes=4),
            outcome="succeeded",
            message="",
            phases_run='["switch"]',
            elapsed_s=1.5,
        )
    )
    for replica in ("r1", "r2"):
        conn.execute(
            sa.insert(t.operation_replicas).values(
                operation_id=1, replica=replica, ok=True, phase="verify", detail="stable -> v2", served_version=2
            )
        )
    for key, delivered in (("card:1", T0), ("audit:3", None)):
        conn.execute(
            sa.insert(t.outbox).values(
                kind="card",
                channel="C0OPS",
                payload='{"request_id": 1}',
                key=key,
                created_at=T0,
                next_attempt_at=T0,
                attempts=1 if delivered else 0,
                delivered_at=delivered,
            )
        )


def _request_row() -> dict[str, Any]:
    return {
        "action": "rollback",
        "model": "fraud_detector",
        "open_model": None,
        "from_version": 3,
        "to_version": 2,
        "label": "stable",
        "reason": "INC-481 false positives",
        "requester": "U01ALICE",
        "created_at": T0,
        "expires_at": T0 + timedelta(minutes=30),
        "required_approvals": 1,
        "approver_roles": '["approver"]',
        "digest": "d" * 64,
        "model_generation": 4,
        "state": "SUCCEEDED",
        "emergency": False,
        "dry_run_plan": "r1 r2: stable 3 -> 2",
        "decided_by": "U02BOB",
        "decision_reason": "",
        "version": 3,
        "extra": "{}",
    }


def _audit_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "outcome": entry.outcome,
        "request_id": entry.request_id,
        "model": entry.model,
        "detail": canonical_json(entry.detail),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def test_upgrade_from_0001_keeps_every_row(old_db: Database) -> None:
    """Request, approval, audit chain, desired state, operation and outbox written at 0001 read back intact at head."""
    old_db.upgrade()
    assert audit_export.verify(old_db).ok
    with old_db.uow(readonly=True) as uow:
        req = uow.requests.get(1)
        assert req is not None
        assert (req.state, req.from_version, req.to_version, req.version) == (RequestState.SUCCEEDED, 3, 2, 3)
        assert req.approvals == (Approval("U02BOB", T0 + timedelta(minutes=2)),)
        assert [e.action for e in uow.audit.for_request(1)] == ["rollback", "approve", "execute"]
        assert uow.audit.head()[0] == 3
        assert uow.desired.revision() == 4
        config = uow.desired.load()
        assert config is not None and config.model("fraud_detector").policy.versions == (2, 3)  # type: ignore[union-attr]
        (operation,) = uow.operations.for_request(1)
        assert operation["outcome"] == "succeeded"
        assert [(r["replica"], r["served_version"]) for r in operation["replicas"]] == [("r1", 2), ("r2", 2)]
        assert [m.key for m in uow.outbox.pending()] == ["audit:3"]


def test_after_upgrade_ids_and_versions_beyond_32_bits_round_trip(old_db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """Past 2^31: a request id, versions up to 2^63-1, generations, an operation, audit and outbox ids all store."""
    old_db.upgrade()
    _advance_ids_to(old_db, BIG_ID - 1)
    at = T0 + timedelta(days=1)
    with old_db.uow() as uow:
        req = uow.requests.add(make_request(from_version=INT64_MAX, to_version=BIG_VERSION, model_generation=INT64_MAX))
        assert req.id == BIG_ID
        approved = replace(req, state=RequestState.APPROVED, approvals=(Approval("U02BOB", at),))
        uow.requests.save(approved, req.version)
        uow.audit.append(
            at=at, actor="U02BOB", action="approve", outcome="approved", request_id=req.id, model=req.model,
            detail={"to_version": BIG_VERSION},
        )  # fmt: skip
        uow.registry.record("fraud_detector", BIG_VERSION, {"auc": 0.95}, "nightly", "ci", at)
        big = ModelState(
            "fraud_detector", "/models/x", policy=VersionPolicy.specific([BIG_VERSION]), generation=INT64_MAX
        )
        uow.desired.save(FleetConfig((big,)))
        op_id = uow.operations.start(req.id, req.model, at)
        replicas = (ReplicaResult("r1", True, "verify", f"stable -> v{BIG_VERSION}", BIG_VERSION),)
        uow.operations.finish(op_id, RolloutResult(Outcome.SUCCEEDED, replicas, ""), at)
        message_id = uow.outbox.enqueue("card", "C0OPS", {"request_id": req.id}, at=at)
        uow.commit()
    with old_db.uow(readonly=True) as uow:
        stored = uow.requests.get(BIG_ID)
        assert stored is not None
        assert (stored.from_version, stored.to_version, stored.model_generation) == (INT64_MAX, BIG_VERSION, INT64_MAX)
        assert stored.approvals == (Approval("U02BOB", at),)
        assert uow.audit.for_request(BIG_ID)[0].detail == {"to_version": BIG_VERSION}
        assert list(uow.registry.for_model("fraud_detector")) == [BIG_VERSION]
        assert uow.desired.get("fraud_detector").generation == INT64_MAX  # type: ignore[union-attr]
        (operation,) = uow.operations.for_request(BIG_ID)
        assert operation["id"] == op_id >= BIG_ID
        assert operation["replicas"][0]["served_version"] == BIG_VERSION
        assert message_id >= BIG_ID and uow.outbox.get(message_id) is not None
    assert audit_export.verify(old_db).ok


def test_postgres_columns_and_sequences_are_bigint(old_db: Database) -> None:
    """On PostgreSQL every widened column is bigint after the upgrade, and so is every SERIAL key's sequence."""
    if old_db.dialect != "postgresql":
        pytest.skip("SQLite's INTEGER is 64-bit already; 0002 leaves SQLite files as they are")
    old_db.upgrade()
    with old_db.engine.connect() as conn:
        types = {
            (row.table_name, row.column_name): row.data_type
            for row in conn.execute(
                sa.text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = current_schema()"
                )
            )
        }
        sequence_types = [
            conn.execute(
                sa.text(
                    "SELECT data_type::text FROM pg_sequences"
                    " WHERE format('%I.%I', schemaname, sequencename)::regclass"
                    " = pg_get_serial_sequence(:table, 'id')::regclass"
                ),
                {"table": table},
            ).scalar_one()
            for table in SERIAL_KEYS
        ]
    assert {column: types[column] for column in WIDENED} == dict.fromkeys(WIDENED, "bigint")
    assert sequence_types == ["bigint"] * len(SERIAL_KEYS)


def _advance_ids_to(db: Database, last: int) -> None:
    """Make the next generated id of every autoincrement table `last + 1` (PostgreSQL refuses a value its
    sequence's type cannot hold, so this also proves the sequences were widened)."""
    with db.engine.begin() as conn:
        for table in SERIAL_KEYS:
            if db.dialect == "postgresql":
                conn.execute(sa.text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v)"), {"t": table, "v": last})
            elif table in ("requests", "operations", "outbox"):  # AUTOINCREMENT: the next id follows sqlite_sequence
                conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t"), {"t": table})
                conn.execute(
                    sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :v)"), {"t": table, "v": last}
                )
