"""What the database knows that /metrics exports, read at scrape time (each read on its own: one that fails drops
only its own families)."""

from __future__ import annotations

from collections import Counter

from bot.core.change_request import RequestState
from bot.usecases.context import Deps


def outbox_pending(deps: Deps) -> int:
    """Messages queued and not yet delivered nor given up."""
    with deps.db.uow(readonly=True) as uow:
        return uow.outbox.pending_count()


def outbox_oldest_age_s(deps: Deps) -> float | None:
    """Age of the oldest pending message, in seconds (None: nothing pending)."""
    with deps.db.uow(readonly=True) as uow:
        oldest = uow.outbox.oldest_pending_created_at()
    return None if oldest is None else max(0.0, (deps.clock() - oldest).total_seconds())


def approvals_pending(deps: Deps) -> dict[str, int]:
    """PENDING requests by action."""
    with deps.db.uow(readonly=True) as uow:
        waiting = [r for r in uow.requests.list_open() if r.state is RequestState.PENDING]
    return dict(Counter(r.action for r in waiting))


def retro_reviews_open(deps: Deps) -> int:
    """Finished emergencies whose retro-review nobody has acknowledged yet."""
    with deps.db.uow(readonly=True) as uow:
        return sum(
            1 for r in uow.requests.emergencies() if r.retro_review and r.retro_review.open and not r.state.is_open
        )


def drifted(deps: Deps) -> dict[str, list[str]]:
    """Model -> the replicas of its open drift episode."""
    with deps.db.uow(readonly=True) as uow:
        return {model: sorted(e.replicas) for model, e in uow.drift.open_episodes().items()}
