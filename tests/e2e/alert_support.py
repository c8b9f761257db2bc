"""Helpers of the alert e2e tests: Alertmanager and PagerDuty deliveries, the alert's post, its select menu."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from tests.e2e.fake_slack import Call
from tests.e2e.slack_driver import HttpResult, http
from tests.e2e.stack import ALERT_TOKEN, Stack

ALERTNAME = "FraudScoreDrift"
PD_SECRET = "pd-webhook-secret"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def am_alert(fingerprint: str, starts_at: str, status: str = "firing", alertname: str = ALERTNAME) -> dict[str, Any]:
    """One entry of an Alertmanager webhook's `alerts[]` about fraud_detector."""
    return {
        "status": status,
        "labels": {"alertname": alertname, "model": "fraud_detector", "severity": "page"},
        "annotations": {"summary": "score distribution drifted (PSI 0.31)"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else now_rfc3339(),
        "generatorURL": "https://prometheus.example/graph?g0.expr=psi",
        "fingerprint": fingerprint,
    }


def send_alerts(stack: Stack, *alerts: dict[str, Any]) -> HttpResult:
    """POST /alerts as Alertmanager does (version 4 payload, bearer token)."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    payload = {"version": "4", "status": status, "receiver": "modelbot", "alerts": list(alerts)}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ALERT_TOKEN}"}
    return http(stack.url + "/alerts", json.dumps(payload).encode(), headers)


def alert_posts(stack: Stack, channel: str) -> list[Call]:
    """The alert posts made in `channel` (not the rollout results that also go there)."""
    return [c for c in stack.fake.calls_to("chat.postMessage", channel=channel) if "Alert " in str(c.body.get("text"))]


def blocks_of(stack: Stack, channel: str, ts: str) -> list[dict[str, Any]]:
    """The message's current blocks (after every chat.update)."""
    raw = stack.fake.messages[(channel, ts)]["blocks"]
    return list(json.loads(raw) if isinstance(raw, str) else raw)


def text_of(blocks: list[dict[str, Any]]) -> str:
    """Every text in the blocks, for assertions."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements", []):
            if isinstance(element.get("text"), str):
                parts.append(element["text"])
            elif isinstance(element.get("text"), dict):
                parts.append(element["text"]["text"])
    return "\n".join(parts)


def actions_of(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def opened_view(stack: Stack, index: int = 0) -> dict[str, Any]:
    """The view of the `index`-th successful views.open."""
    raw = stack.fake.wait_for("views.open", index + 1)[index].body["view"]
    return dict(json.loads(raw) if isinstance(raw, str) else raw)


def pick(stack: Stack, value: str, user_id: str, channel: str, ts: str) -> HttpResult:
    """A signed block_actions payload choosing `value` in the alert post's version select."""
    action = {
        "type": "static_select",
        "action_id": "alert_rollback_pick",
        "block_id": "alert:1",
        "selected_option": {"text": {"type": "plain_text", "text": "v"}, "value": value},
    }
    return stack.driver.post(stack.driver.block_actions_body(user_id, action, channel_id=channel, message_ts=ts))


def pagerduty_event(event_type: str, incident: str = "PINC001", service: str = "fraud_detector") -> bytes:
    """A PagerDuty V3 webhook body (one incident event)."""
    event = {
        "event": {
            "id": f"01EV{incident}{event_type[-4:]}",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": now_rfc3339(),
            "agent": None,
            "client": None,
            "data": {
                "id": incident,
                "type": "incident",
                "number": 481,
                "status": "triggered" if event_type.endswith("triggered") else "resolved",
                "incident_key": "abc",
                "title": "Fraud score drift",
                "service": {"id": "PSVC1", "summary": service, "type": "service_reference"},
                "urgency": "high",
                "html_url": f"https://acme.pagerduty.com/incidents/{incident}",
                "created_at": "2026-12-01T12:00:00Z",
            },
        }
    }
    return json.dumps(event).encode()


def pd_signature(body: bytes, secret: str = PD_SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_pagerduty(stack: Stack, body: bytes, signature: str | None) -> HttpResult:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-PagerDuty-Signature"] = signature
    return http(stack.url + "/pagerduty", body, headers)
