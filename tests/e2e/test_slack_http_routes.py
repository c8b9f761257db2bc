"""The operational routes of `modelbot serve`: health, readiness, metrics and the Alertmanager webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.core.errors import ServingError, StoreUnavailable
from bot.core.policy import Identity
from bot.frontends.http.health import FleetHealth
from bot.frontends.slack.alert_posts import parse_value
from bot.usecases.context import Context
from tests.devstack_support import wait_until
from tests.e2e.alert_support import actions_of, blocks_of
from tests.e2e.slack_driver import HttpResult, http
from tests.e2e.stack import ALERT_TOKEN, ALICE, BOB, FRAUD_INCIDENT, ROLLBACK, Stack
from tests.fakes import FakeFleet


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
    """/healthz is up, /readyz is ready, /metrics counts commands, an unknown path is 404."""
    stack = fake_stack
    assert stack.get("/healthz").status == 200
    assert stack.get("/readyz").status == 200
    assert stack.driver.slash_command("whoami", ALICE).status == 200
    stack.fake.wait_for("hooks", 1)
    stack.settled()
    metrics = stack.get("/metrics").body
    assert 'modelbot_commands_total{outcome="ok",verb="whoami"} 1.0' in metrics
    assert "modelbot_outbox_pending 0.0" in metrics
    assert "modelbot_slack_ack_seconds_count 1.0" in metrics
    assert stack.get("/nowhere").status == 404


def test_alert_after_a_rollback_offers_older_versions_never_the_suspect(fake_stack: Stack) -> None:
    """After stable 3 -> 2, a firing alert posts once (repeats are counted, audited once) and offers only versions
    below v2 (a select, since no older stable version is recorded), never a roll forward to the suspect v3."""
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

    posts = [
        c for c in stack.fake.calls_to("chat.postMessage", channel=FRAUD_INCIDENT) if "FraudFalse" in c.body["text"]
    ]
    assert len(posts) == 1
    assert "<!channel>" not in posts[0].body["text"]  # alert text cannot ping the channel
    blocks = blocks_of(stack, FRAUD_INCIDENT, posts[0].response["ts"])
    assert "<!channel>" not in json.dumps(blocks)
    (menu,) = actions_of(blocks)
    offered = [parse_value(option["value"]) for option in menu["options"]]
    assert offered and all(pair is not None and pair[1] < 2 for pair in offered), offered
    alerts = [r for r in stack.audit_rows()[rows_before:] if r.action == "alert"]
    assert len(alerts) == 1 and alerts[0].model == "fraud_detector"  # a repeat is counted on the alert, not audited


# --- readiness serves incidents: /readyz is the database only, /healthz reports the fleet -----------------------


def _fleet_away(stack: Stack) -> None:
    """Every FakeFleet replica refuses connections, and the fleet's ping says so."""

    def no_replica() -> None:
        raise ServingError("no TF Serving replica answered", code="UNAVAILABLE")

    stack.bot.fleet.down.update(stack.bot.fleet.names)  # type: ignore[attr-defined]
    stack.bot.fleet.ping = no_replica  # type: ignore[method-assign]


def test_readyz_stays_ready_while_the_whole_fleet_is_away(fake_stack: Stack) -> None:
    """With every replica unreachable /readyz is still 200: the bot keeps serving status and rollbacks."""
    _fleet_away(fake_stack)
    ready = fake_stack.get("/readyz")
    assert (ready.status, ready.body) == (200, "ready\n")
    assert fake_stack.driver.slash_command("status fraud_detector", ALICE).status == 200


def test_readyz_is_503_naming_the_database_when_its_schema_is_not_usable(fake_stack: Stack) -> None:
    """/readyz fails on the database check alone, and says so; it is ready again once the database is."""
    db = fake_stack.bot.db
    real = db.check_schema

    def schema_gone() -> None:
        raise StoreUnavailable("The database has no modelbot schema")

    db.check_schema = schema_gone  # type: ignore[method-assign]
    try:
        down = fake_stack.get("/readyz")
        assert (down.status, down.body) == (503, "database: The database has no modelbot schema\n")
    finally:
        db.check_schema = real  # type: ignore[method-assign]
    assert fake_stack.get("/readyz").status == 200


def test_healthz_reports_each_replica_reachability(fake_stack: Stack) -> None:
    """/healthz is 200 JSON naming every replica, reachable or not with the reason; a fleet wholly away is
    reported the same way and still answers 200."""
    fake_stack.bot.fleet.down.add("r2")  # type: ignore[attr-defined]
    health = fake_stack.get("/healthz")
    assert health.status == 200 and health.headers["content-type"] == "application/json"
    body = health.json()
    assert body["status"] == "ok" and body["fleet"]["checked"] is True
    assert (body["fleet"]["reachable"], body["fleet"]["total"]) == (2, 3)
    assert body["fleet"]["replicas"] == {
        "r1": {"reachable": True},
        "r2": {"reachable": False, "error": "UNAVAILABLE: connection refused"},
        "r3": {"reachable": True},
    }

    away = FleetHealth(fake_stack.bot.fleet)  # a fresh report (the server's is cached for a few seconds)
    _fleet_away(fake_stack)
    response = away.healthz({})
    assert response.status == 200
    assert json.loads(response.body)["fleet"]["reachable"] == 0


def test_healthz_answers_at_once_while_the_fleet_is_slow() -> None:
    """A fleet that takes its time never delays /healthz past its wait: the answer says the probe is running,
    and the next one (after the probe ends) carries the findings; a stale report starts one probe at a time."""
    fleet = FakeFleet()
    release = threading.Event()
    calls: list[str] = []
    real_status = fleet.model_status

    def slow_status(model: str) -> Any:
        calls.append(model)
        release.wait(10)
        return real_status(model)

    fleet.model_status = slow_status  # type: ignore[method-assign]
    now = [100.0]
    health = FleetHealth(fleet, max_age_s=5.0, wait_s=0.05, clock=lambda: now[0])
    started = time.monotonic()
    first, second = health.report(), health.report()
    assert time.monotonic() - started < 2.0
    assert first == second == {"checked": False, "detail": "the first probe of the fleet is still running"}
    assert len(calls) == 1  # the second report joined the running probe
    release.set()
    wait_until(lambda: health.report().get("checked") or None, 5, "the probe to finish")
    now[0] += 2.0
    report = health.report()
    assert report["age_s"] == 2.0 and report["reachable"] == 3 and len(calls) == 1  # fresh enough: no new probe
    now[0] += 5.0
    health.report()
    wait_until(lambda: len(calls) == 2 or None, 5, "a new probe of the stale report")


def test_healthz_over_mtls_names_the_stopped_replica(devstack_stack: Callable[..., Stack]) -> None:
    """Against real emulator replicas over mTLS, /healthz marks the stopped replica unreachable and the others
    reachable, while /readyz stays 200."""
    stack = devstack_stack()
    assert stack.dev is not None
    stopped = stack.dev.targets[1]
    stack.dev.stop(1)
    assert stack.get("/readyz").status == 200
    report = wait_until(lambda: stack.get("/healthz").json()["fleet"].get("replicas") or None, 20, "a probe")
    assert [r for r, seen in report.items() if not seen["reachable"]] == [stopped], report
    assert report[stopped]["error"].startswith("UNAVAILABLE")
