"""The fleet-wide rollout lease: exclusive, re-entrant for its holder, taken over after expiry."""

from __future__ import annotations

from datetime import timedelta

from bot.store import Database
from tests.integration.store.conftest import T0

TTL = timedelta(minutes=5)


def test_lock_is_exclusive_until_released(db: Database) -> None:
    """While replica-1 holds the lease replica-2 cannot take it; after release it can."""
    with db.uow() as uow:
        assert uow.fleet_lock.acquire("replica-1", T0, TTL)
        uow.commit()
    with db.uow() as uow:
        assert not uow.fleet_lock.acquire("replica-2", T0 + timedelta(minutes=1), TTL)
        assert uow.fleet_lock.holder(T0 + timedelta(minutes=1)) == "replica-1"
        assert not uow.fleet_lock.release("replica-2")
        assert uow.fleet_lock.release("replica-1")
        uow.commit()
    with db.uow() as uow:
        assert uow.fleet_lock.holder(T0) is None
        assert uow.fleet_lock.acquire("replica-2", T0 + timedelta(minutes=1), TTL)


def test_a_live_lease_is_not_reentrant_but_renews(db: Database) -> None:
    """Not even the holder can acquire a live lease twice (a sweep cannot cancel its own rollout); renewing
    pushes the expiry forward, and a lapsed lease nobody took can still be renewed by its holder."""
    with db.uow() as uow:
        assert uow.fleet_lock.acquire("replica-1", T0, TTL)
        assert not uow.fleet_lock.acquire("replica-1", T0 + timedelta(minutes=1), TTL)
        assert uow.fleet_lock.renew("replica-1", T0 + timedelta(minutes=4), TTL)
        assert uow.fleet_lock.renew("replica-1", T0 + timedelta(minutes=20), TTL)  # lapsed, but not taken
        assert uow.fleet_lock.renew("replica-1", T0 + timedelta(minutes=4), TTL)
        uow.commit()
    with db.uow() as uow:
        assert not uow.fleet_lock.acquire("replica-2", T0 + timedelta(minutes=8), TTL)
        assert not uow.fleet_lock.renew("replica-2", T0, TTL)


def test_an_expired_lease_is_taken_over(db: Database) -> None:
    """A holder that died stops blocking rollouts once its ttl has passed; its renewal then fails."""
    with db.uow() as uow:
        assert uow.fleet_lock.acquire("replica-1", T0, TTL)
        uow.commit()
    with db.uow() as uow:
        assert uow.fleet_lock.holder(T0 + TTL) is None
        assert uow.fleet_lock.acquire("replica-2", T0 + TTL, TTL)
        uow.commit()
    with db.uow() as uow:
        assert not uow.fleet_lock.renew("replica-1", T0 + TTL, TTL)
        assert not uow.fleet_lock.release("replica-1")
        assert uow.fleet_lock.holder(T0 + TTL) == "replica-2"


def test_an_uncommitted_acquire_takes_no_effect(db: Database) -> None:
    """The lease exists only once the unit of work that acquired it commits."""
    with db.uow() as uow:
        assert uow.fleet_lock.acquire("replica-1", T0, TTL)
    with db.uow() as uow:
        assert uow.fleet_lock.acquire("replica-2", T0, TTL)
