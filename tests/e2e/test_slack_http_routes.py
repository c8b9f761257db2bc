"""The operational routes of `modelbot serve`: health, readiness, metrics and the Alertmanager webhook."""

from __future__ import annotations

import json

from bot.core.errors import ServingError
from bot.core.policy import Identity
from bot.usecases.context import Context
from tests.e2e.slack_driver import HttpResult, http
from tests.e2e.stack import ALERT_TOKEN, ALICE, BOB, FRAUD_INCIDENT, ROLLBACK, Stack


def _alert(stack: Stack, payload: object, token: str | None = ALERT_TOKEN) -> HttpResult:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return http(stack.url + "/alerts", data, headers)


def _firing(model: str, fingerprint: str) -> dict[str, object]:
    return {
        "status": "firing",
        "labels": {"alertname": "FraudFalsePositives", "model": model},
        "annotations": {"summary": "false positives above 5% <!channel>"},
        "startsAt": "2026-11-27T12:00:00Z",
        "fingerprint": fingerprint,
    }


def test_health_readiness_and_metrics(fake_stack: Stack) -> None:
    """/healthz is up, /readyz checks database and fleet (503 naming the fleet), /metrics counts commands."""
    stack = fake_stack
    assert stack.get("/healthz").status == 200
    assert stack.get("/readyz").status == 200
    assert stack.driver.slash_command("whoami", ALICE).status == 200
    stack.fake.wait_for("hooks", 1)
    stack.settled()
    metrics = stack.get("/metrics").body
    assert 'modelbot_commands_total{verb="whoami",outcome="ok"} 1' in metrics
    assert "modelbot_outbox_pending 0" in metrics
    assert "modelbot_slack_ack_seconds_count 1" in metrics

    def fleet_down() -> None:
        raise ServingError("no replica answers")

    stack.bot.fleet.ping = fleet_down  # type: ignore[method-assign]
    down = stack.get("/readyz")
    assert down.status == 503 and "fleet: no replica answers" in down.body
    assert stack.get("/nowhere").status == 404


def test_alert_suggests_the_rollback_to_the_previous_stable(fake_stack: Stack) -> None:
    """A firing alert for a configured model posts the exact rollback command (once per firing) and is audited."""
    stack = fake_stack
    service = stack.bot.service
    assert service.handle_text(Context(Identity(ALICE), channel=None), ROLLBACK).ok
    assert service.handle_text(Context(Identity(BOB), channel=None), "approve R1").ok  # stable 3 -> 2
    rows_before = len(stack.audit_rows())

    assert _alert(stack, {"alerts": [_firing("fraud_detector", "a1")]}, token=None).status == 401
    assert _alert(stack, {"alerts": []}, token="wrong").status == 401
    assert _alert(stack, b"{not json", token=ALERT_TOKEN).status == 400
    payload = {"alerts": [_firing("fraud_detector", "a1"), _firing("unknown_model", "a2")]}
    first = _alert(stack, payload)
    assert first.status == 200 and first.json() == {"queued": 1, "ignored": 1}
    assert _alert(stack, payload).status == 200  # Alertmanager repeats itself
    stack.settled()

    posts = [c.body["text"] for c in stack.fake.calls_to("chat.postMessage", channel=FRAUD_INCIDENT)]
    alert_posts = [p for p in posts if "FraudFalsePositives" in p]
    assert len(alert_posts) == 1
    assert '/model rollback fraud_detector 3 --reason "alert FraudFalsePositives"' in alert_posts[0]
    assert "<!channel>" not in alert_posts[0]  # alert text cannot ping the channel
    alerts = [r for r in stack.audit_rows()[rows_before:] if r.action == "alert"]
    assert len(alerts) == 2 and alerts[0].model == "fraud_detector"
