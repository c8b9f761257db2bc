"""Where a request's approval card goes, who is asked to approve it, and the audit rows of what could not be told.

A card goes to the model's `approval_channel`, else `slack.approval_channel`, else the channel the request was
typed in; the first post carries the typed channel, so the front end can link back there (and fall back to it when
the approval channel refuses). Approvers are the policy's members (users and user groups) holding one of the
request's approver roles with `approve` granted, never the requester.
"""

from __future__ import annotations

from typing import Any

from bot.core.approvals import two_person_rule_excludes
from bot.core.change_request import ChangeRequest
from bot.core.policy import APPROVE, MEMBER_ID
from bot.usecases.audit_trail import record
from bot.usecases.context import Deps
from bot.usecases.ports import UnitOfWork

DM = "dm"
CARD_ACTION = "card"  # audit action of delivery trouble with a card (outcome "undeliverable")
DM_ACTION = "notify_approver"  # audit action of an approver DM that could not be sent (outcome "failed")


def approval_channel(deps: Deps, model: str) -> str | None:
    """The model's approval channel, else the default one, else None (the card then goes where it was typed)."""
    settings = deps.settings.models.get(model)
    return (settings.approval_channel if settings else None) or deps.settings.slack.approval_channel


def card_channel(deps: Deps, model: str, typed: str | None) -> str | None:
    """Where the first card of a request on `model` typed in `typed` goes (None: no card, e.g. the console)."""
    if typed is None:
        return None  # console requests have no Slack card; they show in `/model requests` and the Home tab
    return approval_channel(deps, model) or typed


def open_card(uow: UnitOfWork, deps: Deps, request: ChangeRequest, typed: str | None) -> None:
    """Queue the first post of a new request's card, remembering where it was typed (for the link-back)."""
    channel = card_channel(deps, request.model, typed)
    if channel is None:
        return
    payload = {"request_id": request.id, "state": request.state.value, "typed_channel": typed}
    uow.outbox.enqueue("card", channel, payload, at=deps.clock())


def notifies_approvers_by_dm(deps: Deps, model: str) -> bool:
    """`notify_approvers: dm` for the model (its own setting first, then the slack default)."""
    settings = deps.settings.models.get(model)
    mode = (settings.notify_approvers if settings else None) or deps.settings.slack.notify_approvers
    return mode == DM


def approvers(deps: Deps, request: ChangeRequest) -> tuple[str, ...]:
    """Members (users, then user groups) who may approve `request`, minus its requester: the card mentions them."""
    roles = request.approver_roles or deps.policy.approval_rule(request.model, request.action).approver_roles
    roles = roles or frozenset()
    found = (
        member
        for member in deps.policy.who_can(APPROVE)  # roles first, then members not denied `approve`
        if MEMBER_ID.fullmatch(member)
        and not two_person_rule_excludes(request, member)
        and deps.policy.members.get(member, frozenset()) & roles
    )
    return tuple(sorted(found, key=lambda m: (m.startswith("S"), m)))


def approver_users(deps: Deps, request: ChangeRequest) -> tuple[str, ...]:
    """The approvers who are people (U.../W...), not groups: who gets a DM."""
    return tuple(m for m in approvers(deps, request) if m[0] in "UW")


def record_card_undeliverable(deps: Deps, request_id: int, channels: tuple[str, ...], error: str) -> None:
    """Audit that a request's card could be posted nowhere (the requester was told why)."""
    _record(deps, request_id, CARD_ACTION, "undeliverable", channels=list(channels), error=error)


def repost_undeliverable_cards(deps: Deps, channel: str) -> list[int]:
    """The bot was just added to `channel`: queue the first post there of every open request whose card could be
    posted nowhere after trying `channel` (the requester was told to invite the bot), audited once per request
    and channel, so a repeated join event posts nothing twice. Returns the requests re-posted."""
    reposted: list[int] = []
    with deps.db.uow() as uow:
        for request in uow.requests.list_open():
            if uow.requests.get_card(request.id) is not None:
                continue  # it has a card somewhere
            rows = [r for r in uow.audit.for_request(request.id) if r.action == CARD_ACTION]
            tried = any(r.outcome == "undeliverable" and channel in (r.detail.get("channels") or ()) for r in rows)
            done = any(r.outcome == "reposted" and r.detail.get("channel") == channel for r in rows)
            if not tried or done:
                continue
            payload = {"request_id": request.id, "state": request.state.value, "typed_channel": None}
            uow.outbox.enqueue("card", channel, payload, key=f"card-repost:{request.id}:{channel}", at=deps.clock())
            record(uow, deps, None, CARD_ACTION, "reposted", request=request, channel=channel)
            reposted.append(request.id)
        uow.commit()
    return reposted


def record_dm_failed(deps: Deps, request_id: int, user: str, error: str) -> None:
    """Audit that an approver could not be sent their DM (it never blocks the request)."""
    _record(deps, request_id, DM_ACTION, "failed", user=user, error=error)


def _record(deps: Deps, request_id: int, action: str, outcome: str, **detail: Any) -> None:
    with deps.db.uow() as uow:
        request = uow.requests.get(request_id)
        record(uow, deps, None, action, outcome, request=request, **detail)
        uow.commit()
