"""`modelbot serve` observed from outside: /metrics after a rollout (parsed with prometheus_client's parser), and
its stderr as JSON lines carrying the rollout's correlation and request ids, with no secret in any line."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.devstack_support import wait_until
from tests.e2e.stack import BOB, SECRET
from tests.faults.serve_harness import MODEL, ServeStack, http

BOT_TOKEN = "xoxb-1111-2222-observabilitytest"
ALERT_TOKEN = "alert-token-observability-4c1d"
SECRETS_ENV = {"SLACK_BOT_TOKEN": BOT_TOKEN, "MODELBOT_ALERT_TOKEN": ALERT_TOKEN}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _rollback(stack: ServeStack) -> None:
    assert "R1" in stack.say(f'rollback {MODEL} 2 --reason "INC-42 observability"')
    stack.say("approve R1", user=BOB, wait=False)
    assert stack.wait_state(1, {"SUCCEEDED", "FAILED", "PARTIAL"}).state.value == "SUCCEEDED"


def _scrape(stack: ServeStack) -> tuple[set[str], Samples]:
    answer = http(stack.bots[0].url + "/metrics")
    assert answer.status == 200, answer
    families = list(text_string_to_metric_families(answer.body))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return {f.name for f in families}, samples


def _probed(scraped: tuple[set[str], Samples]) -> tuple[set[str], Samples] | None:
    return scraped if "modelbot_replica_reachable" in scraped[0] else None


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_after_a_rollback(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """After a rollback and a refused alert, /metrics has every family with plausible values: build info, commands,
    one succeeded rollout with its duration and phases, approvals, retro-reviews, outbox, drift, reachability, acks,
    alerts and the process collectors."""
    stack = serve_stack(db_url, versions=(2, 3), env=SECRETS_ENV)
    _rollback(stack)
    refused = http(stack.bots[0].url + "/alerts", data=b"{}", headers={"Authorization": "Bearer wrong"}, method="POST")
    assert refused.status == 401
    names, samples = wait_until(lambda: _probed(_scrape(stack)), 20, "a fleet probe exported")
    assert {
        "modelbot_build_info",
        "modelbot_commands",
        "modelbot_rollouts",
        "modelbot_rollout_duration_seconds",
        "modelbot_rollout_phase_duration_seconds",
        "modelbot_approvals_pending",
        "modelbot_retro_reviews_open",
        "modelbot_outbox_pending",
        "modelbot_outbox_oldest_pending_age_seconds",
        "modelbot_replica_drift",
        "modelbot_models_drifted",
        "modelbot_replica_reachable",
        "modelbot_slack_ack_seconds",
        "modelbot_alerts_received",
        "modelbot_alerts_acted",
        "process_cpu_seconds",
        "python_info",
    } <= names
    assert next(k for k in samples if k[0] == "modelbot_build_info")[1][0][0] == "version"
    assert _value(samples, "modelbot_commands_total", verb="rollback", outcome="ok") == 1
    assert _value(samples, "modelbot_commands_total", verb="approve", outcome="ok") == 1
    assert _value(samples, "modelbot_rollouts_total", outcome="succeeded") == 1
    assert _value(samples, "modelbot_rollout_duration_seconds_count", outcome="succeeded") == 1
    assert 0 < _value(samples, "modelbot_rollout_duration_seconds_sum", outcome="succeeded") < 120
    phases = {dict(k[1])["phase"] for k in samples if k[0] == "modelbot_rollout_phase_duration_seconds_count"}
    assert {"switch", "verify"} <= phases, phases
    assert _value(samples, "modelbot_approvals_pending", action="rollback") == 0
    assert _value(samples, "modelbot_retro_reviews_open") == 0
    assert _value(samples, "modelbot_outbox_pending") >= 0
    assert 0 <= _value(samples, "modelbot_outbox_oldest_pending_age_seconds") < 600
    assert _value(samples, "modelbot_models_drifted") == 0
    reachable = {dict(k[1])["replica"]: v for k, v in samples.items() if k[0] == "modelbot_replica_reachable"}
    assert sorted(reachable) == sorted(stack.dev.targets) and set(reachable.values()) == {1.0}
    assert _value(samples, "modelbot_slack_ack_seconds_count") >= 2
    assert (
        0
        < _value(samples, "modelbot_slack_ack_seconds_bucket", le="3.0")
        <= _value(samples, "modelbot_slack_ack_seconds_count")
    )
    assert _value(samples, "modelbot_alerts_received_total", outcome="unauthorized") == 1
    assert _value(samples, "modelbot_alerts_acted_total", result="queued") == 0
    assert all(v == 1 for k, v in samples.items() if k[0] == "modelbot_scrape_read_ok"), samples


def _json_lines(stack: ServeStack) -> list[dict[str, Any]]:
    lines = [line for line in stack.bots[0].log.read_text().splitlines() if line and not line.startswith("--- start")]
    return [json.loads(line) for line in lines]  # every line is one JSON object, or this raises


def test_serve_logs_json_lines_with_the_rollouts_ids_and_no_secrets(
    serve_stack: Callable[..., ServeStack], db_url: str
) -> None:
    """Under `serve` every stderr line is a JSON object; every line of the rollout (its phases, in the fan-out
    threads too, and its summary) carries the same correlation id and R1; no secret value appears anywhere."""
    stack = serve_stack(db_url, versions=(2, 3), env=SECRETS_ENV)
    _rollback(stack)
    http(stack.bots[0].url + "/alerts", data=b"{}", headers={"Authorization": f"Bearer {BOT_TOKEN}"}, method="POST")
    assert stack.bots[0].terminate() == 0
    records = _json_lines(stack)
    assert {"timestamp", "level", "logger", "event"} <= set(records[0])
    rollout = [r for r in records if "operation_id" in r or str(r["event"]).startswith("rollout ")]
    assert len(rollout) >= 3, records
    assert {r["request_id"] for r in rollout} == {"R1"}
    assert len({r["correlation_id"] for r in rollout}) == 1
    assert all(r["actor"] == BOB and r["slack_trigger"] == "command" and r["slack_team"] for r in rollout), rollout
    assert all(r["model"] == MODEL for r in rollout if "operation_id" in r), rollout
    summary = next(r for r in rollout if str(r["event"]).startswith("rollout succeeded"))
    assert summary["outcome"] == "succeeded" and set(summary["phases_s"]) >= {"switch", "verify"}
    text = stack.bots[0].log.read_text()
    for secret in (BOT_TOKEN, SECRET, ALERT_TOKEN):
        assert secret not in text
