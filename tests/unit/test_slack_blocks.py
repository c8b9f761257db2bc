"""The approval card's Block Kit: Slack's limits hold for any input, user text stays inert, buttons follow the state."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import example, given
from hypothesis import strategies as st

from bot.core.change_request import Approval, ChangeRequest, RequestState
from bot.core.fleet import ProgressEvent
from bot.frontends.slack.blocks import MAX_BLOCKS, render_card
from bot.frontends.slack.commands import slack_unescape
from bot.frontends.slack.mrkdwn import clip, escape
from bot.usecases.cards import CardView

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _request(**changes: object) -> ChangeRequest:
    base = ChangeRequest(
        id=7,
        action="rollback",
        model="fraud_detector",
        from_version=3,
        to_version=2,
        label="stable",
        reason="INC-481 false positives",
        requester="U01ALICE",
        created_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
        required_approvals=1,
        approver_roles=frozenset({"approver"}),
        digest="d" * 64,
        model_generation=1,
        extra={"signature_note": "signature compatible (features: float[None, 20]) -> (score: float[None, 1])"},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _card(req: ChangeRequest, **changes: object) -> CardView:
    card = CardView(
        request=req,
        from_meta={"metrics": {"auc": 0.941}, "note": "higher recall", "at": NOW - timedelta(days=3)},
        to_meta={"auc": 0.927, "note": "adds merchant-category embeddings", "created_at": "2026-11-01T00:00:00+00:00"},
        approvers=("approver", "U02BOB", "S0MLONCALL"),
    )
    return replace(card, **changes)  # type: ignore[arg-type]


def _all_text(blocks: list[dict[str, object]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def _mrkdwn(node: object) -> list[str]:
    """Every mrkdwn text in the blocks (plain_text is shown literally by Slack, so it cannot mention anyone)."""
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [t for value in node.values() for t in _mrkdwn(value)]
    if isinstance(node, list):
        return [t for value in node for t in _mrkdwn(value)]
    return []


def test_pending_card_shows_the_change_and_both_buttons() -> None:
    """A PENDING card names model, versions, requester, reason, metadata, approvers, and ends with the buttons."""
    message = render_card(_card(_request()), NOW)
    text = _all_text(message.blocks)
    for expected in (
        "fraud_detector",
        "v3 → v2",
        "<@U01ALICE>",
        "INC-481 false positives",
        "auc=0.941",
        "auc=0.927",
        "3d old",
        "<@U02BOB>",
        "<!subteam^S0MLONCALL>",  # approver groups are mentioned (they get notified)
        "signature compatible",
        "<!date^",
    ):
        assert expected in text, expected
    actions = message.blocks[-1]
    assert actions["type"] == "actions"
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [("approve", "7"), ("reject", "7")]
    assert message.text.startswith("Rollback R7")


def test_buttons_disappear_once_decided() -> None:
    """Every state but PENDING renders without buttons; a rejection shows who and why."""
    for state in RequestState:
        if state is RequestState.PENDING:
            continue
        req = _request(state=state, decided_by="U02BOB", decision_reason="not during the freeze")
        blocks = render_card(_card(req), NOW).blocks
        assert all(b["type"] != "actions" for b in blocks), state
    rejected = _all_text(
        render_card(
            _card(_request(state=RequestState.REJECTED, decided_by="U02BOB", decision_reason="not now")), NOW
        ).blocks
    )
    assert "Rejected" in rejected and "<@U02BOB>" in rejected and "not now" in rejected


def test_progress_and_result_are_shown() -> None:
    """EXECUTING shows a per-replica progress bar; a final state shows one line per replica."""
    events = [ProgressEvent("load", "r1", "AVAILABLE", 1, 2), ProgressEvent("switch", "r2", "reloaded", 1, 2)]
    running = _all_text(render_card(_card(_request(state=RequestState.EXECUTING)), NOW, events).blocks)
    assert "`r1` ▰▱▱▱" in running and "`r2` ▰▰▱▱" in running
    replicas = ({"replica": "r1", "ok": True, "detail": "stable -> v2"}, {"replica": "r2", "ok": False, "detail": "x"})
    done = _all_text(render_card(_card(_request(state=RequestState.PARTIAL), replicas=replicas), NOW).blocks)
    assert ":white_check_mark: `r1`" in done and ":x: `r2`" in done and "PARTIAL" in done


def test_a_huge_fleet_stays_within_the_limits() -> None:
    """200 replicas are summarised ("… and N more") and the card stays under 50 blocks."""
    replicas = tuple({"replica": f"10.0.0.{i}:8500", "ok": True, "detail": "ok"} for i in range(200))
    message = render_card(_card(_request(state=RequestState.SUCCEEDED), replicas=replicas), NOW)
    assert len(message.blocks) <= MAX_BLOCKS
    assert "… and 175 more" in _all_text(message.blocks)


@given(reason=st.text(min_size=1, max_size=6000), note=st.text(max_size=3000), model=st.text(min_size=1, max_size=300))
@example(reason="<!channel> see <http://evil.example|here>", note="<!here>", model="<@U0BOSS>")
def test_any_user_text_renders_within_limits_and_inert(reason: str, note: str, model: str) -> None:
    """Whatever users typed, the card validates against Slack's limits and cannot mention or link anyone."""
    req = _request(reason=reason, model=model, decision_reason=reason)
    card = _card(req, to_meta={"note": note, "metrics": {"k" * 100: "v" * 3000}})
    message = render_card(card, NOW)  # slack_sdk validates every block: raises if a limit is broken
    assert len(message.blocks) <= MAX_BLOCKS
    for block in message.blocks:
        section = block.get("text")
        if isinstance(section, dict):
            assert len(section["text"]) <= 3000
    for risky in ("<!channel>", "<!here>", "<http", "<@U0BOSS>"):
        if risky in reason + note + model:
            assert all(risky not in text for text in [*_mrkdwn(message.blocks), message.text])


def test_escape_and_clip() -> None:
    """escape() neutralises Slack's control sequences; clip() marks what it cut."""
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert clip("abcdef", 4) == "abc…" and clip("abc", 4) == "abc"


def test_approvals_so_far_are_listed() -> None:
    """A partly approved request lists who approved so far."""
    req = _request(required_approvals=2, approvals=(Approval("U04DAVE", NOW),))
    assert "Approved by <@U04DAVE>" in _all_text(render_card(_card(req), NOW).blocks)


def test_slash_command_text_is_unescaped() -> None:
    """Slack's &amp; &lt; &gt; escapes are undone before parsing, so reasons are stored as typed."""
    assert slack_unescape("rollback m 2 --reason &quot;A&amp;B &lt;x&gt;") == "rollback m 2 --reason &quot;A&B <x>"
