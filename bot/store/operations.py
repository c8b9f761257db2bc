"""Rollout operations and their per-replica outcome (what happened on the fleet, replica by replica)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, insert, select, update

from bot.core.desired import ModelState
from bot.core.fleet import RolloutResult
from bot.store.tables import operation_replicas, operations
from bot.store.tx import Tx


class OperationRepository:
    """An operation row is started before the fleet is touched and finished with the result, so an
    operation that never finished is evidence of a crash mid-rollout."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def start(
        self,
        request_id: int | None,
        model: str,
        at: datetime,
        *,
        holder: str | None = None,
        before: ModelState | None = None,
    ) -> int:
        """Record that a rollout of `model` begins, run by `holder` (the fleet-lock holder), from the model's
        desired state `before` (None: the model was not in the config), which recovery restores; returns its id."""
        values = {
            "request_id": request_id,
            "model": model,
            "started_at": at,
            "holder": holder,
            "before_state": json.dumps(before.to_dict() if before else None, sort_keys=True),
        }
        return self._tx.insert_id(insert(operations), values)

    def finish(self, op_id: int, result: RolloutResult, at: datetime) -> bool:
        """Record the outcome and one row per replica (replica, ok, phase, detail, served_version).
        Exactly once: False (and nothing written) when the operation was already finished, e.g. by the
        recovery of another process that took over a lapsed lease."""
        finished = self._tx.execute(
            update(operations)
            .where(operations.c.id == op_id, operations.c.finished_at.is_(None))
            .values(
                finished_at=at,
                outcome=result.outcome.value,
                message=result.message,
                phases_run=json.dumps(list(result.phases_run)),
                elapsed_s=result.elapsed_s,
            )
        )
        if finished.rowcount != 1:
            return False
        rows = [
            {
                "operation_id": op_id,
                "replica": r.replica,
                "ok": r.ok,
                "phase": r.phase,
                "detail": r.detail,
                "served_version": r.served_version,
            }
            for r in result.replicas
        ]
        if rows:
            self._tx.execute(insert(operation_replicas), rows)
        return True

    def get(self, op_id: int) -> dict[str, Any] | None:
        """One operation (same shape as `for_request` items), or None."""
        found = self._many(select(operations).where(operations.c.id == op_id))
        return found[0] if found else None

    def for_request(self, request_id: int) -> list[dict[str, Any]]:
        """The request's operations, oldest first: {"id", "request_id", "model", "started_at",
        "finished_at", "outcome", "message", "phases_run", "elapsed_s", "replicas": [{"replica",
        "ok", "phase", "detail", "served_version"}]}; outcome and finished_at are None while running."""
        return self._many(select(operations).where(operations.c.request_id == request_id).order_by(operations.c.id))

    def interrupted(self, older_than: datetime) -> list[dict[str, Any]]:
        """Operations started at or before `older_than` that never finished (restart recovery)."""
        statement = (
            select(operations)
            .where(operations.c.finished_at.is_(None), operations.c.started_at <= older_than)
            .order_by(operations.c.id)
        )
        return self._many(statement)

    def any_unfinished(self) -> bool:
        """Is any operation running now, or left unfinished by a dead process? (one indexed look-up)"""
        return (
            self._tx.execute(select(operations.c.id).where(operations.c.finished_at.is_(None)).limit(1)).first()
            is not None
        )

    def unfinished(self) -> list[dict[str, Any]]:
        """Every operation that has not finished, oldest first: running now, or left by a dead process."""
        return self._many(select(operations).where(operations.c.finished_at.is_(None)).order_by(operations.c.id))

    def before_state(self, op_id: int) -> tuple[bool, ModelState | None]:
        """(known, state): the model's desired state when the operation started (None: not in the config);
        known is False for operations recorded before the schema kept it."""
        raw = self._tx.execute(select(operations.c.before_state).where(operations.c.id == op_id)).scalar()
        if raw is None:
            return False, None
        data = json.loads(raw)
        return True, (ModelState.from_dict(data) if data else None)

    def _many(self, statement: Select[Any]) -> list[dict[str, Any]]:
        rows = self._tx.execute(statement).all()
        if not rows:
            return []
        ops = {row.id: _operation(row) for row in rows}
        replica_rows = self._tx.execute(
            select(operation_replicas)
            .where(operation_replicas.c.operation_id.in_(ops))
            .order_by(operation_replicas.c.id)
        )
        for r in replica_rows:
            ops[r.operation_id]["replicas"].append(
                {
                    "replica": r.replica,
                    "ok": r.ok,
                    "phase": r.phase,
                    "detail": r.detail,
                    "served_version": r.served_version,
                }
            )
        return list(ops.values())


def _operation(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "request_id": row.request_id,
        "model": row.model,
        "holder": row.holder,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "outcome": row.outcome,
        "message": row.message,
        "phases_run": json.loads(row.phases_run) if row.phases_run else [],
        "elapsed_s": row.elapsed_s,
        "replicas": [],
    }
