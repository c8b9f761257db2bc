"""This process's hold on the fleet lock while it changes the fleet: taken once, renewed on a heartbeat for
as long as the work lasts (however long TF Serving takes to load), given up at the end.

A holder that stops renewing (it died, or lost the database for longer than `Deps.lease_s`) loses the fleet to
the recovery sweep of whichever process sees the lapsed lease first (bot/usecases/recovery.py). Every config
the work persists is fenced by the lease (`fence`), so a holder that lost it sends nothing more.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from datetime import timedelta

from bot.core.errors import Conflict, StoreUnavailable
from bot.texts import replies as texts
from bot.usecases.context import Deps
from bot.usecases.ports import UnitOfWork

log = logging.getLogger(__name__)


class LeaseLost(Conflict):
    """Another process took the fleet over (our lease lapsed): the work must stop sending."""


def ttl(deps: Deps) -> timedelta:
    return timedelta(seconds=deps.lease_s)


def acquire(deps: Deps, uow: UnitOfWork, *, recovering: bool = False) -> bool:
    """Take the fleet lock inside `uow` (effective when it commits); False while anyone holds a live lease, and,
    unless `recovering`, while a dead process's operation still waits for its recovery: a new rollout must never
    start on a fleet that a half-done one may have split."""
    if deps.running:  # this process is already changing the fleet (its lease may have lapsed in an outage)
        return False
    if not recovering and uow.operations.any_unfinished():
        return False
    return uow.fleet_lock.acquire(deps.holder, deps.clock(), ttl(deps))


def fence(deps: Deps, uow: UnitOfWork) -> None:
    """Renew the lease inside `uow`, or raise LeaseLost: whatever `uow` commits is then ours to send."""
    if not uow.fleet_lock.renew(deps.holder, deps.clock(), ttl(deps)):
        raise LeaseLost(texts.LEASE_LOST)


class Heartbeat:
    """Renews the lease every `Deps.heartbeat_s` on a daemon thread until `stop()`; `lost` once someone else
    holds it. A database outage only delays the beat: the lease stays ours until someone else takes it."""

    def __init__(self, deps: Deps, what: str) -> None:
        self._deps, self._what = deps, what
        self._stopped = threading.Event()
        self.lost = threading.Event()
        # The beat runs in a copy of the caller's context, so its log lines carry the rollout's ids.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._beat,), name=f"lease-{what}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self._deps.heartbeat_s + 1)

    def _beat(self) -> None:
        while not self._stopped.wait(self._deps.heartbeat_s):
            try:
                with self._deps.db.uow() as uow:
                    renewed = uow.fleet_lock.renew(self._deps.holder, self._deps.clock(), ttl(self._deps))
                    uow.commit()
            except StoreUnavailable as exc:
                log.warning("%s: could not renew the fleet lease: %s", self._what, exc)
                continue
            except Exception:
                log.exception("%s: renewing the fleet lease failed", self._what)
                continue
            if not renewed:
                log.error("%s: another process took the fleet lease over; sending nothing more", self._what)
                self.lost.set()
                return


def release(deps: Deps, uow: UnitOfWork) -> None:
    """Give the lease up inside `uow` (a no-op when someone else took it over)."""
    uow.fleet_lock.release(deps.holder)


__all__ = ["Heartbeat", "LeaseLost", "acquire", "fence", "release", "ttl"]
