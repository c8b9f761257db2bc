"""The desired ModelServerConfig (all models), owned by the bot because TF Serving cannot be asked."""

from __future__ import annotations

import json

from sqlalchemy import delete, insert, select, update

from bot.core.desired import FleetConfig, ModelState
from bot.store.tables import desired_meta, desired_models
from bot.store.tx import Tx

META_ID = 1


class DesiredRepository:
    """One row per model (ModelState.to_dict() as JSON, plus its generation)."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def load(self) -> FleetConfig | None:
        """The whole desired config, or None if it was never bootstrapped (saved) yet."""
        revision = self._tx.execute(select(desired_meta.c.revision).where(desired_meta.c.id == META_ID)).scalar()
        if not revision:
            return None
        rows = self._tx.execute(select(desired_models.c.state).order_by(desired_models.c.name)).scalars()
        return FleetConfig(models=tuple(ModelState.from_dict(json.loads(state)) for state in rows))

    def save(self, config: FleetConfig) -> None:
        """Replace the whole desired config (models absent from `config` are removed)."""
        # Updating the meta row first locks it, so concurrent savers queue instead of colliding on model rows.
        self._tx.execute(
            update(desired_meta).where(desired_meta.c.id == META_ID).values(revision=desired_meta.c.revision + 1)
        )
        # Only the rows that differ are written: a rollout phase changes one model of possibly thousands.
        rows = self._tx.execute(select(desired_models.c.name, desired_models.c.state)).all()
        stored = {str(row.name): str(row.state) for row in rows}
        wanted = {m.name: (m, json.dumps(m.to_dict(), sort_keys=True)) for m in config.models}
        stale = [name for name in stored if stored[name] != wanted.get(name, (None, None))[1]]
        if stale:
            self._tx.execute(delete(desired_models).where(desired_models.c.name.in_(stale)))
        fresh = [
            {"name": name, "generation": m.generation, "state": state}
            for name, (m, state) in wanted.items()
            if stored.get(name) != state
        ]
        if fresh:
            self._tx.execute(insert(desired_models), fresh)

    def get(self, model: str) -> ModelState | None:
        """One model's desired state, or None if the model is not in the desired config."""
        state = self._tx.execute(select(desired_models.c.state).where(desired_models.c.name == model)).scalar()
        return None if state is None else ModelState.from_dict(json.loads(state))

    def revision(self) -> int:
        """How many times the desired config was saved (0 = never bootstrapped)."""
        value = self._tx.execute(select(desired_meta.c.revision).where(desired_meta.c.id == META_ID)).scalar()
        return int(value or 0)
