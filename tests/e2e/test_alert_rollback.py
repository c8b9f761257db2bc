"""Alert to action, end to end: signed HTTP, the fake Slack Web API, a devstack fleet over mTLS.

A firing Alertmanager alert posts once (repeats never post again) with "Request rollback to vN"; a viewer's click
is refused, an operator's opens the pre-filled modal; submitting it opens a request whose card goes to the
approval channel; the approver's click rolls the fleet back; the resolved alert updates the first post in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.policy import Identity
from bot.devstack.certs import DevCerts
from bot.settings import Settings, SlackChannels
from bot.usecases.context import Context
from tests.devstack_support import MODEL, config_text, model_entry, spec, wait_until
from tests.e2e.alert_support import (
    actions_of,
    alert_posts,
    am_alert,
    blocks_of,
    now_rfc3339,
    opened_view,
    send_alerts,
    text_of,
)
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.stack import ALICE, BOB, FRAUD_INCIDENT, Stack, start_stack, stop_stack

APPROVALS = "C0APPROVE"
Configure = Callable[[Settings], Settings]


def with_approval_channel(settings: Settings) -> Settings:
    """Cards go to the approval channel (DESIGN §5), so the test can tell them from the alert posts."""
    return replace(settings, slack=replace(settings.slack or SlackChannels(), approval_channel=APPROVALS))


@pytest.fixture
def alert_devstack(
    tmp_path: Path,
    db_url: str,
    fake_slack: FakeSlack,
    fleet: Any,
    devstack_certs: DevCerts,
    demo_models: Path,
    tfs: Any,
) -> Iterator[Callable[..., Stack]]:
    """Factory: the bot driving 3 devstack replicas serving fraud_detector {2, 3} with `stable` on `stable`."""
    started: list[Stack] = []

    def start(stable: int = 2, configure: Configure = with_approval_channel, **options: Any) -> Stack:
        entry = model_entry(versions=[2, 3], labels={"stable": stable})
        dev = fleet(config_text(entry), 3, allow_version_labels_for_unavailable_models=True)
        for target in dev.targets:
            stubs = tfs(target)
            wait_until(lambda s=stubs: all(s.status().get(v) == "AVAILABLE" for v in (2, 3)), 30, "initial load")
        base = str(demo_models)
        initial = FleetConfig(
            (ModelState(MODEL, base, policy=VersionPolicy.specific([2, 3]), labels=(("stable", stable),)),)
        )
        stack = start_stack(
            tmp_path, db_url, fake_slack, dev=dev, certs=devstack_certs, base_path=base, initial=initial,
            configure=configure, **options,
        )  # fmt: skip
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stop_stack(stack)


def promote_to_3(stack: Stack) -> None:
    """alice promotes v3 to stable and bob approves (console-style, through the service): v2 becomes history."""
    service = stack.bot.service
    assert service.handle_text(Context(Identity(ALICE)), 'promote fraud_detector 3 --reason "release 3"').ok
    assert service.handle_text(Context(Identity(BOB)), "approve R1").ok


def served(stack: Stack, tfs: Any) -> set[int]:
    """The version every replica resolves `stable` to."""
    targets = stack.dev.targets if stack.dev else ()
    return {tfs(t).metadata(spec(MODEL, label="stable")).model_spec.version.value for t in targets}


def test_alert_button_modal_request_approval_rollback_and_resolved_update(
    alert_devstack: Callable[..., Stack], tfs: Any
) -> None:
    """Firing alert -> one post with the button; bob (viewer) refused; alice's modal -> request card in the approval
    channel; bob approves -> fleet on v2; the resolved alert edits the first post, which no repeat re-posted."""
    stack = alert_devstack(stable=2)
    promote_to_3(stack)
    assert served(stack, tfs) == {3}
    fake, driver = stack.fake, stack.driver
    starts = now_rfc3339()

    firing = am_alert("fp-drift-1", starts)
    assert send_alerts(stack, firing).json() == {"queued": 1, "ignored": 0}
    assert send_alerts(stack, firing).status == 200  # Alertmanager repeats itself: no second post
    post = wait_until(lambda: alert_posts(stack, FRAUD_INCIDENT), 20, "the alert post")[0]
    channel, ts = post.response["channel"], post.response["ts"]
    stack.settled()
    assert len(alert_posts(stack, FRAUD_INCIDENT)) == 1
    blocks = blocks_of(stack, channel, ts)
    assert "FraudScoreDrift" in text_of(blocks) and "PSI 0.31" in text_of(blocks)
    (button,) = actions_of(blocks)
    assert (button["action_id"], button["text"]["text"]) == ("alert_rollback", "Request rollback to v2")

    assert driver.click("alert_rollback", button["value"], BOB, channel, ts).status == 200
    refusal = fake.wait_for("chat.postEphemeral", user=BOB)[0].body["text"]
    assert "rollback" in refusal.lower() and not fake.calls_to("views.open")

    assert driver.click("alert_rollback", button["value"], ALICE, channel, ts).status == 200
    view = opened_view(stack)
    reason = view["blocks"][1]["element"]["initial_value"]
    assert reason == "alert FraudScoreDrift: score distribution drifted (PSI 0.31)"
    assert driver.submit_view(view["callback_id"], ALICE, {"reason": reason}, view["private_metadata"]).status == 200

    card = stack.card(APPROVALS, timeout=20)
    assert "<!subteam^S0MLONCALL>" in card.body["text"]  # the approver group (permissions.yaml) is pinged
    request = wait_until(lambda: stack.request(2), 10, "the request")
    assert (request.requester, request.to_version, request.state.value) == (ALICE, 2, "PENDING")
    assert request.extra["alert"]["fingerprint"] == "fp-drift-1"
    assert request.extra["alert"]["link"].startswith("https://prometheus.example/")

    assert driver.click("approve", "2", BOB, APPROVALS, card.response["ts"]).status == 200
    wait_until(lambda: stack.request(2).state.value == "SUCCEEDED", 60, "the rollout")
    assert served(stack, tfs) == {2}

    assert send_alerts(stack, am_alert("fp-drift-1", starts, status="resolved")).status == 200
    wait_until(lambda: "resolved" in text_of(blocks_of(stack, channel, ts)), 20, "the post to show the resolution")
    stack.settled()
    assert not actions_of(blocks_of(stack, channel, ts))  # no button on a resolved alert
    assert len(alert_posts(stack, FRAUD_INCIDENT)) == 1
    assert any(c.body.get("ts") == ts for c in fake.calls_to("chat.update", channel=channel))

    rows = stack.audit_rows()
    alert_rows = [(r.actor, r.outcome) for r in rows if r.action == "alert"]
    assert alert_rows == [("modelbot", "firing"), ("modelbot", "resolved")]  # repeats are counted, not audited
    request_rows = [r for r in rows if r.request_id == 2]
    assert request_rows and all(r.detail["alert"]["fingerprint"] == "fp-drift-1" for r in request_rows)
    assert [r.actor for r in rows if r.action == "rollback" and r.request_id == 2] == [ALICE]
