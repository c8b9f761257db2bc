"""The process's Slack rate-limit gate, and how outbox delivery uses it and tells calls that may land late."""

from __future__ import annotations

import http.client
import urllib.error
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.core.outbox import OutboxMessage
from bot.frontends.slack.delivery import LATE_LANDING_S, CardUpdateInDoubt, Delivery, classify, may_land_late
from bot.frontends.slack.ratelimit import DEFAULT_HOLD_S, RateGate, RateHeld
from bot.service import Service

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class RecordingClient:
    """Stands in for WebClient: records chat.postMessage calls, or raises `fail` instead of answering."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.posts: list[dict[str, Any]] = []

    def chat_postMessage(self, **arguments: Any) -> dict[str, Any]:
        self.posts.append(arguments)
        if self.fail is not None:
            raise self.fail
        return {"channel": arguments["channel"], "ts": "1.000001"}


def _api_error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> SlackApiError:
    response = SlackResponse(
        client=None, http_verb="POST", api_url="x", req_args={}, data=body, headers=headers or {}, status_code=status
    )
    return SlackApiError("failed", response)


def _limited(retry_after: str | None = "2") -> SlackApiError:
    return _api_error(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": retry_after} if retry_after else {})


def _audit_message() -> OutboxMessage:
    row = {"seq": 1, "at": NOW.isoformat(), "actor": "U01ALICE", "action": "rollback", "outcome": "requested"}
    return OutboxMessage(id=1, kind="audit", channel="C0AUDIT", payload=row, created_at=NOW, next_attempt_at=NOW)


def _delivery(client: RecordingClient, gate: RateGate) -> Delivery:
    return Delivery(cast(Any, client), cast(Service, None), gate)  # audit posts never consult the service


def test_a_hold_lasts_until_retry_after_has_passed_for_that_method_only() -> None:
    """A held method waits out its seconds (then is free); other methods are not held."""
    clock = FakeClock()
    gate = RateGate(clock)
    assert gate.wait_s("chat.update") == 0.0
    gate.hold("chat.update", 2)
    clock.now += 0.5
    assert gate.wait_s("chat.update") == pytest.approx(1.5)
    assert gate.wait_s("chat.postMessage") == 0.0
    with pytest.raises(RateHeld) as held:
        gate.check("chat.update")
    assert held.value.method == "chat.update" and held.value.wait_s == pytest.approx(1.5)
    clock.now += 1.5
    assert gate.wait_s("chat.update") == 0.0
    gate.check("chat.update")


def test_chat_post_message_is_held_per_channel_and_chat_update_as_a_whole() -> None:
    """A 429 on a post holds posts to that channel only (Slack counts them per channel); chat.update in any."""
    clock = FakeClock()
    gate = RateGate(clock)
    gate.learn("chat.postMessage", _limited("2"), "C0AUDIT")
    assert gate.wait_s("chat.postMessage", "C0AUDIT") == pytest.approx(2)
    assert gate.wait_s("chat.postMessage", "C0INCIDENT") == 0.0
    gate.learn("chat.update", _limited("3"), "C0OPS")
    assert gate.wait_s("chat.update", "C0OTHER") == gate.wait_s("chat.update") == pytest.approx(3)
    gate.hold("chat.postMessage", 5)  # without a channel: every channel
    assert gate.wait_s("chat.postMessage", "C0INCIDENT") == pytest.approx(5)


def test_a_shorter_hold_never_cuts_a_longer_one_short() -> None:
    """Two writers meeting 429s with different Retry-After values: the later end wins."""
    clock = FakeClock()
    gate = RateGate(clock)
    gate.hold("chat.update", 30)
    gate.hold("chat.update", 1)
    assert gate.wait_s("chat.update") == pytest.approx(30)


@pytest.mark.parametrize(
    ("error", "held_s"),
    [
        (_limited("7"), 7.0),
        (_limited(None), DEFAULT_HOLD_S),
        (_api_error(200, {"ok": False, "error": "ratelimited"}), DEFAULT_HOLD_S),
        (_api_error(500, {"ok": False, "error": "internal_error"}), 0.0),
        (_api_error(200, {"ok": False, "error": "channel_not_found"}), 0.0),
        (TimeoutError("timed out"), 0.0),
    ],
)
def test_only_a_rate_limit_answer_holds_the_method(error: BaseException, held_s: float) -> None:
    """learn() holds for Retry-After (DEFAULT_HOLD_S without one) on a 429 or `ratelimited`; nothing else holds."""
    clock = FakeClock()
    gate = RateGate(clock)
    gate.learn("chat.postMessage", error)
    assert gate.wait_s("chat.postMessage") == pytest.approx(held_s)


def test_a_held_method_is_rescheduled_without_calling_slack() -> None:
    """With chat.postMessage held by another writer's 429, the outbox does not call Slack and retries when it ends."""
    clock = FakeClock()
    gate = RateGate(clock)
    gate.hold("chat.postMessage", 2, "C0AUDIT")
    client = RecordingClient()
    with pytest.raises(RateHeld) as held:
        _delivery(client, gate).send(_audit_message(), NOW)
    assert client.posts == []
    failure = classify(held.value)
    assert not failure.permanent and failure.retry_after_s == pytest.approx(2)


def test_a_429_met_by_the_outbox_holds_the_method_for_every_writer() -> None:
    """The outbox's own 429 goes into the shared gate, so live progress (or the next message) waits too."""
    clock = FakeClock()
    gate = RateGate(clock)
    client = RecordingClient(fail=_limited("3"))
    delivery = _delivery(client, gate)
    with pytest.raises(SlackApiError):
        delivery.send(_audit_message(), NOW)
    assert gate.wait_s("chat.postMessage", "C0AUDIT") == pytest.approx(3)
    client.fail = None
    with pytest.raises(RateHeld):
        delivery.send(_audit_message(), NOW)
    assert len(client.posts) == 1
    clock.now += 3
    assert delivery.send(_audit_message(), NOW).response["ts"] == "1.000001"


@pytest.mark.parametrize(
    ("error", "late"),
    [
        (TimeoutError("timed out"), True),
        (TimeoutError("timed out"), True),
        (urllib.error.URLError(TimeoutError("timed out")), True),
        (http.client.RemoteDisconnected("Remote end closed connection without response"), True),
        (ConnectionResetError(), True),
        (http.client.IncompleteRead(b""), True),
        (urllib.error.URLError(ConnectionRefusedError()), False),
        (ConnectionRefusedError(), False),
        (_api_error(500, {"ok": False, "error": "internal_error"}), False),
        (_limited(), False),
        (RateHeld("chat.update", 1.0), False),
    ],
)
def test_only_a_call_left_without_an_answer_may_land_late(error: BaseException, late: bool) -> None:
    """Timeouts and dropped connections may still be carried out by Slack; answers and refused connections not."""
    assert may_land_late(error) is late


def test_a_card_update_in_doubt_is_retried_only_after_a_late_landing_is_over() -> None:
    """A card update left without an answer is a passing failure whose retry waits at least LATE_LANDING_S."""
    failure = classify(CardUpdateInDoubt("TimeoutError"))
    assert not failure.permanent and failure.min_delay_s == LATE_LANDING_S
    assert classify(TimeoutError()).min_delay_s == 0.0  # a post (not an update) keeps the usual backoff
