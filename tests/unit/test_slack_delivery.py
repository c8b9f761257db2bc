"""Pure parts of Slack delivery and the HTTP side: error classification, audit posts, alert auth, metrics, the pool."""

from __future__ import annotations

import threading
import urllib.error
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.core.errors import NotFound, StoreUnavailable
from bot.frontends.http.alerts import authorized
from bot.frontends.http.metrics import Metrics
from bot.frontends.slack.delivery import audit_text, classify
from bot.frontends.slack.workers import Workers


def _api_error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> SlackApiError:
    response = SlackResponse(
        client=None, http_verb="POST", api_url="x", req_args={}, data=body, headers=headers or {}, status_code=status
    )
    return SlackApiError("failed", response)


def test_passing_failures_are_retried_and_permanent_ones_are_not() -> None:
    """429 keeps its Retry-After, 5xx/connection/database trouble retries, channel_not_found is permanent."""
    limited = classify(_api_error(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}))
    assert (limited.permanent, limited.retry_after_s) == (False, 7.0)
    assert not classify(_api_error(503, {"ok": False, "error": "service_unavailable"})).permanent
    assert not classify(_api_error(200, {"ok": False, "error": "invalid_auth"})).permanent  # operator fixes it
    assert not classify(urllib.error.URLError("refused")).permanent
    assert not classify(StoreUnavailable("db down")).permanent
    gone = classify(_api_error(200, {"ok": False, "error": "channel_not_found"}))
    assert gone.permanent and gone.error == "channel_not_found"
    assert classify(NotFound("R9 does not exist")).permanent
    assert classify(ValueError("bug while rendering")).permanent


def test_audit_post_shows_the_row_and_keeps_user_text_inert() -> None:
    """One audit row becomes one line: seq, actor mention, action, request, versions, outcome, reason, hash."""
    row = {
        "seq": 12,
        "at": "2026-11-27T12:00:00.000000+00:00",
        "actor": "U01ALICE",
        "action": "rollback",
        "outcome": "requested",
        "request_id": 3,
        "model": "fraud_detector",
        "hash": "ab" * 32,
        "detail": {"from_version": 3, "to_version": 2, "reason": "INC-481 <!channel>"},
    }
    text = audit_text(row)
    assert text.startswith("#12 <!date^")
    for expected in ("<@U01ALICE>", "rollback R3 fraud_detector v3→v2", "*requested*", "&lt;!channel&gt;", "`abababab"):
        assert expected in text, expected
    assert "<!channel>" not in text
    assert "modelbot bootstrap" in audit_text({**row, "actor": "modelbot", "action": "bootstrap", "request_id": None})


def test_alert_token_must_match_exactly() -> None:
    """Only `Bearer <token>` passes; no configured token refuses everything."""
    assert authorized("Bearer s3cret", "s3cret")
    assert not authorized("Bearer s3cre", "s3cret")
    assert not authorized("s3cret", "s3cret")
    assert not authorized("Bearer ", "")


def test_metrics_text_format() -> None:
    """Counters by label and a cumulative ack histogram in Prometheus text format."""
    metrics = Metrics(outbox_pending=lambda: 4)
    metrics.command("rollback", "ok")
    metrics.command("rollback", "ok")
    metrics.rollout("SUCCEEDED")
    metrics.ack(0.003)
    metrics.ack(0.2)
    text = metrics.render()
    assert 'modelbot_commands_total{outcome="ok",verb="rollback"} 2.0' in text
    assert 'modelbot_rollouts_total{outcome="SUCCEEDED"} 1.0' in text
    assert "modelbot_outbox_pending 4.0" in text
    assert 'modelbot_slack_ack_seconds_bucket{le="0.005"} 1.0' in text
    assert 'modelbot_slack_ack_seconds_bucket{le="0.25"} 2.0' in text
    assert "modelbot_slack_ack_seconds_count 2.0" in text


def test_worker_pool_refuses_work_beyond_its_bound_and_drains() -> None:
    """With every slot taken, submit says no (nothing queued unboundedly); drain waits, then drops unstarted work."""
    release = threading.Event()
    ran: list[str] = []
    workers = Workers(workers=1, max_pending=2)
    assert workers.submit(lambda: ran.append("first") or release.wait())
    assert workers.submit(lambda: ran.append("second"))
    assert not workers.submit(ran.append, "third")  # over the bound
    assert not workers.drain(0.05)  # the first is still running; the queued second is dropped
    assert workers.pending == 1 and not workers.submit(ran.append, "late")
    release.set()
    assert workers.drain(5) and workers.pending == 0
    assert ran == ["first"]
