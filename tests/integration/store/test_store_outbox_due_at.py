"""Outbox messages queued with a due time (`enqueue(..., due_at=...)`): late, and holding nothing back meanwhile."""

from __future__ import annotations

from datetime import timedelta

from bot.store import Database
from tests.integration.store.conftest import T0

SECOND = timedelta(seconds=1)
LATER = T0 + 20 * SECOND


def _enqueue(db: Database, channel: str, text: str, **options: object) -> int:
    with db.uow() as uow:
        message_id = uow.outbox.enqueue("card", channel, {"text": text}, at=T0, **options)  # type: ignore[arg-type]
        uow.commit()
    return message_id


def _due(db: Database, now=T0) -> list[int]:  # type: ignore[no-untyped-def]
    with db.uow() as uow:
        return [m.id for m in uow.outbox.due(now)]


def _settle(db: Database, message_id: int, *, failed_until=None) -> None:  # type: ignore[no-untyped-def]
    with db.uow() as uow:
        if failed_until is None:
            uow.outbox.mark_delivered(message_id, T0, {})
        else:
            uow.outbox.mark_failed(message_id, T0, "TimeoutError", failed_until)
        uow.commit()


def test_a_delayed_message_waits_for_its_time_without_holding_back_its_channel(db: Database) -> None:
    """Before its due time a delayed message is skipped and later messages of its channel go first; then it is due."""
    a1 = _enqueue(db, "A", "a1")
    delayed = _enqueue(db, "A", "correction", due_at=LATER)
    a2 = _enqueue(db, "A", "a2")
    b1 = _enqueue(db, "B", "b1")
    with db.uow() as uow:
        queued = uow.outbox.get(delayed)
        assert queued is not None and queued.next_attempt_at == LATER and queued.attempts == 0
    assert _due(db) == [a1, b1]
    _settle(db, a1)
    assert _due(db) == [a2, b1]
    assert _due(db, LATER - SECOND) == [a2, b1]
    assert _due(db, LATER) == [delayed, b1]  # once due it takes its place by id, ahead of a2
    _settle(db, delayed)
    assert _due(db, LATER) == [a2, b1]


def test_a_delayed_message_that_failed_holds_its_channel_like_any_other(db: Database) -> None:
    """After a failed attempt a (formerly) delayed message is the channel's head and waits for its retry time."""
    delayed = _enqueue(db, "A", "correction", due_at=LATER)
    a1 = _enqueue(db, "A", "a1")
    _settle(db, delayed, failed_until=LATER + 20 * SECOND)
    assert _due(db, LATER + SECOND) == []  # a1 waits behind the failed message, order is kept
    assert _due(db, LATER + 20 * SECOND) == [delayed]
    _settle(db, delayed)
    assert _due(db, LATER + 20 * SECOND) == [a1]


def test_a_delayed_message_counts_as_pending(db: Database) -> None:
    """Until delivered, a delayed message is pending (operators and the modelbot_outbox_pending metric see it)."""
    delayed = _enqueue(db, "A", "correction", due_at=LATER)
    with db.uow() as uow:
        assert uow.outbox.pending_count() == 1
        assert [m.id for m in uow.outbox.pending()] == [delayed]
