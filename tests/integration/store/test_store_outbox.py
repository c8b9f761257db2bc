"""The outbox: strict per-channel order, retry scheduling, leases for two replicas, idempotency keys."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.store import Database
from tests.integration.store.conftest import T0

SECOND = timedelta(seconds=1)


def enqueue(db: Database, *messages: tuple[str, str]) -> list[int]:
    with db.uow() as uow:
        ids = [uow.outbox.enqueue("card", channel, {"text": text}, at=T0) for channel, text in messages]
        uow.commit()
    return ids


def due_ids(db: Database, now=T0) -> list[int]:  # type: ignore[no-untyped-def]
    with db.uow() as uow:
        return [m.id for m in uow.outbox.due(now)]


def test_only_the_oldest_message_of_each_channel_is_due(db: Database) -> None:
    """due() offers one message per channel — its oldest undelivered one — in id order."""
    a1, b1, a2, c1, b2 = enqueue(db, ("A", "a1"), ("B", "b1"), ("A", "a2"), ("C", "c1"), ("B", "b2"))
    assert due_ids(db) == [a1, b1, c1]
    with db.uow() as uow:
        uow.outbox.mark_delivered(a1, T0, {"ts": "1.1"})
        uow.commit()
    assert due_ids(db) == [b1, a2, c1]
    with db.uow() as uow:
        assert uow.outbox.get(a1).response == {"ts": "1.1"}
        assert uow.outbox.get(a1).delivered_at == T0
        assert uow.outbox.pending_count() == 4
    assert b2 > b1


def test_new_messages_are_due_at_once_whatever_the_clock(db: Database) -> None:
    """A message never tried is due immediately, even for a deliverer whose clock lags the enqueuer's."""
    (a1,) = enqueue(db, ("A", "a1"))
    assert due_ids(db, T0 - timedelta(days=1)) == [a1]
    with db.uow() as uow:
        assert uow.outbox.get(a1).created_at == T0


def test_pending_lists_every_undelivered_message(db: Database) -> None:
    """pending() shows all undelivered messages (per channel if asked), not only the channel heads."""
    a1, b1, a2 = enqueue(db, ("A", "a1"), ("B", "b1"), ("A", "a2"))
    with db.uow() as uow:
        uow.outbox.mark_delivered(b1, T0, {})
        assert [m.id for m in uow.outbox.pending()] == [a1, a2]
        assert [m.id for m in uow.outbox.pending(channel="A", limit=1)] == [a1]


def test_a_failed_message_blocks_its_channel_until_its_retry_time(db: Database) -> None:
    """After a failure the message is retried at retry_at and later messages of its channel wait for it."""
    a1, a2, b1 = enqueue(db, ("A", "a1"), ("A", "a2"), ("B", "b1"))
    with db.uow() as uow:
        uow.outbox.mark_failed(a1, T0, "ratelimited", retry_at=T0 + 30 * SECOND)
        uow.commit()
    assert due_ids(db, T0 + SECOND) == [b1]
    assert due_ids(db, T0 + 30 * SECOND) == [a1, b1]
    with db.uow() as uow:
        failed = uow.outbox.get(a1)
    assert failed.attempts == 1 and failed.last_error == "ratelimited"
    assert failed.next_attempt_at == T0 + 30 * SECOND and failed.last_attempt_at == T0
    assert due_ids(db, T0 + 29 * SECOND) == [b1]
    assert a2 not in due_ids(db, T0 + 30 * SECOND)


def test_giving_up_unblocks_the_channel(db: Database) -> None:
    """A message given up on stops being pending and the next one of its channel becomes due."""
    a1, a2 = enqueue(db, ("A", "a1"), ("A", "a2"))
    with db.uow() as uow:
        uow.outbox.give_up(a1, T0, "channel_not_found")
        uow.commit()
    assert due_ids(db) == [a2]
    with db.uow() as uow:
        assert uow.outbox.pending_count() == 1
        assert uow.outbox.get(a1).abandoned_at == T0


def test_a_claimed_message_is_not_offered_to_another_replica_until_its_lease_ends(db: Database) -> None:
    """claim() leases a message to one holder; others neither see nor claim it until the lease expires."""
    (a1,) = enqueue(db, ("A", "a1"))
    with db.uow() as uow:
        assert uow.outbox.claim(a1, "replica-1", T0, 10 * SECOND)
        uow.commit()
    with db.uow() as uow:
        assert uow.outbox.due(T0 + SECOND) == []
        assert not uow.outbox.claim(a1, "replica-2", T0 + SECOND, 10 * SECOND)
        assert uow.outbox.claim(a1, "replica-2", T0 + 10 * SECOND, 10 * SECOND)  # lease expired: taken over
        uow.outbox.mark_delivered(a1, T0 + 11 * SECOND, {"ok": True})
        assert not uow.outbox.claim(a1, "replica-1", T0 + 60 * SECOND, 10 * SECOND)  # delivered: settled
        uow.commit()


def test_due_rows_are_skipped_while_another_transaction_holds_them(db: Database, db_url: str) -> None:
    """On PostgreSQL a second replica's due() skips rows locked by the first (FOR UPDATE SKIP LOCKED)."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite write transactions are exclusive: a second replica simply waits its turn")
    a1, b1 = enqueue(db, ("A", "a1"), ("B", "b1"))
    other = Database(db_url)
    with db.uow() as first:
        assert [m.id for m in first.outbox.due(T0, limit=1)] == [a1]
        with other.uow() as second:
            assert [m.id for m in second.outbox.due(T0)] == [b1]
    other.dispose()


def test_a_key_deduplicates_messages(db: Database) -> None:
    """Enqueueing twice with the same key keeps one message and returns its id."""
    with db.uow() as uow:
        first = uow.outbox.enqueue("card", "A", {"v": 1}, key="card:R1:PENDING", at=T0)
        again = uow.outbox.enqueue("card", "A", {"v": 2}, key="card:R1:PENDING", at=T0)
        other = uow.outbox.enqueue("card", "A", {"v": 3}, key="card:R1:APPROVED", at=T0)
        uow.commit()
    assert first == again != other
    with db.uow() as uow:
        assert uow.outbox.pending_count() == 2
        assert uow.outbox.get(first).payload == {"v": 1}


def test_due_respects_the_limit(db: Database) -> None:
    """due(limit=n) returns at most n messages, the oldest channels' heads first."""
    ids = enqueue(db, *[(f"C{i}", "x") for i in range(5)])
    with db.uow() as uow:
        assert [m.id for m in uow.outbox.due(T0, limit=2)] == ids[:2]
