"""Slack writers of one process on a real database (SQLite and PostgreSQL): live progress and the outbox share the
rate-limit gate, and a card update left without an answer is corrected only once it can no longer land late."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.core.errors import StoreUnavailable
from bot.core.fleet import ProgressEvent
from bot.core.outbox import OutboxMessage
from bot.frontends.slack.delivery import LATE_LANDING_S
from bot.frontends.slack.outbox import OutboxWorker
from bot.frontends.slack.progress import LiveCard
from bot.frontends.slack.ratelimit import RateGate
from tests.fakes import FlakyDatabase
from tests.service_harness import ALICE, BOB, Harness, make_harness

ROLLBACK = 'rollback fraud_detector 2 --reason "INC-481 false positives"'
OPS = "C0OPS"
EVENT = ProgressEvent("load", "replica-0", "LOADING", 0, 3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeWebClient:
    """Stands in for WebClient: records calls per method, answers like Slack, or raises what `fail` names."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, BaseException] = {}
        self._ts = 0

    def chat_postMessage(self, **arguments: Any) -> dict[str, Any]:
        return self._answer("chat.postMessage", arguments)

    def chat_update(self, **arguments: Any) -> dict[str, Any]:
        return self._answer("chat.update", arguments)

    def _answer(self, method: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((method, arguments))
        if method in self.fail:
            raise self.fail[method]
        self._ts += 1
        return {"ok": True, "channel": arguments["channel"], "ts": arguments.get("ts") or f"1.{self._ts:06d}"}

    def count(self, method: str) -> int:
        return sum(1 for called, _ in self.calls if called == method)


def _limited(retry_after: int) -> SlackApiError:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="x",
        req_args={},
        data={"ok": False, "error": "ratelimited"},
        headers={"Retry-After": str(retry_after)},
        status_code=429,
    )
    return SlackApiError("ratelimited", response)


@pytest.fixture
def h(tmp_path: Path, db_url: str) -> Iterator[Harness]:
    harness = make_harness(tmp_path, db_url, versions=(2, 3))
    yield harness
    harness.bot.close()


def _requested_with_a_card(h: Harness, client: FakeWebClient, gate: RateGate) -> OutboxWorker:
    """R1 is open and its card posted in OPS by the outbox (everything queued so far is delivered)."""
    assert h.say(ALICE, ROLLBACK).ok
    worker = OutboxWorker(h.bot.service, cast(Any, client), gate=gate)
    worker.run_once()
    with h.bot.db.uow(readonly=True) as uow:
        assert uow.outbox.pending_count() == 0 and uow.requests.get_card(1) is not None
    return worker


def _pending_cards(h: Harness) -> list[OutboxMessage]:
    with h.bot.db.uow(readonly=True) as uow:
        return [m for m in uow.outbox.pending(OPS) if m.kind == "card"]


def test_a_live_update_left_without_an_answer_queues_a_correction_for_after_it_could_land(h: Harness) -> None:
    """A timed-out live push switches live progress off and queues a card re-render due LATE_LANDING_S later."""
    client, gate = FakeWebClient(), RateGate()
    _requested_with_a_card(h, client, gate)
    client.fail["chat.update"] = TimeoutError("The read operation timed out")
    live = LiveCard(cast(Any, client), h.bot.service, request_id=1, interval_s=0, gate=gate)
    live(EVENT)
    live(EVENT)  # switched off: no second call
    assert client.count("chat.update") == 1
    (correction,) = _pending_cards(h)
    assert correction.payload["request_id"] == 1 and correction.attempts == 0
    assert correction.next_attempt_at == h.clock() + timedelta(seconds=LATE_LANDING_S)
    with h.bot.db.uow() as uow:  # due() locks rows on PostgreSQL: not a read-only transaction
        assert uow.outbox.due(h.clock()) == []  # not yet
        assert [m.id for m in uow.outbox.due(h.clock() + timedelta(seconds=LATE_LANDING_S))] == [correction.id]


def test_a_live_update_slack_refused_queues_no_correction(h: Harness) -> None:
    """An answered failure (a 429) was not carried out: nothing to correct, but chat.update is held for everyone."""
    client, clock = FakeWebClient(), FakeClock()
    gate = RateGate(clock)
    _requested_with_a_card(h, client, gate)
    client.fail["chat.update"] = _limited(2)
    LiveCard(cast(Any, client), h.bot.service, request_id=1, interval_s=0, gate=gate)(EVENT)
    assert _pending_cards(h) == []
    assert gate.wait_s("chat.update") == pytest.approx(2)


def test_a_429_met_by_live_progress_holds_the_outbox(h: Harness) -> None:
    """The outbox does not call chat.update while live progress's 429 holds it: the card waits for Retry-After."""
    client, clock = FakeWebClient(), FakeClock()
    gate = RateGate(clock)
    worker = _requested_with_a_card(h, client, gate)
    client.fail["chat.update"] = _limited(2)
    LiveCard(cast(Any, client), h.bot.service, request_id=1, interval_s=0, gate=gate)(EVENT)
    del client.fail["chat.update"]
    assert h.say(BOB, "approve R1").ok  # the rollout runs at once (fake fleet): its card updates are queued
    worker.run_once()
    assert client.count("chat.update") == 1  # only live progress's, answered with the 429
    held, *behind = _pending_cards(h)
    assert held.attempts == 1 and "held" in str(held.last_error)
    assert held.next_attempt_at == h.clock() + timedelta(seconds=2)
    assert all(m.attempts == 0 for m in behind)  # the channel's order is kept
    clock.now += 2
    h.clock.advance(seconds=2)
    worker.run_once()
    assert client.count("chat.update") == 2 + len(behind) and _pending_cards(h) == []


def test_live_progress_skips_pushes_while_the_outbox_is_rate_limited(h: Harness) -> None:
    """While the outbox's 429 holds chat.update, live pushes are skipped (not switched off); after it they resume."""
    client, clock = FakeWebClient(), FakeClock()
    gate = RateGate(clock)
    _requested_with_a_card(h, client, gate)
    live = LiveCard(cast(Any, client), h.bot.service, request_id=1, interval_s=0, gate=gate)
    gate.hold("chat.update", 3)
    live(EVENT)
    assert client.count("chat.update") == 0
    clock.now += 3
    live(EVENT)
    assert client.count("chat.update") == 1 and live.pushes == 1


def test_an_outbox_card_update_left_without_an_answer_is_retried_only_after_it_could_land(h: Harness) -> None:
    """The outbox's own timed-out card update is retried no sooner than LATE_LANDING_S (not after a 1 s backoff)."""
    client = FakeWebClient()
    worker = _requested_with_a_card(h, client, RateGate())
    assert h.say(BOB, "approve R1").ok
    client.fail["chat.update"] = TimeoutError("The read operation timed out")
    worker.run_once()
    card, *_ = _pending_cards(h)
    assert card.attempts == 1 and "may still land" in str(card.last_error)
    assert card.next_attempt_at == h.clock() + timedelta(seconds=LATE_LANDING_S)
    h.clock.advance(seconds=LATE_LANDING_S - 1)
    worker.run_once()
    assert client.count("chat.update") == 1  # nothing of OPS goes before the retry time: order is kept
    client.fail["chat.update"] = _limited(1)
    h.clock.advance(seconds=1)
    worker.run_once()
    card, *_ = _pending_cards(h)
    assert card.next_attempt_at == h.clock() + timedelta(seconds=1)  # an answer: Retry-After, no floor


def test_the_database_away_right_after_slack_took_a_card_sends_it_once(h: Harness) -> None:
    """The database goes away between Slack's answer to a card's first post and its record: the worker keeps what
    Slack answered and records it first once the database is back (even after the claim's lease ran out), so the
    card is posted once and the approval's updates edit that same message."""
    client = FakeWebClient()
    flaky = FlakyDatabase(h.bot.service.deps.db)
    h.bot.service.deps.db = flaky
    assert h.say(ALICE, ROLLBACK).ok
    answer, card_ts = client._answer, []

    def answer_then_lose_the_database(method: str, arguments: dict[str, Any]) -> dict[str, Any]:
        answered = answer(method, arguments)
        if method == "chat.postMessage" and arguments["channel"] == OPS:  # R1's card
            card_ts.append(answered["ts"])
            flaky.down = True
        return answered

    client._answer = answer_then_lose_the_database  # type: ignore[method-assign]
    worker = OutboxWorker(h.bot.service, cast(Any, client), gate=RateGate())
    with pytest.raises(StoreUnavailable):
        worker.run_once()
    posted = client.count("chat.postMessage")
    with pytest.raises(StoreUnavailable):
        worker.run_once()  # still away: nothing is sent while the last answer is unrecorded
    assert client.count("chat.postMessage") == posted
    client._answer = answer  # type: ignore[method-assign]
    flaky.down = False
    h.clock.advance(minutes=5)  # beyond the claim's lease: the message would be offered again
    worker.run_once()
    with h.bot.db.uow(readonly=True) as uow:
        card = uow.requests.get_card(1)
        assert uow.outbox.pending_count() == 0
    cards = [a for m, a in client.calls if m == "chat.postMessage" and a["channel"] == OPS and "R1" in str(a)]
    assert len(cards) == 1 and card == (OPS, card_ts[0]), (cards, card, card_ts)
    assert h.say(BOB, "approve R1").ok
    worker.run_once()
    updates = [a for m, a in client.calls if m == "chat.update"]
    assert updates and {a["ts"] for a in updates} == {card_ts[0]}
