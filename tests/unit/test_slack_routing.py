"""Approval routing in pieces: mentions, who is asked to approve, the retro-review on the card, the Home view's
limits, the Events API door, and the private notices to a requester."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.core.change_request import RETRO_REVIEW, ChangeRequest, RequestState, RetroReview
from bot.core.policy import parse_policy
from bot.frontends.slack.blocks import render_card
from bot.frontends.slack.guard import Refusal, signed_request
from bot.frontends.slack.home import MAX_BLOCKS, render_home
from bot.frontends.slack.mrkdwn import mention
from bot.frontends.slack.notices import Notices
from bot.usecases.approval_routing import approvers
from bot.usecases.cards import CardView
from bot.usecases.home import HomeView
from tests.unit.test_slack_blocks import _request

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = """
roles: {viewer: [requests], operator: [rollback], approver: [approve, reject], auditor: [approve]}
members:
  U01ALICE: [operator, approver]
  U02BOB: [approver]
  W03CAROL: [approver]
  U04EVE: [auditor]
  S0MLONCALL: [approver]
  S0VIEWERS: [viewer]
deny: {U02BOB: [approve]}
models: {fraud_detector: {rollback: {approvals: 1, approver_roles: [approver]}}}
"""


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ("U02BOB", "<@U02BOB>"),
        ("W03CAROL", "<@W03CAROL>"),  # Enterprise Grid users
        ("S0MLONCALL", "<!subteam^S0MLONCALL>"),
        ("approver", "approver"),  # a role is a word
        ("<!channel>", "&lt;!channel&gt;"),
        ("S0X|<!here>", "S0X|&lt;!here&gt;"),  # not an ID: never a mention
    ],
)
def test_mentions_only_ids_and_escape_everything_else(entry: str, shown: str) -> None:
    """Users and user groups from the policy become mentions; anything else is inert text."""
    assert mention(entry) == shown


@given(st.text(max_size=40))
def test_no_text_becomes_a_special_mention(text: str) -> None:
    """Whatever the input, `mention` never yields <!channel>, <!here> or <!everyone>."""
    assert not any(f"<!{word}" in mention(text) for word in ("channel", "here", "everyone"))


def test_approvers_are_people_then_groups_holding_the_rules_roles_minus_requester_and_denied() -> None:
    """alice asked (not listed), bob is denied `approve`, eve's role is not an approver role of this change."""
    deps: Any = SimpleNamespace(policy=parse_policy(yaml.safe_load(POLICY)))
    assert approvers(deps, _request(requester="U01ALICE")) == ("W03CAROL", "S0MLONCALL")
    assert approvers(deps, _request(requester="U09ZED")) == ("U01ALICE", "W03CAROL", "S0MLONCALL")


def _emergency(state: RequestState, acknowledged_by: str | None = None, request_id: int = 7) -> ChangeRequest:
    review = RetroReview(due=NOW + timedelta(hours=24), acknowledged_by=acknowledged_by, acknowledged_at=NOW)
    req = _request(id=request_id, state=state, emergency=True, required_approvals=0)
    return replace(req, extra={**req.extra, RETRO_REVIEW: review.as_extra()})


def _actions(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["action_id"], e["value"]) for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_emergency_card_offers_acknowledge_once_finished_and_names_who_acknowledged() -> None:
    """Running: due line, no button; finished: Acknowledge; acknowledged: who did it, no button."""
    running = render_card(CardView(_emergency(RequestState.EXECUTING)), NOW)
    assert "Retro-review due" in json.dumps(running.blocks) and _actions(running.blocks) == []
    done = render_card(CardView(_emergency(RequestState.SUCCEEDED)), NOW)
    assert _actions(done.blocks) == [("acknowledge", "7")]
    acked = render_card(CardView(_emergency(RequestState.SUCCEEDED, "U02BOB")), NOW)
    assert "acknowledged* by <@U02BOB>" in json.dumps(acked.blocks) and _actions(acked.blocks) == []


def test_home_view_stays_within_slacks_limits_with_many_open_requests() -> None:
    """60 decidable requests and 30 reviews fit in 100 blocks, each list saying how many more there are."""
    requests = tuple((_request(id=n, model=f"model_{n}"), True) for n in range(1, 61))
    reviews = tuple((_emergency(RequestState.SUCCEEDED, request_id=100 + n), True) for n in range(30))
    view = render_home(HomeView(allowed=True, now=NOW, open_requests=requests, reviews=reviews))
    assert len(view["blocks"]) <= MAX_BLOCKS
    block_ids = [b["block_id"] for b in view["blocks"] if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))  # Slack refuses a view with a repeated block_id
    text = json.dumps(view, ensure_ascii=False)
    assert "… and 40 more" in text and "… and 20 more" in text
    assert ("approve", "20") in _actions(view["blocks"]) and ("approve", "21") not in _actions(view["blocks"])


def _event(**event: Any) -> bytes:
    body = {"type": "event_callback", "team_id": "T0FAKE", "event_id": "Ev1", "event": event}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        (_event(type="app_home_opened", user="U02BOB", tab="home"), True),
        (json.dumps({"type": "url_verification", "challenge": "abc"}).encode(), True),
        (_event(type="app_home_opened", tab="home"), False),  # nobody to show it to
        (_event(type="message", user="U02BOB", text="hi"), False),  # not subscribed
        (b'{"type": "event_callback"}', False),
        (b"[1, 2]", False),
        (b"[" * 100_000, False),
    ],
)
def test_events_api_door_takes_only_what_modelbot_subscribes_to(raw: bytes, accepted: bool) -> None:
    """A signed JSON body passes only as url_verification or an app_home_opened with its user."""
    result = signed_request(raw, "application/json", {"content-type": "application/json"})
    assert isinstance(result, Refusal) is not accepted


class _Client:
    """Records the Web API calls Notices makes for a DM."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def conversations_open(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("conversations.open", kwargs))
        return {"channel": {"id": "D0ALICE"}}

    def chat_postMessage(self, **kwargs: Any) -> dict[str, Any]:  # slack_sdk's name
        self.calls.append(("chat.postMessage", kwargs))
        return {"ok": True}


def test_notice_goes_through_the_remembered_response_url_and_else_by_dm() -> None:
    """Within its lifetime the command's response_url is used; after it (or for another channel), a DM."""
    now = [0.0]
    sent: list[dict[str, Any]] = []
    notices = Notices(clock=lambda: now[0], ttl_s=60)
    notices.remember("U01ALICE", "C0OPS", lambda **kw: sent.append(kw))
    client: Any = _Client()
    assert notices.tell(client, "U01ALICE", "C0OPS", "R1 waits in <#C0APPROVE>") == "ephemeral"
    assert sent == [{"text": "R1 waits in <#C0APPROVE>", "response_type": "ephemeral"}]  # links kept as links
    assert notices.tell(client, "U01ALICE", "C0OTHER", "x") == "dm"
    now[0] = 61.0
    assert notices.tell(client, "U01ALICE", "C0OPS", "y") == "dm"
    assert [c[0] for c in client.calls] == ["conversations.open", "chat.postMessage"] * 2
