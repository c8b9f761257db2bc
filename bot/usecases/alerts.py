"""Alerts: a firing Alertmanager alert about a configured model becomes an incident-channel post with the exact
rollback command to the previous stable version, plus an audit row.

Alertmanager repeats notifications (group_interval, repeat_interval): each one is audited, but the incident
channel gets one post per alert firing (fingerprint + startsAt).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot import parsing
from bot.core import commands as c
from bot.texts import commands as command_texts
from bot.texts import slack as slack_texts
from bot.usecases.audit_trail import notify_incident, record
from bot.usecases.context import Deps
from bot.usecases.state import model_state

MAX_FIELD_CHARS = 300


class BadAlert(ValueError):
    """The body is not an Alertmanager webhook payload."""


@dataclass(frozen=True)
class AlertsOutcome:
    queued: int
    ignored: int


def receive(deps: Deps, body: bytes) -> AlertsOutcome:
    """Queue an incident post (and audit) for each firing alert whose `model` label is a configured model."""
    alerts = _alerts(body)
    queued = 0
    for alert in alerts:
        labels = alert.get("labels") if isinstance(alert.get("labels"), Mapping) else {}
        assert isinstance(labels, Mapping)
        model = labels.get("model")
        if alert.get("status") != "firing" or not isinstance(model, str) or model not in deps.settings.models:
            continue
        _queue(deps, model, alert, labels)
        queued += 1
    return AlertsOutcome(queued=queued, ignored=len(alerts) - queued)


def _alerts(body: bytes) -> list[Mapping[str, Any]]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadAlert(slack_texts.SLACK_BAD_ALERT_JSON) from None
    alerts = payload.get("alerts") if isinstance(payload, Mapping) else None
    if not isinstance(alerts, list) or not all(isinstance(a, Mapping) for a in alerts):
        raise BadAlert(slack_texts.SLACK_BAD_ALERT_JSON)
    return alerts


def suggested_rollback(deps: Deps, model: str, alertname: str) -> str | None:
    """`/model rollback MODEL PREVIOUS --reason ...` to the previous stable version, if one is recorded."""
    history = model_state(deps, model).stable_history
    if not history:
        return None
    command = c.Rollback(model, history[0], reason=slack_texts.slack_alert_reason(alertname))
    return f"{command_texts.COMMAND} {parsing.format_command(command)}"


def _queue(deps: Deps, model: str, alert: Mapping[str, Any], labels: Mapping[str, Any]) -> None:
    alertname = _field(labels.get("alertname")) or "alert"
    annotations = alert.get("annotations") if isinstance(alert.get("annotations"), Mapping) else {}
    assert isinstance(annotations, Mapping)
    summary = _field(annotations.get("summary") or annotations.get("description"))
    command = suggested_rollback(deps, model, alertname)
    fingerprint = (
        _field(alert.get("fingerprint"))
        or hashlib.sha256(json.dumps(dict(labels), sort_keys=True, default=str).encode()).hexdigest()[:16]
    )
    payload = {
        "model": model,
        "alertname": alertname,
        "suggested": command,
        "text": slack_texts.slack_alert_incident(alertname, model, summary, command),
    }
    with deps.db.uow() as uow:
        record(
            uow,
            deps,
            None,
            "alert",
            "firing",
            model=model,
            alertname=alertname,
            fingerprint=fingerprint,
            suggested=command or "",
            why=summary,
        )
        notify_incident(uow, deps, None, payload, key=f"alert:{fingerprint}:{_field(alert.get('startsAt'))}")
        uow.commit()


def _field(value: object) -> str:
    return str(value)[:MAX_FIELD_CHARS] if isinstance(value, str | int | float) else ""
