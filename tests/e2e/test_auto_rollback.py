"""Guarded automatic rollback end to end (devstack fleet over mTLS, fake Slack): an opted-in alert still firing after
`min_firing` rolls the model back once to last-known-good as emergency by `modelbot`; a second alert inside the
cooldown is held back, with the reason on its post and the manual button offered; everything audited as modelbot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.alerts import AutoState
from bot.frontends.slack.alert_posts import parse_value
from bot.settings import AutoRollback, Settings
from tests.devstack_support import MODEL, wait_until
from tests.e2e.alert_support import actions_of, alert_posts, am_alert, blocks_of, send_alerts, text_of
from tests.e2e.stack import FRAUD_INCIDENT, Stack
from tests.e2e.test_alert_rollback import alert_devstack, promote_to_3, served, with_approval_channel

__all__ = ["alert_devstack"]  # the fixture, shared with the alert-button test


def opted_in(settings: Settings) -> Settings:
    """fraud_detector rolls back on FraudScoreDrift after 2 s of firing, at most once an hour, 1 h cooldown."""
    auto = AutoRollback(
        on_alerts=("FraudScoreDrift",),
        min_firing=timedelta(seconds=2),
        cooldown=timedelta(hours=1),
        max_per_hour=1,
        min_stable=timedelta(0),
    )
    settings = with_approval_channel(settings)
    model = replace(settings.models[MODEL], auto_rollback=auto)
    return replace(settings, models={**settings.models, MODEL: model})


class ShiftedClock:
    """The wall clock plus `shift`: lets the test put a change further in the past than the cooldown."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert_row(stack: Stack, alert_id: int) -> Any:
    with stack.bot.db.uow(readonly=True) as uow:
        return uow.alerts.get(alert_id)


def test_auto_rollback_acts_once_then_holds_in_cooldown(alert_devstack: Callable[..., Stack], tfs: Any) -> None:
    """v3 promoted over v2; FraudScoreDrift fires: after min_firing modelbot rolls back to v2 (emergency, retro-review,
    audited); a second firing inside the cooldown is held, says why on its post and keeps the manual button."""
    clock = ShiftedClock()
    stack = alert_devstack(stable=2, configure=opted_in, alert_sweep_s=0.2, clock=clock)
    promote_to_3(stack)  # R1: v2 was stable since the adoption, now v3
    clock.shift += timedelta(hours=2)  # the promote is now older than the cooldown

    assert send_alerts(stack, am_alert("fp-a", rfc3339(clock()))).status == 200
    wait_until(lambda: alert_posts(stack, FRAUD_INCIDENT), 20, "the alert post")
    wait_until(lambda: alert_row(stack, 1).auto_state is AutoState.ACTED, 30, "the automatic decision")
    request_id = alert_row(stack, 1).auto_request_id
    wait_until(lambda: stack.request(request_id).state.is_final, 60, "the automatic rollout")
    request = stack.request(request_id)
    assert (request.requester, request.emergency, request.to_version, request.state.value) == (
        "modelbot",
        True,
        2,
        "SUCCEEDED",
    )
    assert request.retro_review is not None and request.retro_review.open
    assert request.reason.startswith("automatic rollback: alert FraudScoreDrift")
    assert served(stack, tfs) == {2}

    assert send_alerts(stack, am_alert("fp-b", rfc3339(clock()))).status == 200  # a new firing, inside the cooldown
    wait_until(lambda: alert_row(stack, 2) and alert_row(stack, 2).auto_state is AutoState.HELD, 30, "the hold")
    assert "cooldown" in alert_row(stack, 2).auto_reason
    stack.settled()
    assert served(stack, tfs) == {2}

    posts = alert_posts(stack, FRAUD_INCIDENT)
    assert len(posts) == 2
    first = blocks_of(stack, FRAUD_INCIDENT, posts[0].response["ts"])
    assert f"R{request_id}" in text_of(first) and not actions_of(first)
    second = blocks_of(stack, FRAUD_INCIDENT, posts[1].response["ts"])
    assert "held back" in text_of(second) and "cooldown" in text_of(second)
    offered = actions_of(second)
    assert [a["action_id"] for a in offered] in (["alert_rollback"], ["alert_rollback_pick"])
    values = [a["value"] for a in offered if "value" in a] + [o["value"] for a in offered for o in a.get("options", [])]
    offered_versions = {parse_value(v)[1] for v in values if parse_value(v)}  # type: ignore[index]
    assert offered_versions and all(v < 2 for v in offered_versions), offered  # never forward to the suspect v3

    with stack.bot.db.uow(readonly=True) as uow:
        by_bot = [r for r in uow.requests.emergencies() if r.requester == "modelbot"]
    assert [r.id for r in by_bot] == [request_id]  # exactly once
    rows = stack.audit_rows()
    decisions = [(r.actor, r.action, r.outcome) for r in rows if r.action == "auto_rollback"]
    assert decisions == [("modelbot", "auto_rollback", "acted"), ("modelbot", "auto_rollback", "held")]
    own = [(r.actor, r.action, r.outcome) for r in rows if r.request_id == request_id]
    assert ("modelbot", "rollback", "requested") in own and ("modelbot", "execute", "succeeded") in own
    assert all(actor == "modelbot" for actor, _, _ in own)
