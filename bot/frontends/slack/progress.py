"""Live rollout progress on the approval card: a throttled, best-effort chat.update (not through the outbox).

Updates run on the rollout's own thread, so the last one has finished before the rollout's outcome is
committed; the outbox's final card update therefore always lands after it and is never overwritten.
A failed or slow update switches live progress off for the rest of that rollout: it is decoration,
and the durable card update comes from the outbox anyway.
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
from bot.service import Service

log = logging.getLogger(__name__)
INTERVAL_S = 0.5
SLOW_S = 2.0


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
    ) -> None:
        self._client = client
        self._service = service
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
        started = self._clock()
        try:
            location = self._location()
            if location is None:
                return  # the outbox has not posted the card yet
            request_id, channel, ts = location
            card = self._service.card(request_id)
            message = render_card(card, datetime.now(UTC), events)
            self._client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)
            self.pushes += 1
        except Exception as exc:  # best effort: never let decoration break a rollout
            log.info("live progress switched off for this rollout: %s", type(exc).__name__)
            self._off = True
        if self._clock() - started > SLOW_S:
            log.info("live progress switched off for this rollout: Slack is slow")
            self._off = True

    def _location(self) -> tuple[int, str, str] | None:
        with self._service.deps.db.uow(readonly=True) as uow:
            if self._request_id is None and self._model is not None:
                open_request = uow.requests.open_for_model(self._model)
                self._request_id = open_request.id if open_request else None
            if self._request_id is None:
                return None
            card = uow.requests.get_card(self._request_id)
        return (self._request_id, *card) if card else None
