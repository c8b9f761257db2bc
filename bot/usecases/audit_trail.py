"""Recording decisions: every decision, denial included, is an audit row in the same transaction."""

from __future__ import annotations

from typing import Any

from bot.core.change_request import ChangeRequest
from bot.usecases.context import Context, Deps
from bot.usecases.ports import UnitOfWork


def record(
    uow: UnitOfWork,
    deps: Deps,
    ctx: Context | None,
    action: str,
    outcome: str,
    *,
    request: ChangeRequest | None = None,
    model: str | None = None,
    **detail: Any,
) -> None:
    """Append one audit row inside `uow` (the caller commits it together with the state change)."""
    actor = ctx.actor.user_id if ctx else "modelbot"
    if request is not None:
        detail.setdefault("from_version", request.from_version)
        detail.setdefault("to_version", request.to_version)
        detail.setdefault("label", request.label)
        detail.setdefault("state", request.state.value)
    if ctx is not None:
        detail.setdefault("via", ctx.frontend)
    alert = request.extra.get("alert") if request is not None else None
    alert = alert or (dict(ctx.alert) if ctx is not None and ctx.alert else None)
    if alert:  # every row of a request an alert led to names the alert
        detail.setdefault("alert", alert)
    uow.audit.append(
        at=deps.clock(),
        actor=actor,
        action=action,
        outcome=outcome,
        request_id=request.id if request else None,
        model=model or (request.model if request else None),
        detail=detail,
    )


def record_alone(deps: Deps, ctx: Context | None, action: str, outcome: str, **kwargs: Any) -> None:
    """Audit a decision that changes nothing else (a denial, a refusal) in its own transaction."""
    with deps.db.uow() as uow:
        record(uow, deps, ctx, action, outcome, **kwargs)
        uow.commit()


def notify_card(uow: UnitOfWork, request: ChangeRequest, channel: str | None) -> None:
    """Queue a (re)render of the request's approval card; the Slack outbox worker posts or updates it."""
    if channel:  # console-made requests have no Slack card; they show in `/model requests`
        uow.outbox.enqueue_card(channel, request.id, request.state.value)


def notify_incident(
    uow: UnitOfWork, deps: Deps, request: ChangeRequest | None, payload: dict[str, Any], key: str | None = None
) -> None:
    """Queue an incident-channel post (per-model override first); `key` de-duplicates repeated notices."""
    model = request.model if request else str(payload.get("model", ""))
    channel = incident_channel(deps, model)
    if channel:
        uow.outbox.enqueue("incident", channel, payload, key=key, at=deps.clock())


def incident_channel(deps: Deps, model: str) -> str | None:
    """The model's incident channel (its own override first, then slack.incident_channel), if any."""
    model_settings = deps.settings.models.get(model)
    return (model_settings.incident_channel if model_settings else None) or deps.settings.slack.incident_channel
