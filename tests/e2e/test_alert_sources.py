"""Alert sources and the version pick, end to end with the in-memory fleet: PagerDuty V3 webhooks (signature good,
forged, replayed, rotated; resolved updates the post), Alertmanager dedupe, and an adopted fleet's select menu."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.settings import AlertSettings, PagerDutySettings, Settings
from tests.devstack_support import wait_until
from tests.e2e.alert_support import (
    PD_SECRET,
    actions_of,
    alert_posts,
    am_alert,
    blocks_of,
    now_rfc3339,
    opened_view,
    pagerduty_event,
    pd_signature,
    pick,
    send_alerts,
    send_pagerduty,
    text_of,
)
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.stack import ALICE, FRAUD_INCIDENT, Stack, start_stack, stop_stack


def with_pagerduty(settings: Settings) -> Settings:
    """PagerDuty incidents name the model by their service's summary, "Fraud API" standing for fraud_detector."""
    pagerduty = PagerDutySettings(model_field="service.summary", models={"Fraud API": "fraud_detector"})
    return replace(settings, alerts=AlertSettings(pagerduty))


@pytest.fixture
def pd_stack(tmp_path: Path, db_url: str, fake_slack: FakeSlack) -> Iterator[Stack]:
    """The bot with a FakeFleet (stable v3 adopted, no history), PagerDuty enabled with PD_SECRET."""
    stack = start_stack(tmp_path, db_url, fake_slack, configure=with_pagerduty, pagerduty_secret=PD_SECRET)
    yield stack
    stop_stack(stack)


def alerts_recorded(stack: Stack) -> int:
    with stack.bot.db.uow(readonly=True) as uow:
        return sum(1 for i in range(1, 20) if uow.alerts.get(i) is not None)


def test_pagerduty_signature_good_forged_replayed_and_resolved(pd_stack: Stack) -> None:
    """A signed incident.triggered posts once; a forged one is 401 and records nothing; a replay records nothing
    new; a rotation header with one good signature is accepted; incident.resolved edits the post in place."""
    stack = pd_stack
    body = pagerduty_event("incident.triggered", service="Fraud API")
    forged = pagerduty_event("incident.triggered", incident="PFORGED", service="Fraud API")

    assert send_pagerduty(stack, forged, pd_signature(forged, "not-the-secret")).status == 401
    assert send_pagerduty(stack, forged, None).status == 401
    assert send_pagerduty(stack, body, pd_signature(forged)).status == 401  # a signature of another body
    assert alerts_recorded(stack) == 0

    accepted = send_pagerduty(stack, body, pd_signature(body))
    assert (accepted.status, accepted.json()) == (202, {"queued": 1, "ignored": 0})
    assert send_pagerduty(stack, body, pd_signature(body)).status == 202  # replayed (PagerDuty retries too)
    post = wait_until(lambda: alert_posts(stack, FRAUD_INCIDENT), 20, "the PagerDuty alert post")[0]
    channel, ts = post.response["channel"], post.response["ts"]
    shown = text_of(blocks_of(stack, channel, ts))
    assert "Fraud score drift" in shown and "(pagerduty)" in shown and "acme.pagerduty.com" in shown
    assert alerts_recorded(stack) == 1

    resolved = pagerduty_event("incident.resolved", service="Fraud API")
    rotated = f"v1={'0' * 64}, {pd_signature(resolved)}"
    assert send_pagerduty(stack, resolved, rotated).status == 202
    wait_until(lambda: "resolved" in text_of(blocks_of(stack, channel, ts)), 20, "the post to show the resolution")
    stack.settled()
    assert len(alert_posts(stack, FRAUD_INCIDENT)) == 1
    other = pagerduty_event("incident.triggered", incident="POTHER", service="Payments API")
    assert send_pagerduty(stack, other, pd_signature(other)).json() == {"queued": 0, "ignored": 1}
    outcomes = [r.outcome for r in stack.audit_rows() if r.action == "alert"]
    assert outcomes == ["firing", "resolved"]


def test_pagerduty_is_404_without_a_secret(fake_stack: Stack) -> None:
    """Without MODELBOT_PAGERDUTY_SECRET the source is off: 404, whatever the signature, nothing recorded."""
    body = pagerduty_event("incident.triggered")
    answer = send_pagerduty(fake_stack, body, pd_signature(body, ""))
    assert answer.status == 404 and "MODELBOT_PAGERDUTY_SECRET" in answer.body
    assert alerts_recorded(fake_stack) == 0


def test_adopted_fleet_offers_a_pick_of_lower_versions_and_repeats_post_once(pd_stack: Stack) -> None:
    """No stable history (adopted fleet): the post offers v2, v1 (below the current v3, newest first); three repeats
    post once; picking v2 as alice opens the pre-filled modal and submitting it opens her request with the alert."""
    stack = pd_stack
    firing = am_alert("fp-adopted", now_rfc3339())
    for _ in range(3):
        assert send_alerts(stack, firing).status == 200
    post = wait_until(lambda: alert_posts(stack, FRAUD_INCIDENT), 20, "the alert post")[0]
    channel, ts = post.response["channel"], post.response["ts"]
    stack.settled()
    assert len(alert_posts(stack, FRAUD_INCIDENT)) == 1
    (menu,) = actions_of(blocks_of(stack, channel, ts))
    assert menu["type"] == "static_select"
    assert [o["text"]["text"] for o in menu["options"]] == ["v2 (previous)", "v1"]
    with stack.bot.db.uow(readonly=True) as uow:
        assert uow.alerts.get(1).notifications == 3  # type: ignore[union-attr]

    assert pick(stack, menu["options"][0]["value"], ALICE, channel, ts).status == 200
    view = opened_view(stack)
    assert "v2" in view["blocks"][0]["text"]["text"]
    reason = view["blocks"][1]["element"]["initial_value"]
    assert (
        stack.driver.submit_view(view["callback_id"], ALICE, {"reason": reason}, view["private_metadata"]).status == 200
    )
    request = wait_until(lambda: _request(stack, 1), 20, "the request")
    assert (request.requester, request.to_version, request.reason) == (ALICE, 2, reason)
    assert request.extra["alert"]["fingerprint"] == "fp-adopted"


def _request(stack: Stack, request_id: int) -> object:
    with stack.bot.db.uow(readonly=True) as uow:
        return uow.requests.get(request_id)
