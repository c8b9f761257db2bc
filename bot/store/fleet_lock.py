"""One rollout at a time across the whole fleet: a TF Serving reload replaces the whole model list,
so two concurrent rollouts (even of different models) would overwrite each other's config.

The lock is a lease in a single row: it takes effect when the unit of work commits. The process that
holds it renews it on a heartbeat for as long as its work lasts (bot/usecases/lease.py), so only a holder
that died (or lost the database for longer than the lease) is replaced once its lease expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update

from bot.store.tables import FLEET_LOCK_NAME, fleet_lock
from bot.store.tx import Tx

_ROW = fleet_lock.c.name == FLEET_LOCK_NAME
# Built once with bound parameters: the lease is renewed every few seconds and taken on every rollout.
_ACQUIRE = (
    update(fleet_lock)
    .where(_ROW, or_(fleet_lock.c.holder.is_(None), fleet_lock.c.expires_at <= bindparam("now")))
    .values(
        holder=bindparam("new_holder"),
        acquired_at=bindparam("new_acquired_at"),
        expires_at=bindparam("new_expires_at"),
    )
)
_RENEW = (
    update(fleet_lock)
    .where(_ROW, fleet_lock.c.holder == bindparam("who"))
    .values(expires_at=bindparam("new_expires_at"))
)
_RELEASE = (
    update(fleet_lock)
    .where(_ROW, fleet_lock.c.holder == bindparam("who"))
    .values(holder=None, acquired_at=None, expires_at=None)
)


class FleetLockRepository:
    """Acquire / renew / release the fleet-wide rollout lease."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def acquire(self, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take the lease until now + ttl if it is free or expired; False otherwise.

        Not re-entrant: a live lease, even our own, is never taken again, so two pieces of work of one
        process (a rollout and a recovery sweep) cannot both believe they hold the fleet."""
        # A single conditional UPDATE: on PostgreSQL a concurrent acquirer waits for our row lock,
        # then re-checks the condition against the committed holder and updates nothing.
        params = {"new_holder": holder, "now": now, "new_acquired_at": now, "new_expires_at": now + ttl}
        return self._tx.execute(_ACQUIRE, params).rowcount == 1

    def renew(self, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Extend our lease to now + ttl; False if someone else holds it (ours expired and was taken).
        A lapsed lease that nobody took is still ours to renew."""
        return self._tx.execute(_RENEW, {"who": holder, "new_expires_at": now + ttl}).rowcount == 1

    def release(self, holder: str) -> bool:
        """Give the lease up if we hold it; False (and nothing changes) otherwise."""
        return self._tx.execute(_RELEASE, {"who": holder}).rowcount == 1

    def holder(self, now: datetime) -> str | None:
        """Who holds a live lease right now, if anyone (for status and error messages)."""
        row = self._tx.execute(select(fleet_lock.c.holder, fleet_lock.c.expires_at).where(_ROW)).first()
        if row is None or row.holder is None or row.expires_at is None or row.expires_at <= now:
            return None
        return str(row.holder)
