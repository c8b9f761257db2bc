"""PagerDuty V3 webhooks as a second alert source: `incident.triggered` / `incident.resolved` about a configured
model become the same notices as Alertmanager's (bot/usecases/alerts.py). The model is named by a configured
field of the incident (`alerts.pagerduty.model_field`, a dotted path in `event.data`, default
`service.summary`), optionally mapped (`alerts.pagerduty.models`). The signature is checked by the HTTP front
end before this sees a byte (bot/frontends/http/alerts.py).

PagerDuty disables a subscription after three dropped deliveries, so events we do not act on (other types,
other services) are accepted and ignored, never refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.core.alerts import FIRING, RESOLVED, AlertNotice
from bot.texts import alerts as texts
from bot.usecases.alerts import AlertsOutcome, BadAlert, bounded, parse_time, take
from bot.usecases.context import Deps

SOURCE = "pagerduty"
EVENTS = {"incident.triggered": FIRING, "incident.resolved": RESOLVED}


def receive(deps: Deps, body: bytes) -> AlertsOutcome:
    """One webhook delivery (one event): recorded when it is an incident event about a configured model."""
    event = _event(body)
    notice = notice_of(deps, event)
    if notice is None:
        return AlertsOutcome(queued=0, ignored=1)
    take(deps, notice)
    return AlertsOutcome(queued=1, ignored=0)


def _event(body: bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadAlert(texts.BAD_PAGERDUTY) from None
    event = payload.get("event") if isinstance(payload, Mapping) else None
    if not isinstance(event, Mapping):
        raise BadAlert(texts.BAD_PAGERDUTY)
    return event


def notice_of(deps: Deps, event: Mapping[str, Any]) -> AlertNotice | None:
    """The event as a notice, or None when it is not a triggered/resolved incident about a configured model."""
    status = EVENTS.get(str(event.get("event_type")))
    data = event.get("data")
    if status is None or not isinstance(data, Mapping):
        return None
    settings = deps.settings.alerts.pagerduty
    named = bounded(_at_path(data, settings.model_field))
    model = settings.models.get(named, named)
    incident = bounded(data.get("id"))[:200]
    if not incident or model not in deps.settings.models:
        return None
    created = bounded(data.get("created_at"))[:64]
    return AlertNotice(
        source=SOURCE,
        fingerprint=incident,
        starts_key=created or incident,  # an incident fires once; reopened ones keep their id and creation time
        status=status,
        model=model,
        alertname=bounded(data.get("title"))[:200] or f"PagerDuty incident {incident}",
        summary=_summary(data),
        link=_https(data.get("html_url")),
        firing_since=parse_time(created),
    )


def _at_path(data: Mapping[str, Any], path: str) -> object:
    current: object = data
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _summary(data: Mapping[str, Any]) -> str:
    number = data.get("number")
    urgency = bounded(data.get("urgency"))
    parts = [f"#{number}" if isinstance(number, int) else "", f"urgency {urgency}" if urgency else ""]
    return " · ".join(p for p in parts if p)


def _https(value: object) -> str:
    text = bounded(value)
    return text if text.startswith("https://") and not any(ch in text for ch in "<>| ") else ""
