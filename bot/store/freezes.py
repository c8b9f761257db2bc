"""Ad-hoc freezes: added by `/model freeze`, lifted by `/model unfreeze` or by their `until` passing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, insert, or_, select, update

from bot.core.freeze import ALL_MODELS, Freeze
from bot.store.tables import freezes
from bot.store.tx import Tx


class FreezeRepository:
    """Freezes by model ("*" for every model); the newest active one speaks for a model."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def add(self, model: str, reason: str, actor: str, at: datetime, until: datetime | None) -> int:
        """Freeze `model` (or "*") from `at` until `until` (None: until lifted)."""
        values = {"model": model, "reason": reason, "actor": actor, "created_at": at, "until": until}
        return self._tx.insert_id(insert(freezes), values)

    def active(self, model: str, now: datetime) -> Freeze | None:
        """The newest freeze in force for `model` (its own or an all-models one), if any."""
        row = self._tx.execute(
            select(freezes)
            .where(freezes.c.model.in_([model, ALL_MODELS]), _in_force(now))
            .order_by(freezes.c.id.desc())
            .limit(1)
        ).first()
        return None if row is None else _freeze(row, model)

    def lift(self, model: str, actor: str, now: datetime) -> int:
        """Lift every freeze of `model` ("*": the all-models ones) in force now; returns how many."""
        statement = (
            update(freezes).where(freezes.c.model == model, _in_force(now)).values(lifted_at=now, lifted_by=actor)
        )
        return int(self._tx.execute(statement).rowcount)


def _in_force(now: datetime) -> ColumnElement[bool]:
    return and_(freezes.c.lifted_at.is_(None), or_(freezes.c.until.is_(None), freezes.c.until > now))


def _freeze(row: Row[Any], model: str) -> Freeze:
    return Freeze(model, str(row.reason), actor=str(row.actor), since=row.created_at, until=row.until)
