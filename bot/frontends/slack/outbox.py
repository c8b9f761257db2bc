"""The outbox delivery worker: drains the store's outbox to Slack, in order per channel, surviving outages.

Everything to post is already in the database (written in the same transaction as the change it
announces), so nothing is lost when Slack is down or the bot restarts: a message stays queued until
Slack accepts it. Passing failures (5xx, 429 with its Retry-After, connection errors) back off
exponentially and hold their channel (order is kept); a permanent error (channel_not_found,
invalid_blocks...) is retried a few times, then given up with a log line, which unblocks the channel.
A 429 met by any writer of this process (see ratelimit.py) reschedules the messages it holds back, without
calling Slack. A card update that timed out is retried only after LATE_LANDING_S, when Slack can no longer
carry out the lost one over the retry.
Delivery is at-least-once: a crash between Slack's answer and the database commit re-sends one message. The
database going away at that moment does not: what Slack answered is kept in memory and recorded first thing when the
database is back (before anything is claimed), so the message is not sent twice and an alert's or card's first
post keeps its ts (later changes edit it in place, not a second post).
"""

from __future__ import annotations

import logging
import random
import threading

from slack_sdk import WebClient

from bot.core.errors import StoreUnavailable
from bot.core.outbox import OutboxMessage
from bot.frontends.slack.delivery import Delivery, Failure, classify
from bot.frontends.slack.notices import Notices
from bot.frontends.slack.ratelimit import RateGate
from bot.service import Service
from bot.usecases.outbox import Delivered

log = logging.getLogger(__name__)
POLL_S = 0.5
PERMANENT_ATTEMPTS = 3
BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0
MAX_ROUNDS = 100  # per wake-up, so stop() is honoured even with a long queue


class OutboxWorker:
    def __init__(
        self,
        service: Service,
        client: WebClient,
        *,
        poll_s: float = POLL_S,
        backoff_s: float = BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        permanent_attempts: int = PERMANENT_ATTEMPTS,
        gate: RateGate | None = None,
        notices: Notices | None = None,
    ) -> None:
        """`gate`: the process's rate-limit gate, shared with live progress (a private one when not given);
        `notices`: the front end's response_urls, to tell a requester privately what delivery found out."""
        self._service = service
        self._delivery = Delivery(client, service, gate, notices)
        self._poll_s = poll_s
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._permanent_attempts = permanent_attempts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unrecorded: list[tuple[OutboxMessage, Delivered]] = []  # sent, Slack answered, the database was away

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="slack-outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll (something was just queued)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Deliver what is due (within `timeout_s`), then stop; the rest stays queued in the database."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run_once(self) -> int:
        """Deliver until nothing is due (each round sends the oldest message of every channel); returns the count."""
        delivered = self._record_unrecorded()
        for _ in range(MAX_ROUNDS):
            batch = self._claim()
            if not batch:
                break
            delivered += sum(self._deliver(message) for message in batch)
        return delivered

    def _loop(self) -> None:
        while True:
            try:
                self.run_once()
            except StoreUnavailable as exc:  # expected during an outage: one line, no traceback
                log.warning("outbox round failed; retrying: %s", exc)
            except Exception:  # anything else must not kill the worker either; the messages stay queued
                log.exception("outbox round failed; retrying")
            if self._stop.is_set():
                return
            self._wake.wait(self._poll_s)
            self._wake.clear()

    def _claim(self) -> list[OutboxMessage]:
        return self._service.claim_outbox()

    def _deliver(self, message: OutboxMessage) -> bool:
        try:
            delivered = self._delivery.send(message, self._service.now())
        except Exception as exc:
            self._failed(message, classify(exc))
            return False
        # the card's location (re-queued if its request moved meanwhile), an alert post's ts, follow-ups (routing.py)
        # and the message settled, in one transaction (bot/usecases/outbox.py)
        try:
            self._service.outbox_delivered(message, delivered)
        except StoreUnavailable:
            self._unrecorded.append((message, delivered))  # Slack has it: never send it again, record it later
            raise
        return True

    def _record_unrecorded(self) -> int:
        """Record, oldest first, what Slack took while the database was away; StoreUnavailable while it still is."""
        recorded = 0
        while self._unrecorded:
            message, delivered = self._unrecorded[0]
            try:
                self._service.outbox_delivered(message, delivered)
                recorded += 1
            except StoreUnavailable:
                raise  # still away: nothing else is claimed (and sent) before this is recorded
            except Exception:  # never wedge the outbox on one message: its claim lapses and it is offered again
                log.exception("outbox: #%s cannot be recorded as delivered; it will be offered again", message.id)
            self._unrecorded.pop(0)
        if recorded:
            log.info("outbox: recorded %d message(s) Slack took while the database was away", recorded)
        return recorded

    def _failed(self, message: OutboxMessage, failure: Failure) -> None:
        attempts = message.attempts + 1
        where = f"#{message.id} ({message.kind} to {message.channel})"
        if failure.permanent and attempts >= self._permanent_attempts:
            log.warning("outbox: gave up on %s after %d attempts: %s", where, attempts, failure.error)
            self._service.outbox_give_up(message, failure.error)
        else:
            delay = self._delay(attempts, failure)
            log.info("outbox: %s failed (%s); retrying in %.1fs", where, failure.error, delay)
            self._service.outbox_retry(message, failure.error, delay)

    def _delay(self, attempts: int, failure: Failure) -> float:
        if failure.retry_after_s is not None:
            return failure.retry_after_s  # Slack said when; asking earlier risks the app being disabled
        exponential = min(self._backoff_s * 2.0 ** (attempts - 1), self._max_backoff_s)
        jittered = exponential * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography
        # Not a "backoff" to switch to zero in tests: a sooner retry could be overwritten by the lost call landing.
        return max(jittered, failure.min_delay_s)
