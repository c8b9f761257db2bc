"""Every Slack listener the bot registers, driven through bolt's `App.dispatch` in this process (the fast tier beside
the HTTP e2e tests): each is reached by a signed request as Slack sends it and does its job end to end."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.change_request import ChangeRequest
from tests.devstack_support import wait_until
from tests.e2e.alert_support import alert_posts, am_alert, now_rfc3339, opened_view, pick, send_alerts
from tests.e2e.in_process import in_process, registered_listeners
from tests.e2e.routed_stack import NOT_IN, home_opened, member_joined
from tests.e2e.stack import ALICE, BOB, DAVE, FRAUD_INCIDENT, MODEL, OPS, ROLLBACK, Stack

EXERCISED = {
    ("command", "/model"),
    ("action", "approve"),
    ("action", "reject"),
    ("view", "reject_reason"),
    ("view", "rollback_reason"),
    ("action", "resync"),
    ("action", "acknowledge"),
    ("action", "alert_rollback"),
    ("action", "alert_rollback_pick"),
    ("view", "alert_rollback_reason"),
    ("event", "app_home_opened"),
    ("event", "member_joined_channel"),
}


@pytest.fixture
def stack(fake_stack: Stack) -> Stack:
    """The bot with a FakeFleet; its driver dispatches in-process."""
    return in_process(fake_stack)


def test_every_registered_listener_is_exercised_here() -> None:
    """The listeners registered in bot/frontends/slack are exactly the ones this module drives."""
    assert registered_listeners() == EXERCISED


def test_slash_command_then_approve_button(stack: Stack) -> None:
    """`/model rollback ...` opens R1 with a card; bob's Approve rolls the fleet back."""
    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
    card = stack.card(OPS)
    assert stack.request(1).state.value == "PENDING"
    assert stack.driver.click("approve", "1", BOB, OPS, card.response["ts"]).status == 200
    wait_until(lambda: _state(stack, 1) == "SUCCEEDED", 20, "the rollback")


def test_reject_button_opens_the_reason_modal_and_its_submission_rejects(stack: Stack) -> None:
    """Reject asks why in a modal; submitting it rejects R1 with that reason."""
    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
    card = stack.card(OPS)
    assert stack.driver.click("reject", "1", BOB, OPS, card.response["ts"]).status == 200
    view = opened_view(stack)
    submitted = stack.driver.submit_view(view["callback_id"], BOB, {"reason": "wrong model"}, view["private_metadata"])
    assert submitted.status == 200
    wait_until(lambda: _state(stack, 1) == "REJECTED", 20, "the rejection")


def test_rollback_without_a_reason_opens_the_modal_and_its_submission_requests(stack: Stack) -> None:
    """`/model rollback MODEL 2` without --reason opens the modal; submitting it opens R1 by the submitter."""
    assert stack.driver.slash_command(f"rollback {MODEL} 2", ALICE).status == 200
    view = opened_view(stack)
    values = {"model": MODEL, "version": "2", "reason": "INC-7 false positives"}
    assert stack.driver.submit_view(view["callback_id"], ALICE, values, view["private_metadata"]).status == 200
    request = wait_until(lambda: _request_or_none(stack, 1), 20, "R1")
    assert (request.requester, request.to_version, request.reason) == (ALICE, 2, "INC-7 false positives")


def test_resync_button_answers_the_clicker(stack: Stack) -> None:
    """Re-sync on an in-sync model is answered to the clicker (nothing to re-send) and audited."""
    assert stack.driver.click("resync", MODEL, ALICE, OPS, "1700000000.000100").status == 200
    wait_until(lambda: any(r.action == "resync" for r in stack.audit_rows()), 20, "the audited re-sync")
    stack.fake.wait_for("chat.postEphemeral", 1, 20, user=ALICE)  # the clicker is told


def test_acknowledge_button_closes_an_emergency_retro_review(stack: Stack) -> None:
    """dave's emergency rollback executes at once with a retro-review; bob's Acknowledge closes it."""
    emergency = f'rollback {MODEL} 2 --reason "INC-9 paging" --emergency'
    assert stack.driver.slash_command(emergency, DAVE).status == 200
    wait_until(lambda: _state(stack, 1) == "SUCCEEDED", 20, "the emergency")
    review = stack.request(1).retro_review
    assert review is not None and review.open
    assert stack.driver.click("acknowledge", "1", BOB, OPS, "1700000000.000200").status == 200
    wait_until(lambda: not stack.request(1).retro_review.open, 20, "the acknowledgement")  # type: ignore[union-attr]


def test_alert_button_select_and_reason_modal(stack: Stack) -> None:
    """An alert post's button and its version select both open the pre-filled modal; submitting opens R1."""
    assert send_alerts(stack, am_alert("fp-in-process", now_rfc3339())).status == 200
    post = wait_until(lambda: alert_posts(stack, FRAUD_INCIDENT), 20, "the alert post")[0]
    channel, ts = post.response["channel"], post.response["ts"]
    assert stack.driver.click("alert_rollback", "1:2", ALICE, channel, ts).status == 200
    view = opened_view(stack)
    assert pick(stack, "1:2", ALICE, channel, ts).status == 200
    assert opened_view(stack, 1)["callback_id"] == view["callback_id"]
    reason = view["blocks"][1]["element"]["initial_value"]
    assert (
        stack.driver.submit_view(view["callback_id"], ALICE, {"reason": reason}, view["private_metadata"]).status == 200
    )
    request = wait_until(lambda: _request_or_none(stack, 1), 20, "the request")
    assert (request.requester, request.to_version) == (ALICE, 2)
    assert request.extra["alert"]["fingerprint"] == "fp-in-process"


def test_app_home_opened_publishes_the_home_view(stack: Stack) -> None:
    """Opening the Home tab publishes bob's Home view."""
    assert home_opened(stack.driver, BOB).status == 200
    published = stack.fake.wait_for("views.publish", 1, 20)
    assert published[0].body["user_id"] == BOB


def test_the_bot_added_to_a_channel_posts_the_card_that_waited_for_it(stack: Stack) -> None:
    """A card that could be posted nowhere is posted in the channel the bot is then added to."""
    stack.fake.add_channel(NOT_IN, "random", member=False)
    assert stack.driver.slash_command(ROLLBACK, ALICE, channel_id=NOT_IN).status == 200
    wait_until(lambda: [r for r in _audit(stack) if r.action == "card"] or None, 20, "the card given up")
    stack.fake.add_channel(NOT_IN, "random", member=True)
    assert member_joined(stack.driver, NOT_IN).status == 200
    assert "R1" in stack.card(NOT_IN).body["text"]


def _audit(stack: Stack) -> list[Any]:
    with stack.bot.db.uow(readonly=True) as uow:
        return list(uow.audit.iter_all())


def _request_or_none(stack: Stack, request_id: int) -> ChangeRequest | None:
    with stack.bot.db.uow(readonly=True) as uow:
        return uow.requests.get(request_id)


def _state(stack: Stack, request_id: int) -> str | None:
    found = _request_or_none(stack, request_id)
    return None if found is None else found.state.value
