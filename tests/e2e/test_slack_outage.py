"""The outbox rides out Slack failures: nothing is lost, nothing is posted twice, order is kept."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from tests.devstack_support import wait_until
from tests.e2e.stack import ALICE, AUDIT, BOB, OPS, ROLLBACK, Stack

NOT_A_MEMBER = "C0NOTIN"


def _audit_posts(stack: Stack) -> list[str]:
    return [c.body["text"].split()[0] for c in stack.fake.calls_to("chat.postMessage", channel=AUDIT)]


def test_every_audit_row_is_posted_once_in_order_after_slack_recovers(devstack_stack: Callable[..., Stack]) -> None:
    """With chat.postMessage failing (500s, 429 + Retry-After, dropped connections), every row still arrives once."""
    stack = devstack_stack()
    fake = stack.fake
    fake.fail_next("chat.postMessage", 3, status=500)
    fake.fail_next("chat.postMessage", 2, status=429, retry_after=1)
    fake.fail_next("chat.postMessage", 2, status=0)

    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
    ts = stack.card(OPS, timeout=30).response["ts"]
    assert stack.driver.click("approve", "1", BOB, OPS, ts).status == 200
    wait_until(lambda: stack.request(1).state.value == "SUCCEEDED", 60, "the rollout")
    stack.settled(timeout=60)

    statuses = [c.status for c in fake.calls_to("chat.postMessage", ok_only=False) if not c.ok]
    assert sorted(statuses) == [0, 0, 429, 429, 500, 500, 500]  # every injected failure was met and retried
    rows = stack.audit_rows()
    assert _audit_posts(stack) == [f"#{r.seq}" for r in rows]
    assert "SUCCEEDED" in fake.messages[(OPS, ts)]["text"]


def test_rate_limit_is_honoured(fake_stack: Stack) -> None:
    """After a 429 with Retry-After: 1, the outbox waits at least that long before asking again."""
    stack = fake_stack
    stack.settled()
    stack.fake.fail_next("chat.postMessage", 1, status=429, retry_after=1, channel=AUDIT)
    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
    stack.settled(timeout=30)
    attempts = stack.fake.calls_to("chat.postMessage", ok_only=False, channel=AUDIT)[-2:]
    assert [a.status for a in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0


def test_permanent_error_is_given_up_without_blocking_others(
    fake_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A card for a channel the bot is not in is given up at once (logged, audited, the requester told why);
    audit posts carry on."""
    stack = fake_stack
    stack.fake.fail_next("chat.postMessage", 10, error="not_in_channel", channel=NOT_A_MEMBER)
    with caplog.at_level(logging.WARNING, logger="bot.frontends.slack.routing"):
        assert stack.driver.slash_command(ROLLBACK, ALICE, channel_id=NOT_A_MEMBER).status == 200
        hooks = stack.fake.wait_for("hooks", 2)  # the requester hears back, and is told about the card
        stack.settled(timeout=30)
    assert any("could not be posted" in h.body["text"] and "/invite @modelbot" in h.body["text"] for h in hooks)
    attempts = stack.fake.calls_to("chat.postMessage", ok_only=False, channel=NOT_A_MEMBER)
    assert len(attempts) == 1 and not any(a.ok for a in attempts)
    assert any("posted nowhere" in r.getMessage() and "not_in_channel" in r.getMessage() for r in caplog.records)
    assert [(r.action, r.outcome) for r in stack.audit_rows() if r.action == "card"] == [("card", "undeliverable")]
    rows = stack.audit_rows()
    assert _audit_posts(stack) == [f"#{r.seq}" for r in rows]
