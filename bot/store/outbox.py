"""Durable outbox: Slack messages written in the same transaction as the change they announce,
delivered later (and retried) by the Slack front end, strictly in order per channel (a message queued
with a later `due_at` joins that order only once it is due: see `due`).

Delivery loop (two bot replicas may run it at once):

    with db.uow() as uow:                  # 1. pick and lease a batch, commit quickly
        batch = [m for m in uow.outbox.due(now) if uow.outbox.claim(m.id, me, now, lease)]
        uow.commit()
    for m in batch:                        # 2. call Slack outside any transaction
        ...
        with db.uow() as uow:              # 3. record the result
            uow.outbox.mark_delivered(m.id, at, response)   # or mark_failed(..., retry_at) / give_up(...)
            uow.commit()

A message whose lease expired (its deliverer died) is offered again, so delivery is at-least-once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, update
from sqlalchemy import exc as sa_exc

from bot.core.outbox import OutboxMessage
from bot.store.tables import outbox
from bot.store.tx import Tx

MAX_ERROR_CHARS = 2000
# next_attempt_at of a message never tried: due at once, whatever the deliverer's clock says.
NEW_MESSAGE_DUE = datetime(1970, 1, 1, tzinfo=UTC)


_PENDING = and_(outbox.c.delivered_at.is_(None), outbox.c.abandoned_at.is_(None))


_INSERT = insert(outbox)  # values passed as parameters: one cached statement


class OutboxRepository:
    """Queue, pick, lease and settle outbox messages."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self._cards: set[int] = set()  # requests whose card re-render this transaction already queued

    def enqueue(
        self,
        kind: str,
        channel: str,
        payload: dict[str, Any],
        key: str | None = None,
        *,
        at: datetime | None = None,
        fresh_key: bool = False,
        due_at: datetime | None = None,
    ) -> int:
        """Queue a message, due at once; returns its id. `at` is recorded as created_at (default:
        the wall clock). With a `key` queued before, nothing is added and the earlier id is returned.
        `fresh_key`: the caller guarantees the key is new (an audit row's sequence number, allocated under
        the chain's lock), so neither the look-up nor the savepoint is needed.
        `due_at`: not delivered before then (in the deliverer's clock); until then it does not hold back the
        later messages of its channel (see `due`)."""
        if key is not None and not fresh_key:
            existing = self._id_for_key(key)
            if existing is not None:
                return existing
        when = at or datetime.now(UTC)
        values = {
            "kind": kind,
            "channel": channel,
            "payload": json.dumps(payload, sort_keys=True, default=str),
            "key": key,
            "created_at": when,
            "next_attempt_at": due_at or NEW_MESSAGE_DUE,
            "attempts": 0,
        }
        if key is None or fresh_key:  # nothing to collide with: no savepoint round trips on the hot path
            return self._tx.insert_id(_INSERT, values)
        try:
            with self._tx.savepoint():
                message_id = self._tx.insert_id(_INSERT, values)
        except sa_exc.IntegrityError:
            existing = self._id_for_key(key)
            if existing is None:
                raise
            return existing
        return message_id

    def enqueue_card(self, channel: str, request_id: int, state: str) -> None:
        """Queue a re-render of the request's card; once per transaction, since the card is rendered from the
        request's state at delivery (an approval that also starts the execution needs one update, not two)."""
        if request_id in self._cards:
            return
        self._cards.add(request_id)
        self.enqueue("card", channel, {"request_id": request_id, "state": state})

    def due(self, now: datetime, limit: int = 50) -> list[OutboxMessage]:
        """Messages to deliver now, in id order: for each channel only its oldest undelivered
        message, and only if its next attempt is due and nobody holds a live lease on it. On
        PostgreSQL the rows are locked (FOR UPDATE SKIP LOCKED) until this transaction ends, so a
        second replica picking at the same moment gets other channels, never the same message.

        A message queued with a later `due_at` and not yet due is left out of its channel's order: the
        messages queued after it go first. It is deliberately not a head that blocks the channel, because
        what is delayed on purpose is a re-render of a card from the database (a correction after a
        Slack call whose fate is unknown): it says nothing new, so nothing needs to wait behind it, and
        holding back the channel would delay the other cards and the very outcome it makes sure of. Once
        due it takes its place by id like any message; after a failed attempt it blocks like any other."""
        earlier = outbox.alias("earlier")
        channel_head = (
            select(func.min(earlier.c.id))
            .where(earlier.c.channel == outbox.c.channel, earlier.c.delivered_at.is_(None))
            .where(earlier.c.abandoned_at.is_(None))
            .where(or_(earlier.c.attempts > 0, earlier.c.next_attempt_at <= now))  # not a delayed one, or due
            .scalar_subquery()
        )
        statement = (
            select(outbox)
            .where(outbox.c.id == channel_head, outbox.c.next_attempt_at <= now)
            .where(or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now))
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if self._tx.dialect == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        return [_message(row) for row in self._tx.execute(statement)]

    def claim(self, message_id: int, holder: str, now: datetime, lease: timedelta) -> bool:
        """Lease a pending message to `holder` until now + lease; False if another holder has a live
        lease or the message is settled. Commit the claim before calling Slack."""
        statement = (
            update(outbox)
            .where(outbox.c.id == message_id, _PENDING)
            .where(or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now, outbox.c.claimed_by == holder))
            .values(claimed_by=holder, claimed_until=now + lease)
        )
        return self._tx.execute(statement).rowcount == 1

    def mark_delivered(self, message_id: int, at: datetime, response: dict[str, Any]) -> None:
        """Slack accepted the message; `response` (e.g. {"ts": ...}) is kept for later updates."""
        self._settle(message_id, at, delivered_at=at, response=json.dumps(response, sort_keys=True, default=str))

    def mark_failed(self, message_id: int, at: datetime, error: str, retry_at: datetime) -> None:
        """A delivery attempt failed; try again at `retry_at` (the channel waits: order is kept)."""
        self._settle(message_id, at, last_error=error[:MAX_ERROR_CHARS], next_attempt_at=retry_at)

    def give_up(self, message_id: int, at: datetime, error: str) -> None:
        """Stop retrying a message Slack will never accept (e.g. channel_not_found), which unblocks
        the rest of its channel. The row stays, with the error, for operators."""
        self._settle(message_id, at, last_error=error[:MAX_ERROR_CHARS], abandoned_at=at)

    def pending(self, channel: str | None = None, limit: int = 100) -> list[OutboxMessage]:
        """Undelivered, not given-up messages (of one channel, if given) in id order, due or not
        (for operators and tests; the deliverer uses `due`)."""
        statement = select(outbox).where(_PENDING).order_by(outbox.c.id).limit(limit)
        if channel is not None:
            statement = statement.where(outbox.c.channel == channel)
        return [_message(row) for row in self._tx.execute(statement)]

    def pending_count(self) -> int:
        """Messages neither delivered nor given up."""
        return int(self._tx.execute(select(func.count()).select_from(outbox).where(_PENDING)).scalar_one())

    def oldest_pending_created_at(self) -> datetime | None:
        """When the oldest message neither delivered nor given up was queued (None: nothing pending)."""
        oldest: datetime | None = self._tx.execute(select(func.min(outbox.c.created_at)).where(_PENDING)).scalar_one()
        return oldest  # func.min keeps the column's UtcDateTime type: aware UTC

    def get(self, message_id: int) -> OutboxMessage | None:
        """One message, or None."""
        row = self._tx.execute(select(outbox).where(outbox.c.id == message_id)).first()
        return None if row is None else _message(row)

    def _settle(self, message_id: int, at: datetime, **values: Any) -> None:
        self._tx.execute(
            update(outbox)
            .where(outbox.c.id == message_id)
            .values(attempts=outbox.c.attempts + 1, last_attempt_at=at, claimed_by=None, claimed_until=None, **values)
        )

    def _id_for_key(self, key: str) -> int | None:
        found = self._tx.execute(select(outbox.c.id).where(outbox.c.key == key)).scalar()
        return None if found is None else int(found)


def _message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        kind=row.kind,
        channel=row.channel,
        payload=json.loads(row.payload),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        attempts=row.attempts,
        key=row.key,
        last_error=row.last_error,
        last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at,
        abandoned_at=row.abandoned_at,
        response=json.loads(row.response) if row.response else None,
    )
