"""Open drift episodes: a model whose replicas differ from the desired state, since when, and how."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy import exc as sa_exc

from bot.core.drift import Episode
from bot.store.tables import drift_episodes
from bot.store.tx import Tx


class DriftRepository:
    """At most one open episode per model (primary key), so two bot replicas never open it twice."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def open_episodes(self) -> dict[str, Episode]:
        """Every open episode, by model."""
        rows = self._tx.execute(select(drift_episodes)).all()
        return {row.model: Episode(row.model, row.since, json.loads(row.replicas)) for row in rows}

    def open(self, model: str, at: datetime, replicas: Mapping[str, Sequence[str]]) -> bool:
        """Start an episode; False (nothing written) when one is open already."""
        values = {"model": model, "since": at, "checked_at": at, "replicas": _json(replicas)}
        try:
            with self._tx.savepoint():
                self._tx.execute(insert(drift_episodes).values(**values))
        except sa_exc.IntegrityError:
            return False
        return True

    def update(self, model: str, at: datetime, replicas: Mapping[str, Sequence[str]]) -> None:
        """Record what differs now in the open episode."""
        statement = update(drift_episodes).where(drift_episodes.c.model == model)
        self._tx.execute(statement.values(checked_at=at, replicas=_json(replicas)))

    def close(self, model: str) -> bool:
        """End the episode (every replica agrees again); False when none was open."""
        return self._tx.execute(delete(drift_episodes).where(drift_episodes.c.model == model)).rowcount == 1


def _json(replicas: Mapping[str, Sequence[str]]) -> str:
    return json.dumps({r: list(v) for r, v in sorted(replicas.items())}, sort_keys=True)
