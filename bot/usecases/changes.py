"""promote / rollback: validate, plan, then open a request (or show the plan with --dry-run)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from bot.core import approvals, commands
from bot.core.change_request import ChangePlan, ChangeRequest, RequestState
from bot.core.commands import EMERGENCY_ACTION
from bot.core.errors import Conflict, FleetBusy, ModelbotError, PreflightFailed, StoreUnavailable
from bot.core.fleet import ReplicaStatus
from bot.core.freeze import Freeze
from bot.core.rollout import ChangeSpec, RolloutPlan, Routing, plan_rollout
from bot.core.signatures import compatibility_problems
from bot.texts import replies as texts
from bot.usecases.approval_routing import open_card
from bot.usecases.audit_trail import notify_card, record, record_alone
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.decisions import expire_due
from bot.usecases.execution import execute
from bot.usecases.freezes import refuse_if_frozen
from bot.usecases.ports import UnitOfWork
from bot.usecases.state import model_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Proposal:
    """A validated change: the plan, the fleet as it is now, and the signature verdict."""

    plan: RolloutPlan
    statuses: tuple[ReplicaStatus, ...]
    signature_note: str
    drifted: Mapping[str, int | str] = field(default_factory=dict)  # replica -> what it serves instead

    def summary(self) -> str:
        return texts.resync_summary(self.plan, self.drifted) if self.drifted else texts.plan_summary(self.plan)

    def change_plan(self, action: str, *, emergency: bool) -> ChangePlan:
        """What a request for this change is bound to (the desired state it was planned from) and shows."""
        plan = self.plan
        return ChangePlan(
            action=action,
            model=plan.spec.model,
            from_version=plan.from_version,
            to_version=plan.spec.to_version,
            label=plan.spec.label,
            label_map=plan.before.label_map(),
            generation=plan.before.generation,
            emergency=emergency,
            summary=self.summary(),
            signature_note=self.signature_note,
        )


@dataclass(frozen=True)
class Ask:
    """A promote or rollback as the command gave it (the label: the command's, or the model's for a rollback)."""

    action: str  # "promote" | "rollback"
    model: str
    version: int
    label: str
    reason: str
    dry_run: bool
    emergency: bool = False

    @property
    def permission(self) -> str:
        return EMERGENCY_ACTION if self.emergency else self.action


def promote(deps: Deps, ctx: Context, cmd: commands.Promote) -> Reply:
    ask = Ask("promote", cmd.model_name, cmd.version, cmd.label, cmd.reason, cmd.dry_run)
    return _change(deps, ctx, ask)


def rollback(deps: Deps, ctx: Context, cmd: commands.Rollback) -> Reply:
    label = deps.settings.models[cmd.model_name].label
    ask = Ask("rollback", cmd.model_name, cmd.version, label, cmd.reason, cmd.dry_run, cmd.emergency)
    return _change(deps, ctx, ask)


def propose(deps: Deps, model: str, version: int, label: str) -> Proposal:
    """Pre-flight checks shared by requests and dry runs: version on disk, signature, not a no-op."""
    settings = deps.settings.models[model]
    on_disk = deps.catalog.versions(settings.base_path)
    if version not in on_disk:
        raise PreflightFailed(texts.version_not_on_disk(model, version, on_disk))
    state = model_state(deps, model)
    statuses = deps.fleet.model_status(model)
    loaded = {v for s in statuses for v in s.available()}
    spec = ChangeSpec(model, version, label, settings.routing, settings.keep_warm)
    plan = plan_rollout(state, spec, loaded)
    drifted: dict[str, int | str] = {}
    if plan.from_version == version and plan.switch.served_config() == state.served_config():
        # The database says this is served; only the fleet can say whether it really is (drift).
        routed = label if settings.routing is Routing.LABELS else None
        drifted = {r: seen for r, seen in deps.fleet.resolve(model, routed).items() if seen != version}
        if not drifted:
            raise Conflict(texts.already_serving(model, version, label))
    return Proposal(plan, statuses, _signature_note(deps, model, plan), drifted)


def _void_for_emergency(uow: UnitOfWork, ctx: Context, model: str) -> ChangeRequest | None:
    """Break-glass is never blocked by a pending request: one PENDING or APPROVED for the model becomes VOID
    (an EXECUTING one is not touched: a rollout is running and the fleet lock orders the two)."""
    existing = uow.requests.open_for_model(model)
    if existing is None or existing.state not in (RequestState.PENDING, RequestState.APPROVED):
        return None
    return uow.requests.save(approvals.supersede(existing, ctx.actor.user_id), existing.version)


def _signature_note(deps: Deps, model: str, plan: RolloutPlan) -> str:
    base_path = deps.settings.models[model].base_path
    target = deps.catalog.signature(base_path, plan.spec.to_version)
    if plan.from_version is None:
        return texts.SIGNATURE_NO_CURRENT
    current = deps.catalog.signature(base_path, plan.from_version)
    if target is None or current is None:
        missing = plan.spec.to_version if target is None else plan.from_version
        raise PreflightFailed(texts.signature_unreadable(model, missing))
    problems = compatibility_problems(current, target)
    if problems:
        raise PreflightFailed(texts.signature_incompatible(model, plan.from_version, plan.spec.to_version, problems))
    return texts.signature_ok(target.describe())


def _change(deps: Deps, ctx: Context, ask: Ask) -> Reply:
    try:
        opened = _open(deps, ctx, ask)
    except StoreUnavailable:
        raise
    except ModelbotError as exc:  # frozen, pre-flight, already open: a decision too, so an audit row (DESIGN §5)
        if not ask.dry_run:
            _record_refusal(deps, ctx, ask, why=str(exc))
        raise
    if isinstance(opened, Reply):
        return opened  # the dry run's plan
    stored, overridden = opened
    if stored.state is RequestState.APPROVED:  # emergency, or a policy that needs no approver
        try:
            done = execute(deps, ctx, stored.id)
        except FleetBusy:
            if not stored.emergency:
                raise
            return Reply(texts.emergency_waits(stored), public=True, request_id=stored.id)
        return replace(done, text=f"{done.text}\n{texts.overrode_freeze(overridden)}") if overridden else done
    return Reply(texts.request_opened(stored, deps.policy.who_can("approve")), public=True, request_id=stored.id)


def _open(deps: Deps, ctx: Context, ask: Ask) -> Reply | tuple[ChangeRequest, Freeze | None]:
    """Every check, then the request stored with its audit row and card: (the request, the freeze it overrode);
    for a dry run the plan instead. Raises the refusal (nothing stored)."""
    action, model, emergency = ask.action, ask.model, ask.emergency
    overridden = refuse_if_frozen(deps, model, emergency=emergency)
    proposal = propose(deps, model, ask.version, ask.label)
    rule = deps.policy.approval_rule(model, action)
    if ask.dry_run:
        return Reply(texts.dry_run(action, proposal, rule))
    expire_due(deps)
    now = deps.clock()
    change = proposal.change_plan(action, emergency=emergency)
    within = deps.retro_review_within
    request = approvals.new_request(
        change, rule, ctx.actor, now, ask.reason, ttl=deps.policy.approval_ttl, retro_review_within=within
    )
    if ctx.alert:  # requested from an alert's post: the request and its audit rows keep the alert
        request = replace(request, extra={**request.extra, "alert": dict(ctx.alert)})
    with deps.db.uow() as uow:
        superseded = _void_for_emergency(uow, ctx, model) if emergency else None
        stored = uow.requests.add(request)
        extra = {"overrode_freeze": texts.overrode_freeze(overridden)} if overridden else {}
        record(uow, deps, ctx, action, "requested", request=stored, reason=ask.reason, emergency=emergency, **extra)
        open_card(uow, deps, stored, ctx.channel)  # the approval channel, else where it was typed
        if superseded is not None:  # name the emergency request on the one it replaced, its card and its trail
            named = uow.requests.save(approvals.supersede(superseded, ctx.actor.user_id, stored.id), superseded.version)
            record(uow, deps, ctx, "void", "superseded", request=named, why=named.decision_reason, by=stored.id)
            card = uow.requests.get_card(named.id)
            notify_card(uow, named, card[0] if card else None)
        uow.commit()
    return stored, overridden


def _record_refusal(deps: Deps, ctx: Context, ask: Ask, *, why: str) -> None:
    try:
        record_alone(deps, ctx, ask.permission, "refused", model=ask.model, to_version=ask.version, why=why)
    except ModelbotError as exc:  # the refusal itself is what the user must hear
        log.warning("refusal of %s on %s not audited: %s", ask.permission, ask.model, exc)


__all__ = ["promote", "propose", "rollback"]
