"""Executing an approved request: exactly once, fleet-wide serialised, every outcome recorded."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from bot.core import approvals
from bot.core.approvals import ChangeRequest, RequestState
from bot.core.desired import FleetConfig
from bot.core.errors import Conflict, ModelbotError, NotFound, StoreUnavailable
from bot.core.fleet import Outcome, ProgressEvent, ReplicaResult, RolloutResult
from bot.core.rollout import ChangeSpec, RolloutPlan, plan_rollout
from bot.store.unit_of_work import UnitOfWork
from bot.texts import replies as texts
from bot.usecases.audit_trail import notify_card, notify_incident, record
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.state import model_state

log = logging.getLogger(__name__)
LOCK_POLL_S = 0.2


def live_digest(deps: Deps, req: ChangeRequest, uow: UnitOfWork) -> str:
    state = model_state(deps, req.model, uow)
    return approvals.change_digest(
        req.model, req.from_version, req.to_version, req.label, state.label_map(), state.generation
    )


@dataclass(frozen=True)
class Claim:
    """What one claiming transaction hands the rollout: the request, its operation row, the whole config."""

    request: ChangeRequest
    operation_id: int
    base: FleetConfig


def execute(deps: Deps, ctx: Context, request_id: int) -> Reply:
    """Claim the request (APPROVED -> EXECUTING, one winner), run the rollout, record the outcome."""
    claim = _claim(deps, ctx, request_id)
    claimed = claim.request
    if claimed.state is RequestState.VOID:
        return Reply(texts.request_void(claimed), ok=False, public=True, request_id=claimed.id)
    try:
        result = _run(deps, ctx, claim)
    except ModelbotError as exc:
        result = _failed(str(exc))
    except Exception:  # the outcome must be recorded whatever happened; details go to the log only
        log.exception("rollout of R%s crashed", claimed.id)
        result = _failed(texts.ROLLOUT_CRASHED)
    try:
        finished = _finish_with_retries(deps, ctx, claimed, claim.operation_id, result)
    except StoreUnavailable:
        # The fleet changed (or not) regardless: say what it does now, never "nothing was changed".
        log.exception("R%s: outcome %s could not be recorded", claimed.id, result.outcome.value)
        return Reply(texts.outcome_unrecorded(claimed, result), ok=False, public=True, request_id=claimed.id)
    return Reply(
        texts.rollout_finished(finished, result),
        ok=result.outcome is Outcome.SUCCEEDED,
        public=True,
        request_id=finished.id,
        result=result,
    )


def _claim(deps: Deps, ctx: Context, request_id: int) -> Claim:
    """One transaction: lock the fleet, CAS the request to EXECUTING (or VOID), open the operation row."""
    deadline = time.monotonic() + deps.lock_wait_s
    while True:
        with deps.db.uow() as uow:
            req = uow.requests.get_for_update(request_id)
            if req is None:
                raise NotFound(texts.unknown_request(request_id))
            if req.state is not RequestState.APPROVED:
                raise Conflict(texts.already_decided(req))
            if uow.fleet_lock.acquire(deps.holder, deps.clock(), _lock_ttl(deps)):
                claim = _claim_locked(deps, ctx, uow, req)
                uow.commit()
                return claim
        if time.monotonic() > deadline:
            raise Conflict(texts.FLEET_BUSY)
        time.sleep(LOCK_POLL_S)


def _claim_locked(deps: Deps, ctx: Context, uow: UnitOfWork, req: ChangeRequest) -> Claim:
    claimed = approvals.start_execution(req, live_digest(deps, req, uow), deps.clock())
    stored = uow.requests.save(claimed, req.version)  # CAS: a second claimer gets Conflict
    void = stored.state is RequestState.VOID
    record(
        uow,
        deps,
        ctx,
        "execute",
        stored.state.value.lower(),
        request=stored,
        why=stored.decision_reason if void else "",
    )
    card = uow.requests.get_card(stored.id)
    notify_card(uow, stored, card[0] if card else None)
    if void:
        uow.fleet_lock.release(deps.holder)
        return Claim(stored, 0, FleetConfig())
    op_id = uow.operations.start(stored.id, stored.model, deps.clock())
    return Claim(stored, op_id, uow.desired.load() or FleetConfig())


def _lock_ttl(deps: Deps) -> timedelta:
    return timedelta(seconds=2 * deps.settings.serving.converge_timeout_s + 120)


def _plan(deps: Deps, req: ChangeRequest, base: FleetConfig) -> RolloutPlan:
    settings = deps.settings.models[req.model]
    state = base.model(req.model) or model_state(deps, req.model)
    # Only a non-`specific` policy (adopted at bootstrap) needs the fleet's loaded versions to plan;
    # skipping the status round keeps a warm rollback at one reload round plus one verification round.
    loaded: set[int] = set()
    if state.policy.kind != "specific":
        loaded = {v for s in deps.fleet.model_status(req.model) for v in s.available()}
    spec = ChangeSpec(req.model, req.to_version, req.label, settings.routing, settings.keep_warm)
    return plan_rollout(state, spec, loaded)


def _run(deps: Deps, ctx: Context, claim: Claim) -> RolloutResult:
    plan = _plan(deps, claim.request, claim.base)

    def persist(config: FleetConfig) -> None:
        with deps.db.uow() as uow:
            uow.desired.save(config)
            uow.commit()

    def progress(event: ProgressEvent) -> None:
        if ctx.progress is not None:
            ctx.progress(event)

    return deps.fleet.rollout(plan, claim.base, persist, progress)


def _failed(message: str) -> RolloutResult:
    return RolloutResult(Outcome.FAILED, (ReplicaResult("", False, "preflight", message),), message)


def _finish_with_retries(
    deps: Deps, ctx: Context, req: ChangeRequest, op_id: int, result: RolloutResult
) -> ChangeRequest:
    """The outcome must reach the audit trail: ride out a short database outage before giving up."""
    for delay in (*deps.finish_retry_delays_s, None):
        try:
            return _finish(deps, ctx, req, op_id, result)
        except StoreUnavailable:
            if delay is None:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def _finish(deps: Deps, ctx: Context, req: ChangeRequest, op_id: int, result: RolloutResult) -> ChangeRequest:
    with deps.db.uow() as uow:
        uow.operations.finish(op_id, result, deps.clock())
        current = uow.requests.get_for_update(req.id) or req
        done = uow.requests.save(approvals.finish(current, result.outcome), current.version)
        replicas = {r.replica: {"ok": r.ok, "phase": r.phase, "detail": r.detail} for r in result.replicas}
        record(
            uow,
            deps,
            ctx,
            "execute",
            result.outcome.value.lower(),
            request=done,
            message=result.message,
            replicas=replicas,
            elapsed_s=round(result.elapsed_s, 3),
        )
        card = uow.requests.get_card(done.id)
        notify_card(uow, done, card[0] if card else None)
        notify_incident(uow, deps, done, texts.incident_payload(done, result))
        uow.fleet_lock.release(deps.holder)
        uow.commit()
        return done


def recover_interrupted(deps: Deps) -> list[int]:
    """A bot that died mid-rollout leaves EXECUTING requests: end them FAILED (never re-run them)."""
    recovered = []
    with deps.db.uow() as uow:
        stuck = [r for r in uow.requests.list_open() if r.state is RequestState.EXECUTING]
        if not stuck or not uow.fleet_lock.acquire(deps.holder, deps.clock(), _lock_ttl(deps)):
            return []  # nothing stuck, or a live process still holds the lease and is running it
        for req in stuck:
            done = uow.requests.save(approvals.finish(req, Outcome.FAILED), req.version)
            record(uow, deps, None, "execute", "interrupted", request=done, message=texts.INTERRUPTED)
            notify_incident(uow, deps, done, texts.incident_payload(done, _failed(texts.INTERRUPTED)))
            recovered.append(done.id)
        uow.fleet_lock.release(deps.holder)
        uow.commit()
    return recovered
