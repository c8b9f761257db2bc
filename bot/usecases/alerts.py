"""Alerts: a firing alert about a configured model is recorded once (source, fingerprint, start) and posted to the
model's incident channel with a "Request rollback to vN" button (or a pick of the versions on disk when no
earlier stable version is recorded); its resolution updates that post in place. Repeated notifications are
counted on the row, never posted or audited again. Models with `auto_rollback` are decided by
bot/usecases/auto_rollback.py; PagerDuty notices come in through bot/usecases/pagerduty.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot import parsing
from bot.core import commands
from bot.core.alerts import FIRING, NEW, RESOLVED, RESOLVED_NOW, AlertNotice, AutoState, StoredAlert
from bot.core.change_request import ChangeRequest
from bot.core.errors import NotFound
from bot.texts import commands as command_texts
from bot.texts import slack as slack_texts
from bot.usecases.audit_trail import incident_channel, record
from bot.usecases.context import Deps
from bot.usecases.ports import UnitOfWork
from bot.usecases.state import model_state

MAX_FIELD_CHARS = 300
MAX_CHOICES = 100  # Block Kit: a static_select holds at most 100 options
ALERTMANAGER = "alertmanager"
POST_KIND = "alert"  # outbox kind: the incident post of one alert, rendered from its row at delivery


class BadAlert(ValueError):
    """The body is not an Alertmanager webhook payload."""


@dataclass(frozen=True)
class AlertsOutcome:
    queued: int  # alerts about configured models (recorded, or repeats of recorded ones)
    ignored: int


def receive(deps: Deps, body: bytes) -> AlertsOutcome:
    """An Alertmanager webhook body: record every alert whose `model` label is a configured model."""
    alerts = _alerts(body)
    notices = [n for n in (_notice(deps, alert) for alert in alerts) if n is not None]
    for notice in notices:
        take(deps, notice)
    return AlertsOutcome(queued=len(notices), ignored=len(alerts) - len(notices))


def take(deps: Deps, notice: AlertNotice) -> StoredAlert:
    """Record one notice; a new firing is audited and posted, a resolution audited and the post updated."""
    now = deps.clock()
    with deps.db.uow() as uow:
        stored, what = uow.alerts.record(notice, now, _auto_state(deps, notice))
        if what in (NEW, RESOLVED_NOW):
            record(
                uow,
                deps,
                None,
                "alert",
                notice.status,
                model=notice.model,
                alertname=notice.alertname,
                source=notice.source,
                fingerprint=notice.fingerprint,
                why=notice.summary,
                alert=stored.reference(),
                auto_rollback=stored.auto_state.value if stored.auto_state else "",
            )
        if what == NEW and notice.status == FIRING:
            queue_post(uow, deps, stored, "posted")
        elif what == RESOLVED_NOW:
            queue_post(uow, deps, stored, "resolved")
        uow.commit()
    return stored


def queue_post(uow: UnitOfWork, deps: Deps, alert: StoredAlert, why: str) -> None:
    """Queue a (re)render of the alert's incident post: posted the first time, updated in place afterwards.
    `why` keys the message, so each change is queued once however often it is noticed."""
    channel = incident_channel(deps, alert.model)
    if channel:
        payload = {"alert_id": alert.id, "model": alert.model}
        uow.outbox.enqueue(POST_KIND, channel, payload, key=f"alert:{alert.id}:{why}", at=deps.clock())


def repost_unposted(deps: Deps, channel: str) -> list[int]:
    """The bot was just added to `channel`: queue the post of every firing alert whose post never landed and whose
    model's incident channel it is (once per alert and channel; an alert posted meanwhile is updated in place)."""
    with deps.db.uow() as uow:
        waiting = [a for a in uow.alerts.firing_unposted() if incident_channel(deps, a.model) == channel]
        for alert in waiting:
            queue_post(uow, deps, alert, f"rejoined:{channel}")
        uow.commit()
    return [alert.id for alert in waiting]


def queue_outcome_post(uow: UnitOfWork, deps: Deps, req: ChangeRequest) -> None:
    """An automatic rollback's outcome re-renders its alert's post, queued in the transaction that records the
    outcome: whichever process records it (the one that ran it, a resumed or recovered run, a late record after a
    database outage) and however often that is attempted, the post shows the outcome once."""
    ref = req.extra.get("alert")
    if not req.extra.get("automatic") or not isinstance(ref, Mapping) or not isinstance(ref.get("id"), int):
        return
    channel = incident_channel(deps, req.model)
    if channel:
        payload = {"alert_id": ref["id"], "model": req.model}
        key = f"alert:{ref['id']}:outcome:R{req.id}"
        uow.outbox.enqueue(POST_KIND, channel, payload, key=key, at=deps.clock())


def _auto_state(deps: Deps, notice: AlertNotice) -> AutoState | None:
    settings = deps.settings.models.get(notice.model)
    auto = settings.auto_rollback if settings else None
    return AutoState.PENDING if auto is not None and notice.alertname in auto.on_alerts else None


@dataclass(frozen=True)
class AlertView:
    """What the incident post shows: the alert, the rollback it offers, and the automatic decision."""

    alert: StoredAlert
    current: int | None
    target: int | None  # the previous stable version, when one is recorded
    choices: tuple[int, ...] = ()  # otherwise: versions on disk below the current one, newest first
    command: str | None = None
    auto_request: ChangeRequest | None = None
    auto_until: datetime | None = None  # armed: when min_firing is over


def alert_view(deps: Deps, alert_id: int) -> AlertView:
    """The incident post's content, read now (the post is re-rendered on every change)."""
    with deps.db.uow(readonly=True) as uow:
        alert = uow.alerts.get(alert_id)
        if alert is None:
            raise NotFound(f"alert {alert_id} is not recorded")
        request = uow.requests.get(alert.auto_request_id) if alert.auto_request_id else None
    state = model_state(deps, alert.model)
    settings = deps.settings.models[alert.model]
    current = state.label(settings.label) if settings.label else None
    target = rollback_target(state.stable_history, current)
    choices: tuple[int, ...] = ()
    if target is None:
        choices = versions_below(deps, alert.model, current)
    auto = settings.auto_rollback
    until = alert.firing_since + auto.min_firing if auto and alert.auto_state is AutoState.PENDING else None
    return AlertView(
        alert=alert,
        current=current,
        target=target,
        choices=choices,
        command=_command(alert, target),
        auto_request=request,
        auto_until=until,
    )


def rollback_target(stable_history: Sequence[int], current: int | None) -> int | None:
    """The most recent earlier stable version *older* than the current one. A newer one in the history is a version
    the model was rolled back from (the suspect of the last incident): offering it would roll forward to it."""
    return next((v for v in stable_history if current is None or v < current), None)


def versions_below(deps: Deps, model: str, current: int | None) -> tuple[int, ...]:
    """Versions on disk below `current` (all, without one), newest first, at most MAX_CHOICES."""
    on_disk: Sequence[int] = deps.catalog.versions(deps.settings.models[model].base_path)
    lower = sorted((v for v in on_disk if current is None or v < current), reverse=True)
    return tuple(lower[:MAX_CHOICES])


def get(deps: Deps, alert_id: int) -> StoredAlert | None:
    with deps.db.uow(readonly=True) as uow:
        return uow.alerts.get(alert_id)


def _command(alert: StoredAlert, target: int | None) -> str | None:
    if target is None:
        return None
    command = commands.Rollback(alert.model, target, reason=slack_texts.slack_alert_reason(alert.alertname))
    return f"{command_texts.COMMAND} {parsing.format_command(command)}"


# --- Alertmanager's payload


def _alerts(body: bytes) -> list[Mapping[str, Any]]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadAlert(slack_texts.SLACK_BAD_ALERT_JSON) from None
    alerts = payload.get("alerts") if isinstance(payload, Mapping) else None
    if not isinstance(alerts, list) or not all(isinstance(a, Mapping) for a in alerts):
        raise BadAlert(slack_texts.SLACK_BAD_ALERT_JSON)
    return alerts


def _notice(deps: Deps, alert: Mapping[str, Any]) -> AlertNotice | None:
    """One entry of `alerts[]` as a notice, or None when it is not about a configured model (decided per alert,
    never from the message's top-level status: see reference/alerts.md §1.1)."""
    labels = alert.get("labels") if isinstance(alert.get("labels"), Mapping) else {}
    assert isinstance(labels, Mapping)
    model = labels.get("model") or labels.get("model_name")
    status = alert.get("status")
    if status not in (FIRING, RESOLVED) or not isinstance(model, str) or model not in deps.settings.models:
        return None
    annotations = alert.get("annotations") if isinstance(alert.get("annotations"), Mapping) else {}
    assert isinstance(annotations, Mapping)
    fingerprint = (
        bounded(alert.get("fingerprint"))[:200]
        or hashlib.sha256(json.dumps(dict(labels), sort_keys=True, default=str).encode()).hexdigest()[:16]
    )
    starts = bounded(alert.get("startsAt"))[:64]
    return AlertNotice(
        source=ALERTMANAGER,
        fingerprint=fingerprint,
        starts_key=starts,
        status=str(status),
        model=model,
        alertname=bounded(labels.get("alertname"))[:200] or "alert",
        summary=bounded(annotations.get("summary") or annotations.get("description")),
        link=_link(alert.get("generatorURL")),
        firing_since=parse_time(starts),
    )


def bounded(value: object) -> str:
    """A scalar of a payload as bounded text ("" for anything else)."""
    return str(value)[:MAX_FIELD_CHARS] if isinstance(value, str | int | float) else ""


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time (Alertmanager's startsAt, PagerDuty's created_at), aware; None when absent or unparsable
    (Go's zero time included)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.year < 2000:
        return None
    return moment


def _link(value: object) -> str:
    """Only http(s) links are kept (they become a link on the post)."""
    text = bounded(value) if isinstance(value, str) else ""
    return text if text.startswith(("https://", "http://")) and not any(ch in text for ch in "<>| ") else ""
