"""Live rollout progress on the approval card: a throttled, best-effort chat.update (not through the outbox).

Updates run on the rollout's own thread, so an update Slack has answered is finished before the rollout's
outcome is committed, and the outbox's final card update lands after it. An update our client gave up on (a
timeout, a dropped connection) is another matter: Slack may still carry it out later, over the outcome. So
such a failure also queues, through the outbox, a re-render of the card from the database that is due
LATE_LANDING_S later, when the lost update can no longer land after it.
A failed or slow update switches live progress off for the rest of that rollout: it is decoration,
and the durable card update comes from the outbox anyway. A 429 holds chat.update for every writer of the
process (the shared RateGate); while the gate holds it, pushes are skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from slack_sdk import WebClient

from bot.core.fleet import ProgressEvent
from bot.frontends.slack.blocks import render_card
from bot.frontends.slack.delivery import LATE_LANDING_S, may_land_late
from bot.frontends.slack.ratelimit import RateGate, RateHeld
from bot.service import Service

log = logging.getLogger(__name__)
INTERVAL_S = 0.5
SLOW_S = 2.0
UPDATE = "chat.update"


class LiveCard:
    """A progress sink (Context.progress) that re-renders the request's card at most every `interval_s`."""

    def __init__(
        self,
        client: WebClient,
        service: Service,
        *,
        request_id: int | None = None,
        model: str | None = None,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        gate: RateGate | None = None,
    ) -> None:
        self._client = client
        self._service = service
        self._gate = gate or RateGate()
        self._request_id = request_id
        self._model = model
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: dict[str, ProgressEvent] = {}
        self._last: ProgressEvent | None = None
        self._next_push = float("-inf")
        self._pushing = False
        self._off = False
        self.pushes = 0

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self._latest[event.replica] = event
            self._last = event
            now = self._clock()
            if self._off or self._pushing or now < self._next_push:
                return
            self._pushing, self._next_push = True, now + self._interval_s
            events = [*self._latest.values(), event]
        try:
            self._push(events)
        finally:
            with self._lock:
                self._pushing = False

    def _push(self, events: list[ProgressEvent]) -> None:
        if self._gate.wait_s(UPDATE) > 0:
            return  # a 429 holds chat.update: skip this push, a later one may go
        started = self._clock()
        location = None
        try:
            location = self._location()
            if location is None:
                return  # the outbox has not posted the card yet
            request_id, channel, ts = location
            message = render_card(self._service.card(request_id), datetime.now(UTC), events)
            with self._gate.guard(UPDATE):  # checked again just before the call: the outbox may have met a 429
                self._client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)
            self.pushes += 1
        except RateHeld:
            return
        except Exception as exc:  # best effort: never let decoration break a rollout
            log.info("live progress switched off for this rollout: %s", type(exc).__name__)
            self._off = True
            if location is not None and may_land_late(exc):
                self._correct_later(location[0], location[1])
        if not self._off and self._clock() - started > SLOW_S:
            log.info("live progress switched off for this rollout: Slack is slow")
            self._off = True

    def _correct_later(self, request_id: int, channel: str) -> None:
        """Queue a re-render of the card from the database, due once the lost update can no longer land."""
        try:
            self._service.queue_card_correction(request_id, channel, LATE_LANDING_S)
        except Exception as exc:  # the database is away too: the card may show stale progress until it changes
            log.warning("could not queue the card's correction after a lost live update: %s", exc)

    def _location(self) -> tuple[int, str, str] | None:
        spot = self._service.find_card(self._request_id, self._model)
        self._request_id = spot.request_id
        return (spot.request_id, *spot.location) if spot.request_id is not None and spot.location else None
