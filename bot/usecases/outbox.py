"""Outbox bookkeeping for the front end that delivers it: claim what is due, record what a delivery did (in one
transaction), re-queue a card whose request moved while its first post was on its way, and what the live progress
queues (a card's correction, its thread's replies).

The front end keeps the delivery itself (Slack calls, retries and their backoff, the rate gate); it hands back
a `Delivered` (or a failure), and everything the database learns from it is written here, in the transaction that
settles the message. See bot/store/outbox.py for the delivery loop this follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.core.change_request import RequestState
from bot.core.fleet import ProgressEvent
from bot.core.outbox import OutboxMessage
from bot.usecases.context import Deps

LEASE = timedelta(minutes=2)  # a claimed message is offered again after this (its deliverer died)
CARD_KIND, THREAD_KIND = "card", "thread"


@dataclass(frozen=True)
class FollowUp:
    """An outbox message to queue in the transaction that records a delivery."""

    kind: str
    channel: str
    payload: dict[str, Any]
    key: str | None = None


@dataclass(frozen=True)
class Delivered:
    """What delivering one message did: Slack's answer, and what the database must learn from it."""

    response: dict[str, Any]
    new_card: tuple[int, str, str] | None = None  # (request id, channel, ts) after a card's first post
    rendered_version: int | None = None  # the request version the card showed
    follow_ups: tuple[FollowUp, ...] = ()  # queued in the transaction that records this delivery
    alert_post: tuple[int, str, str] | None = None  # (alert id, channel, ts) after an alert's first post
    abandoned: str | None = None  # posted nowhere, the requester told: settle it as given up, with this error


def claim_due(deps: Deps, lease: timedelta = LEASE) -> list[OutboxMessage]:
    """Lease the oldest due message of every channel to this process (empty at once when nothing is pending)."""
    with deps.db.uow(readonly=True) as uow:
        if uow.outbox.pending_count() == 0:
            return []
    now = deps.clock()
    holder = f"{deps.holder}:outbox"
    with deps.db.uow() as uow:
        batch = [m for m in uow.outbox.due(now) if uow.outbox.claim(m.id, holder, now, lease)]
        uow.commit()
    return batch


def record_delivered(deps: Deps, message: OutboxMessage, delivered: Delivered) -> None:
    """Settle a delivered (or abandoned) message, with what it taught, in one transaction."""
    with deps.db.uow() as uow:
        if delivered.new_card is not None:
            request_id, channel, ts = delivered.new_card
            uow.requests.set_card(request_id, channel, ts)
            current = uow.requests.get(request_id)
            if current is not None and current.version != delivered.rendered_version:
                # The request moved while its first card was on its way, when no update could be queued.
                uow.outbox.enqueue(CARD_KIND, channel, {"request_id": request_id, "state": current.state.value})
        if delivered.alert_post is not None:  # where an alert's post went, so later changes update it
            uow.alerts.set_post(*delivered.alert_post)
        for follow in delivered.follow_ups:  # link-back, approver DMs, thread replies
            uow.outbox.enqueue(follow.kind, follow.channel, follow.payload, key=follow.key)
        if delivered.abandoned is not None:  # posted nowhere; the requester was told and the audit records it
            uow.outbox.give_up(message.id, deps.clock(), delivered.abandoned)
        else:
            uow.outbox.mark_delivered(message.id, deps.clock(), delivered.response)
        uow.commit()


def retry_later(deps: Deps, message: OutboxMessage, error: str, delay_s: float) -> None:
    """A failed attempt: the message (and its channel behind it) waits `delay_s`."""
    now = deps.clock()
    with deps.db.uow() as uow:
        uow.outbox.mark_failed(message.id, now, error, now + timedelta(seconds=delay_s))
        uow.commit()


def give_up(deps: Deps, message: OutboxMessage, error: str) -> None:
    """Never deliver this message (its channel moves on)."""
    with deps.db.uow() as uow:
        uow.outbox.give_up(message.id, deps.clock(), error)
        uow.commit()


def card_location(deps: Deps, request_id: int) -> tuple[str, str] | None:
    """(channel, ts) of the request's card, None before its first post."""
    with deps.db.uow(readonly=True) as uow:
        return uow.requests.get_card(request_id)


@dataclass(frozen=True)
class CardSpot:
    """The request a rollout's card belongs to (None: none open), and where its card is (None: not posted yet)."""

    request_id: int | None
    location: tuple[str, str] | None


def find_card(deps: Deps, request_id: int | None, model: str | None) -> CardSpot:
    """The card of `request_id`, else of `model`'s open request (a rollout that started from a click)."""
    with deps.db.uow(readonly=True) as uow:
        if request_id is None and model is not None:
            open_request = uow.requests.open_for_model(model)
            request_id = open_request.id if open_request else None
        if request_id is None:
            return CardSpot(None, None)
        return CardSpot(request_id, uow.requests.get_card(request_id))


def queue_card_correction(deps: Deps, request_id: int, channel: str, delay_s: float) -> None:
    """Queue a re-render of the card from the database, due in `delay_s` (once a lost update can no longer land)."""
    with deps.db.uow() as uow:
        due_at = deps.clock() + timedelta(seconds=delay_s)
        uow.outbox.enqueue(CARD_KIND, channel, {"request_id": request_id, "reason": "late_landing"}, due_at=due_at)
        uow.commit()


class CardThread:
    """Queues a card-thread reply when a rollout starts and at each new phase it is told about. Not a request's
    rollout (a re-sync), not started, or no card posted yet: nothing is queued (the thread comes with the result)."""

    def __init__(self, deps: Deps, request_id: int | None, model: str | None) -> None:
        self._deps = deps
        self._request_id = request_id
        self._model = model
        self._started = False

    def __call__(self, event: ProgressEvent) -> None:
        with self._deps.db.uow() as uow:
            if self._request_id is None and self._model is not None:
                open_request = uow.requests.open_for_model(self._model)
                self._request_id = open_request.id if open_request else None
            request = uow.requests.get(self._request_id) if self._request_id is not None else None
            if request is None or request.state is not RequestState.EXECUTING:
                return
            location = uow.requests.get_card(request.id)
            if location is None:
                return
            rid, channel = request.id, location[0]
            if not self._started:
                self._started = True
                uow.outbox.enqueue(
                    THREAD_KIND, channel, {"request_id": rid, "what": "started"}, key=f"thread:{rid}:started"
                )
            payload = {
                "request_id": rid,
                "what": "phase",
                "phase": event.phase,
                "done": event.done,
                "total": event.total,
            }
            uow.outbox.enqueue(THREAD_KIND, channel, payload, key=f"thread:{rid}:phase:{event.phase}")
            uow.commit()
