"""The App Home tab: a signed `app_home_opened` publishes the user's Home, and its buttons work like the card's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.devstack_support import wait_until
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.routed_stack import APPROVALS, home_click, home_opened, start_routed_stack, texts_of
from tests.e2e.stack import ALICE, BOB, CAROL, MODEL, ROLLBACK, Stack, stop_stack


@pytest.fixture
def stack(tmp_path: Path, db_url: str, fake_slack: FakeSlack) -> Iterator[Stack]:
    """The bot (FakeFleet) with an approval channel."""
    started = start_routed_stack(tmp_path, db_url, fake_slack, slack={"approval_channel": APPROVALS})
    yield started
    stop_stack(started)


def _published(stack: Stack, user: str, count: int) -> dict[str, Any]:
    """The view of the `count`-th views.publish for `user` (waits for it)."""
    calls = stack.fake.wait_for("views.publish", count, 15, user_id=user)
    view = calls[count - 1].body["view"]
    assert isinstance(view, dict) and view["type"] == "home"
    return view


def _buttons(view: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["action_id"], e["value"]) for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]


def test_home_shows_open_request_with_buttons_and_drifted_model_and_approving_from_it_works(stack: Stack) -> None:
    """bob's Home lists alice's pending R1 with Approve/Reject and the drifted model; alice's has no buttons for her
    own request; bob's Approve on the Home tab rolls back and the republished Home shows R1 as a recent change."""
    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
    stack.card(APPROVALS)
    with stack.bot.db.uow() as uow:  # what the drift check stores when a replica serves something else
        uow.drift.open(MODEL, datetime.now(UTC), {"fake:2": ["stable is v2, desired v3"]})
        uow.commit()

    assert home_opened(stack.driver, BOB).status == 200
    view = _published(stack, BOB, 1)
    text = texts_of(view["blocks"])
    assert "*R1* rollback fraud_detector v3 → v2 by <@U01ALICE>: PENDING" in text
    assert f"*{MODEL}* drifted from the desired state on 1 replica(s)" in text
    assert _buttons(view) == [("approve", "1"), ("reject", "1")]

    assert home_opened(stack.driver, ALICE).status == 200
    assert _buttons(_published(stack, ALICE, 1)) == []  # nobody approves their own request

    assert home_click(stack.driver, "approve", "1", BOB).status == 200
    wait_until(lambda: stack.request(1).state.value == "SUCCEEDED", 30, "the rollout")
    after = _published(stack, BOB, 2)  # the click re-published bob's Home
    recent = texts_of(after["blocks"]).split("Recent changes")[1]
    assert "*R1* rollback fraud_detector v3 → v2 by <@U01ALICE>: SUCCEEDED" in recent
    assert _buttons(after) == []


def test_home_of_someone_without_a_role_says_so(stack: Stack) -> None:
    """carol holds no role: her Home says so and lists nothing."""
    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
    stack.card(APPROVALS)
    assert home_opened(stack.driver, CAROL).status == 200
    text = texts_of(_published(stack, CAROL, 1)["blocks"])
    assert "no role" in text and "R1" not in text


def test_unsubscribed_event_types_are_refused_before_bolt(stack: Stack) -> None:
    """A signed event modelbot does not subscribe to (a message) is a 400, and publishes nothing."""
    body = (
        '{"type": "event_callback", "team_id": "T0FAKE", "event_id": "Ev1", "event": {"type": "message", "user": "U1"}}'
    )
    answer = stack.driver.post(body, content_type="application/json")
    assert answer.status == 400
    assert stack.fake.calls_to("views.publish", ok_only=False) == []


def test_url_verification_is_answered_with_its_challenge(stack: Stack) -> None:
    """Slack checking the Events request URL (signed JSON) gets its challenge back."""
    answer = stack.driver.post(
        '{"type": "url_verification", "challenge": "c-123", "token": "x"}', content_type="application/json"
    )
    assert answer.status == 200 and "c-123" in answer.body
