"""Approvals that reach the approvers: the approval channel, the link back, the requester told when a card cannot
be posted, approver groups mentioned, approver DMs, the card's thread, and the Acknowledge button of a retro-review.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.devstack_support import spec, wait_until
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.routed_stack import (
    APPROVALS,
    GROUP,
    NOT_IN,
    member_joined,
    routed_devstack,
    start_routed_stack,
    texts_of,
)
from tests.e2e.stack import ALICE, BOB, DAVE, FRAUD_INCIDENT, MODEL, OPS, ROLLBACK, Stack, stop_stack

__all__ = ["routed_devstack"]  # the fixture, used by the devstack tests below

EMERGENCY = 'rollback fraud_detector 2 --reason "INC-490 scores all zero" --emergency'
NEW_APPROVALS = "C0NEWAPPROVE"  # an approval channel the bot has not been invited to yet


@pytest.fixture
def routed(tmp_path: Path, db_url: str, fake_slack: FakeSlack) -> Iterator[Callable[..., Stack]]:
    """Factory: the bot with a FakeFleet and the given approval routing settings."""
    started: list[Stack] = []

    def start(**routing: Any) -> Stack:
        stack = start_routed_stack(tmp_path, db_url, fake_slack, **routing)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stop_stack(stack)


def test_request_typed_where_the_bot_is_not_still_reaches_the_approval_channel(routed: Callable[..., Stack]) -> None:
    """Typed in a channel without the bot: the card lands in the approval channel and the requester is told, privately,
    where (the link back could not be posted where they typed)."""
    stack = routed(slack={"approval_channel": APPROVALS})
    assert stack.driver.slash_command(ROLLBACK, ALICE, channel_id=NOT_IN).status == 200

    card = stack.card(APPROVALS)
    hooks = stack.fake.wait_for("hooks", 2)
    stack.settled()
    told = [h.body["text"] for h in hooks if "waits for approval" in h.body["text"]]
    assert len(told) == 1, [h.body["text"] for h in hooks]
    assert f"<#{APPROVALS}>" in told[0] and f"<#{NOT_IN}>" in told[0] and "/invite @modelbot" in told[0]
    ts = card.response["ts"].replace(".", "")
    assert f"https://fake.slack.com/archives/{APPROVALS}/p{ts}" in told[0]  # the card's permalink
    refused = stack.fake.calls_to("chat.postMessage", ok_only=False, channel=NOT_IN)
    assert [c.response.get("error") for c in refused] == ["not_in_channel"]  # the link-back, tried once
    assert stack.request(1).state.value == "PENDING"


def test_card_that_cannot_be_posted_anywhere_is_told_at_once_and_audited(
    routed: Callable[..., Stack], fake_slack: FakeSlack
) -> None:
    """Approval channel archived and the typed channel without the bot: the requester hears why and what to do,
    the audit records it, nothing is retried in silence, and the request stays decidable."""
    fake_slack.add_channel("C0OLDAPPROVE", "old-approvals", archived=True)
    stack = routed(slack={"approval_channel": "C0OLDAPPROVE"})
    assert stack.driver.slash_command(ROLLBACK, ALICE, channel_id=NOT_IN).status == 200

    hooks = stack.fake.wait_for("hooks", 2)
    stack.settled()
    told = [h.body["text"] for h in hooks if "could not be posted" in h.body["text"]]
    assert len(told) == 1, [h.body["text"] for h in hooks]
    assert "<#C0OLDAPPROVE> is archived" in told[0] and f"modelbot is not a member of <#{NOT_IN}>" in told[0]
    assert "`/invite @modelbot` in <#C0OLDAPPROVE>" in told[0] and "/model approve R1" in told[0]
    tries = [c.body["channel"] for c in stack.fake.calls_to("chat.postMessage", ok_only=False) if "blocks" in c.body]
    assert tries == ["C0OLDAPPROVE", NOT_IN]  # each tried once, no retries
    rows = [r for r in stack.audit_rows() if r.action == "card"]
    assert [(r.outcome, r.request_id, r.detail["channels"]) for r in rows] == [
        ("undeliverable", 1, ["C0OLDAPPROVE", NOT_IN])
    ]
    assert stack.request(1).state.value == "PENDING"


def test_a_card_posted_nowhere_is_posted_once_the_bot_is_invited(
    routed: Callable[..., Stack], fake_slack: FakeSlack
) -> None:
    """The approval channel exists but the bot is not in it (nor where the request was typed): the requester is told
    to invite it; once someone does, Slack's member_joined_channel about the bot posts the card there (audited),
    and the card's Approve works. A person joining, and the same event again, post nothing more."""
    fake_slack.add_channel(NEW_APPROVALS, "new-approvals", member=False)
    stack = routed(slack={"approval_channel": NEW_APPROVALS})
    assert stack.driver.slash_command(ROLLBACK, ALICE, channel_id=NOT_IN).status == 200
    wait_until(lambda: _card_rows(stack) or None, 20, "the card given up as undeliverable")
    fake_slack.add_channel(NEW_APPROVALS, "new-approvals", member=True)  # someone types /invite @modelbot there
    assert member_joined(stack.driver, NEW_APPROVALS, DAVE).status == 200  # a person joining: nothing to do
    assert member_joined(stack.driver, NEW_APPROVALS).status == 200
    card = stack.card(NEW_APPROVALS)
    assert member_joined(stack.driver, NEW_APPROVALS).status == 200  # Slack retried, or the bot re-added
    stack.settled()
    posted = [c for c in stack.fake.calls_to("chat.postMessage", channel=NEW_APPROVALS) if "blocks" in c.body]
    assert len(posted) == 1 and "R1" in posted[0].body["text"]
    assert [(r.outcome, r.detail.get("channel")) for r in _card_rows(stack)] == [
        ("undeliverable", None),
        ("reposted", NEW_APPROVALS),
    ]
    assert stack.driver.click("approve", "1", BOB, NEW_APPROVALS, card.response["ts"]).status == 200
    wait_until(lambda: stack.request(1).state.value == "SUCCEEDED" or None, 20, "the rollback")


def _card_rows(stack: Stack) -> list[Any]:
    return [r for r in stack.audit_rows() if r.action == "card"]


def test_card_in_the_approval_channel_mentions_approvers_and_links_back(routed: Callable[..., Stack]) -> None:
    """The card mentions the approver group and approvers (never the requester); the typed channel gets a link."""
    stack = routed(slack={"approval_channel": APPROVALS})
    assert stack.driver.slash_command('rollback fraud_detector 2 --reason "<!channel> look"', ALICE).status == 200

    card = stack.card(APPROVALS)
    stack.settled()
    text = texts_of(stack.card_blocks(card))
    assert f"<!subteam^{GROUP}>" in text and f"<@{BOB}>" in text and f"<@{DAVE}>" in text
    assert f"<@{ALICE}>" not in text.split("Who can approve")[1].split("\n")[1]  # not asked to approve her own
    assert "&lt;!channel&gt; look" in text and "<!channel>" not in text  # a reason cannot ping anyone
    assert f"<!subteam^{GROUP}>" in card.body["text"]  # the notification itself pings the group
    link = stack.fake.wait_for("chat.postMessage", 1, channel=OPS)[0].body["text"]
    assert "R1" in link and f"<#{APPROVALS}>" in link and "https://fake.slack.com/archives/" in link


def test_approvers_get_a_dm_with_the_card_and_a_failed_dm_is_audited(
    routed: Callable[..., Stack], fake_slack: FakeSlack
) -> None:
    """With notify_approvers: dm each approver who is a person (not the requester, not a group) gets a DM linking
    to the card; a DM Slack refuses is logged and audited and blocks nothing."""
    fake_slack.fail_next("conversations.open", error="cannot_dm_bot")  # the first approver's DM fails
    stack = routed(slack={"approval_channel": APPROVALS, "notify_approvers": "dm"})
    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200

    stack.card(APPROVALS)
    opened = stack.fake.wait_for("conversations.open", 1)
    stack.settled()
    asked = sorted(c.body["users"] for c in stack.fake.calls_to("conversations.open", ok_only=False))
    assert asked == sorted([BOB, DAVE])  # people holding an approver role; not alice, not the group
    dms = [c for c in stack.fake.calls_to("chat.postMessage") if c.body["channel"].startswith("D")]
    assert [c.body["channel"] for c in dms] == [opened[0].response["channel"]["id"]]
    assert f"<@{ALICE}> asks for your approval of R1" in dms[0].body["text"]
    assert f"https://fake.slack.com/archives/{APPROVALS}/" in dms[0].body["text"]
    failed = [r for r in stack.audit_rows() if r.action == "notify_approver"]
    assert [(r.outcome, r.detail["error"]) for r in failed] == [("failed", "cannot_dm_bot")]
    assert stack.pending() == 0


def test_approver_click_in_the_approval_channel_rolls_the_fleet_back_with_the_story_in_the_thread(
    routed_devstack: Callable[..., Stack], tfs: Any
) -> None:
    """The card lands in the approval channel mentioning the approver group; bob's click there rolls every devstack
    replica to v2; the rollout's start, phases and per-replica result are replies in the card's thread."""
    stack = routed_devstack(slack={"approval_channel": APPROVALS})
    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
    card = stack.card(APPROVALS)
    ts = card.response["ts"]
    assert f"<!subteam^{GROUP}>" in texts_of(stack.card_blocks(card))

    assert stack.driver.click("approve", "1", BOB, APPROVALS, ts).status == 200
    wait_until(lambda: stack.request(1).state.value == "SUCCEEDED", 60, "the rollout")
    stack.settled()

    for target in stack.dev.targets if stack.dev else ():
        assert tfs(target).metadata(spec(MODEL, label="stable")).model_spec.version.value == 2
    thread = [c.body["text"] for c in stack.fake.calls_to("chat.postMessage", channel=APPROVALS, thread_ts=ts)]
    assert len(thread) >= 3, thread  # started, at least one phase, the result: in this order
    assert "R1 is rolling out" in thread[0] and all(t.startswith("Phase *") for t in thread[1:-1]), thread
    assert "R1 SUCCEEDED" in thread[-1] and thread[-1].count(":white_check_mark:") == 3  # one line per replica
    assert "SUCCEEDED" in texts_of(stack.fake.messages[(APPROVALS, ts)]["blocks"])  # the card itself, in place


def test_emergency_voids_the_pending_request_and_its_retro_review_is_acknowledged_by_button(
    routed_devstack: Callable[..., Stack], tfs: Any
) -> None:
    """dave's emergency while alice's request is pending: hers is VOID, his executes on the fleet, its retro-review
    stays open (reminder posted once the shortened deadline passed) until bob presses Acknowledge; dave may not."""
    stack = routed_devstack(slack={"approval_channel": APPROVALS}, expiry_every_s=0.2)
    stack.bot.service.deps.retro_review_within = timedelta(seconds=1)
    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
    stack.card(APPROVALS)
    assert stack.driver.slash_command(EMERGENCY, DAVE).status == 200
    wait_until(lambda: _state(stack, 2) == "SUCCEEDED", 60, "the emergency rollout")
    assert stack.request(1).state.value == "VOID" and "R2" in stack.request(1).decision_reason
    for target in stack.dev.targets if stack.dev else ():
        assert tfs(target).metadata(spec(MODEL, label="stable")).model_spec.version.value == 2

    reminder = wait_until(
        lambda: [c for c in stack.fake.calls_to("chat.postMessage", channel=FRAUD_INCIDENT) if _is_reminder(c.body)],
        15,
        "the retro-review reminder",
    )
    button = reminder[0].body["blocks"][-1]["elements"][0]
    assert (button["action_id"], button["value"]) == ("acknowledge", "2")
    review = stack.request(2).retro_review
    assert review is not None and review.open

    assert stack.driver.click("acknowledge", "2", DAVE, FRAUD_INCIDENT, reminder[0].response["ts"]).status == 200
    refusal = stack.fake.wait_for("chat.postEphemeral", 1, user=DAVE)[0].body["text"]
    assert "two-person rule" in refusal
    assert stack.driver.click("acknowledge", "2", BOB, FRAUD_INCIDENT, reminder[0].response["ts"]).status == 200
    wait_until(lambda: not stack.request(2).retro_review.open, 15, "the acknowledgement")  # type: ignore[union-attr]
    stack.settled()
    assert stack.request(2).retro_review.acknowledged_by == BOB  # type: ignore[union-attr]
    cards = [c for c in stack.fake.calls_to("chat.postMessage", channel=APPROVALS) if "blocks" in c.body]
    emergency_card = stack.fake.messages[(APPROVALS, cards[1].response["ts"])]
    assert f"Retro-review acknowledged* by <@{BOB}>" in texts_of(emergency_card["blocks"])
    assert all(b["type"] != "actions" for b in emergency_card["blocks"])  # no Acknowledge left to press
    acknowledged = [r for r in stack.audit_rows() if r.action == "review"]
    assert [(r.actor, r.outcome) for r in acknowledged if r.outcome == "acknowledged"] == [(BOB, "acknowledged")]


def _state(stack: Stack, request_id: int) -> str | None:
    """The request's state, or None while it does not exist yet (the command runs after its ack)."""
    with stack.bot.db.uow(readonly=True) as uow:
        found = uow.requests.get(request_id)
    return found.state.value if found else None


def _is_reminder(body: dict[str, Any]) -> bool:
    return "Retro-review overdue" in str(body.get("text")) and bool(body.get("blocks"))
