"""Guarded automatic rollback (`auto_rollback` in modelbot.yaml): `serve` sweeps the firing alerts of opted-in
models, and once one has fired for `min_firing` the bot rolls the model back to its last-known-good version as an
emergency of its own (actor `modelbot`, the alert as reason), through the normal execution (fleet lease,
pre-flight, smoke test, outcome, retro-review). Any guardrail that holds it back (bot/core/auto_rollback.py) is
recorded once and posted on the alert, which keeps its manual button.

Exactly once across bot replicas: the decision is a compare-and-set on the alert row (`pending` -> acted/held)
in the same transaction as the request it opens; the fleet lease orders the rollout itself.
`modelbot` is never a Slack identity (members are U.../W.../S... ids; Service refuses the name), so no user can
act under it; only this sweep does, for models the operator opted in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from bot.core import approvals
from bot.core.alerts import AutoState, StoredAlert
from bot.core.auto_rollback import HOUR, Decision, Facts, Hold, Verdict, decide, last_known_good
from bot.core.change_request import ChangeRequest, RequestState
from bot.core.errors import ModelbotError
from bot.core.policy import Identity
from bot.settings import AutoRollback
from bot.texts import alerts as texts
from bot.usecases.alerts import queue_post
from bot.usecases.approval_routing import open_card
from bot.usecases.audit_trail import incident_channel, notify_card, record
from bot.usecases.changes import Proposal, propose
from bot.usecases.context import Context, Deps
from bot.usecases.execution import execute
from bot.usecases.freezes import frozen
from bot.usecases.ports import UnitOfWork
from bot.usecases.state import model_state

log = logging.getLogger(__name__)
SYSTEM_ACTOR = "modelbot"
ACTION = "auto_rollback"  # audit action of every decision (outcome acted / held)
FRONTEND = "auto_rollback"


def system_context(deps: Deps, model: str) -> Context:
    """The bot acting on its own: audit rows name `modelbot`; its card goes where the alert was posted."""
    return Context(actor=Identity(SYSTEM_ACTOR), channel=incident_channel(deps, model), frontend=FRONTEND)


def sweep(deps: Deps) -> int:
    """Decide every opted-in firing alert whose `min_firing` is over; returns how many rollbacks it started."""
    with deps.db.uow(readonly=True) as uow:
        pending = uow.alerts.pending_auto()
    started = _resume(deps)
    for alert in pending:
        settings = deps.settings.models.get(alert.model)
        auto = settings.auto_rollback if settings else None
        if auto is None or deps.clock() < alert.firing_since + auto.min_firing:
            continue  # not opted in any more (the row stays pending, harmless), or not due yet
        try:
            started += _decide_one(deps, alert, auto)
        except ModelbotError as exc:  # e.g. the fleet cannot be read: the next sweep tries again
            log.warning("auto-rollback of alert %s on %s not decided yet: %s", alert.id, alert.model, exc)
    return started


def _resume(deps: Deps) -> int:
    """Run the automatic requests a dead process opened but never started (still APPROVED after a lease period);
    the claim is a compare-and-set, so a live process running it at the same moment wins and this one skips."""
    with deps.db.uow(readonly=True) as uow:
        waiting = uow.alerts.acted_unexecuted(deps.clock() - timedelta(seconds=deps.lease_s))
    resumed = 0
    for request_id in waiting:
        try:
            with deps.db.uow(readonly=True) as uow:
                request = uow.requests.get(request_id)
            if request is not None:
                execute(deps, system_context(deps, request.model), request_id)
                resumed += 1
        except ModelbotError as exc:  # decided meanwhile, or the fleet is busy: the next sweep looks again
            log.info("automatic R%s not resumed: %s", request_id, exc)
    return resumed


@dataclass(frozen=True)
class _Judged:
    decision: Decision
    why: str = ""
    proposal: Proposal | None = None


def _decide_one(deps: Deps, alert: StoredAlert, auto: AutoRollback) -> int:
    judged = _judge(deps, alert, auto)
    if judged.decision.verdict is Verdict.WAIT:
        return 0
    if judged.decision.verdict is Verdict.HOLD:
        _hold(deps, alert, judged)
        return 0
    assert judged.proposal is not None
    request = _open(deps, alert, judged.proposal)
    if request is None:
        return 0  # another replica decided first, or the model got an open request meanwhile
    execute(deps, system_context(deps, alert.model), request.id)  # its outcome record updates the alert's post
    return 1


def _judge(deps: Deps, alert: StoredAlert, auto: AutoRollback) -> _Judged:
    facts = _facts(deps, alert, auto)
    decision = decide(facts)
    if decision.verdict is not Verdict.ACT:
        return _Judged(decision, _why(deps, alert, decision, auto))
    assert decision.target is not None
    label = deps.settings.models[alert.model].label
    try:
        proposal = propose(deps, alert.model, decision.target, label)
    except ModelbotError as exc:  # version gone, signature incompatible, already serving it...
        held = decide(replace(facts, preflight_problem=str(exc)))
        return _Judged(held, texts.hold_reason(Hold.PREFLIGHT, detail=str(exc)))
    return _Judged(decision, proposal=proposal)


def _facts(deps: Deps, alert: StoredAlert, auto: AutoRollback) -> Facts:
    now = deps.clock()
    label = deps.settings.models[alert.model].label
    with deps.db.uow(readonly=True) as uow:
        current = model_state(deps, alert.model, uow).label(label)
        timeline = uow.alerts.stable_timeline(alert.model, label)
        last_change = uow.alerts.last_change_at(alert.model)
        acted = uow.alerts.acted_since(alert.model, now - HOUR)
        busy = bool(deps.running) or uow.operations.any_unfinished() or uow.fleet_lock.holder(now) is not None
        is_frozen = frozen(deps, alert.model, uow) is not None
    return Facts(
        now=now,
        firing_since=alert.firing_since,
        min_firing=auto.min_firing,
        cooldown=auto.cooldown,
        max_per_hour=auto.max_per_hour,
        last_change_at=last_change,
        acted_last_hour=acted,
        frozen=is_frozen,
        busy=busy,
        current=current,
        last_known_good=last_known_good(timeline, current, auto.min_stable, now),
    )


def _why(deps: Deps, alert: StoredAlert, decision: Decision, auto: AutoRollback) -> str:
    if decision.hold is None:
        return ""
    detail = ""
    if decision.hold is Hold.FROZEN:
        found = frozen(deps, alert.model)
        detail = found.reason if found else ""
    return texts.hold_reason(decision.hold, until=decision.until, detail=detail, max_per_hour=auto.max_per_hour)


def _hold(deps: Deps, alert: StoredAlert, judged: _Judged) -> None:
    """Record the hold once (the CAS on the alert row), audited as `modelbot`, and show it on the alert's post."""
    hold = judged.decision.hold.value if judged.decision.hold else ""
    with deps.db.uow() as uow:
        if not uow.alerts.decide_auto(alert.id, AutoState.HELD, deps.clock(), reason=judged.why):
            return
        ctx = system_context(deps, alert.model)
        record(uow, deps, ctx, ACTION, "held", model=alert.model, hold=hold, why=judged.why, alert=alert.reference())
        queue_post(uow, deps, alert, "auto")
        uow.commit()
    log.info("auto-rollback of %s held back (%s)", alert.model, hold)


def _open(deps: Deps, alert: StoredAlert, proposal: Proposal) -> ChangeRequest | None:
    """One transaction: the emergency request by `modelbot` (voiding a pending one, like a human emergency),
    the alert row's CAS to acted, the audit rows, the card and the alert post update."""
    ctx = system_context(deps, alert.model)
    request = _request(deps, alert, proposal)
    with deps.db.uow() as uow:
        superseded = _void_pending(uow, alert.model)
        try:
            stored = uow.requests.add(request)
        except ModelbotError:  # a rollout of the model is executing: the sweep looks again next time
            return None
        if not uow.alerts.decide_auto(alert.id, AutoState.ACTED, deps.clock(), request_id=stored.id):
            return None  # another replica acted on it: roll all of this back
        reference = alert.reference()
        record(uow, deps, ctx, ACTION, "acted", request=stored, alert=reference, to_version=stored.to_version)
        record(uow, deps, ctx, "rollback", "requested", request=stored, reason=stored.reason, emergency=True)
        open_card(uow, deps, stored, ctx.channel)
        if superseded is not None:
            named = uow.requests.save(approvals.supersede(superseded, SYSTEM_ACTOR, stored.id), superseded.version)
            record(uow, deps, ctx, "void", "superseded", request=named, why=named.decision_reason, by=stored.id)
            card = uow.requests.get_card(named.id)
            notify_card(uow, named, card[0] if card else None)
        queue_post(uow, deps, alert, "auto")
        uow.commit()
    log.info("auto-rollback of %s to v%s as R%s", alert.model, stored.to_version, stored.id)
    return stored


def _request(deps: Deps, alert: StoredAlert, proposal: Proposal) -> ChangeRequest:
    rule = deps.policy.approval_rule(alert.model, "rollback")  # an emergency: its approver roles review it
    request = approvals.new_request(
        proposal.change_plan("rollback", emergency=True),
        rule,
        Identity(SYSTEM_ACTOR),
        deps.clock(),
        texts.auto_reason(alert.alertname, alert.notice.summary)[:500],
        ttl=max(deps.policy.approval_ttl, timedelta(minutes=1)),
        retro_review_within=deps.retro_review_within,
    )
    return replace(request, extra={**request.extra, "alert": alert.reference(), "automatic": True})


def _void_pending(uow: UnitOfWork, model: str) -> ChangeRequest | None:
    existing = uow.requests.open_for_model(model)
    if existing is None or existing.state not in (RequestState.PENDING, RequestState.APPROVED):
        return None
    return uow.requests.save(approvals.supersede(existing, SYSTEM_ACTOR), existing.version)
