"""Model registry metadata recorded by CI/CD (`modelbot register`): metrics and a note per version."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.store.tables import registry
from bot.store.tx import Tx


class RegistryRepository:
    """One row per (model, version); recording again replaces the earlier metadata."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def record(  # noqa: PLR0917 - positional order is the service's API (`modelbot register`)
        self, model: str, version: int, metrics: dict[str, float | str], note: str, actor: str, at: datetime
    ) -> None:
        """Record (or replace) the metadata of one model version."""
        values = {"metrics": json.dumps(metrics, sort_keys=True), "note": note, "actor": actor, "recorded_at": at}
        upsert = pg_insert if self._tx.dialect == "postgresql" else sqlite_insert
        statement = (
            upsert(registry)
            .values(model=model, version=version, **values)
            .on_conflict_do_update(index_elements=[registry.c.model, registry.c.version], set_=values)
        )
        self._tx.execute(statement)

    def get(self, model: str, version: int) -> dict[str, Any] | None:
        """{"model", "version", "metrics", "note", "actor", "at"} or None."""
        row = self._tx.execute(select(registry).where(registry.c.model == model, registry.c.version == version)).first()
        return None if row is None else _entry(row)

    def for_model(self, model: str) -> dict[int, dict[str, Any]]:
        """Every recorded version of a model: version -> the same dict as `get`."""
        rows = self._tx.execute(select(registry).where(registry.c.model == model).order_by(registry.c.version))
        return {row.version: _entry(row) for row in rows}


def _entry(row: Row[Any]) -> dict[str, Any]:
    return {
        "model": row.model,
        "version": row.version,
        "metrics": json.loads(row.metrics),
        "note": row.note,
        "actor": row.actor,
        "at": row.recorded_at,
    }
