"""Executing an approved request: exactly once, fleet-wide serialised, every outcome recorded."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from bot.core import approvals
from bot.core.change_request import ChangeRequest, RequestState, change_digest
from bot.core.desired import FleetConfig, ModelState
from bot.core.errors import Conflict, FleetBusy, ModelbotError, NotFound, StoreUnavailable
from bot.core.fleet import Outcome, ProgressEvent, ReplicaResult, RolloutResult
from bot.core.policy import Identity
from bot.core.rollout import ChangeSpec, RolloutPlan, plan_rollout
from bot.logging_setup import bound_context
from bot.texts import replies as texts
from bot.usecases import lease
from bot.usecases.alerts import queue_outcome_post
from bot.usecases.audit_trail import notify_card, notify_incident, record
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.freezes import frozen, refuse_if_frozen
from bot.usecases.ports import UnitOfWork
from bot.usecases.recovery import recover_interrupted
from bot.usecases.smoke import golden_request
from bot.usecases.state import model_state

log = logging.getLogger(__name__)
LOCK_POLL_S = 0.2


def live_digest(req: ChangeRequest, state: ModelState) -> str:
    """The digest of `req`'s change against the model's desired state now (approvals bind to it)."""
    return change_digest(req.model, req.from_version, req.to_version, req.label, state.label_map(), state.generation)


@dataclass(frozen=True)
class Claim:
    """What one claiming transaction hands the rollout: the request, its operation row, the whole config."""

    request: ChangeRequest
    operation_id: int
    base: FleetConfig


def execute(deps: Deps, ctx: Context, request_id: int, claim: Claim | None = None) -> Reply:
    """Claim the request (APPROVED -> EXECUTING, one winner) unless `claim` did already, run the rollout under
    a renewed fleet lease, record the outcome exactly once (late, if the database is away when it ends)."""
    with bound_context(request_id=f"R{request_id}"):  # every log line of this rollout, its threads' too
        claim = claim or _claim(deps, ctx, request_id)
        with bound_context(operation_id=claim.operation_id or None, model=claim.request.model):
            return _execute(deps, ctx, claim)


def _execute(deps: Deps, ctx: Context, claim: Claim) -> Reply:
    claimed = claim.request
    if claimed.state is RequestState.VOID:
        return Reply(texts.request_void(claimed), ok=False, public=True, request_id=claimed.id)
    deps.running.add(claim.operation_id)
    heartbeat = lease.Heartbeat(deps, f"R{claimed.id}").start()
    handed_over = False
    try:
        result = _rollout(deps, ctx, claim)
        try:
            finished = _finish_with_retries(deps, ctx, claimed, claim.operation_id, result)
        except StoreUnavailable:
            # The fleet changed (or not) regardless: say what it does now, never "nothing was changed", and
            # keep the lease (and this process's claim on the operation) until the outcome is recorded.
            log.warning(
                "R%s: outcome %s not recorded yet; retrying until the database is back",
                claimed.id,
                result.outcome.value,
            )
            _record_later(deps, ctx, claim, result, heartbeat)
            handed_over = True
            return Reply(texts.outcome_unrecorded(claimed, result), ok=False, public=True, request_id=claimed.id)
    finally:
        if not handed_over:
            heartbeat.stop()
            deps.running.discard(claim.operation_id)
    if finished is None:  # another process recovered it after our lease lapsed; its record stands
        return Reply(texts.LEASE_LOST, ok=False, public=True, request_id=claimed.id)
    return Reply(
        texts.rollout_finished(finished, result),
        ok=result.outcome is Outcome.SUCCEEDED,
        public=True,
        request_id=finished.id,
        result=result,
    )


def _rollout(deps: Deps, ctx: Context, claim: Claim) -> RolloutResult:
    try:
        return _run(deps, ctx, claim)
    except ModelbotError as exc:
        return _failed(str(exc))
    except Exception:  # the outcome must be recorded whatever happened; details go to the log only
        log.exception("rollout of R%s crashed", claim.request.id)
        return _failed(texts.ROLLOUT_CRASHED)


def resume_waiting_emergencies(deps: Deps) -> int:
    """Emergencies execute at once (DESIGN §5), but one whose claim gave up waiting for a fleet another rollout held
    (longer than `lock_wait_s`, e.g. a 60 s load) stays APPROVED, and its requester cannot approve it again: this
    sweep runs it, as its requester, as soon as the fleet is free. The claim is a compare-and-set, so a process still
    waiting to run it and this sweep cannot both run it. Automatic rollbacks have their own resume. Returns how many
    it ran."""
    cutoff = deps.clock() - timedelta(seconds=deps.lock_wait_s)
    with deps.db.uow(readonly=True) as uow:
        waiting = [
            r
            for r in uow.requests.list_open()
            if r.emergency
            and r.state is RequestState.APPROVED
            and r.created_at <= cutoff
            and not r.extra.get("automatic")
        ]
        if not waiting or uow.fleet_lock.holder(deps.clock()) is not None:
            return 0  # nothing waits, or the fleet is still busy: the next sweep looks again
    ran = 0
    for request in waiting:
        ctx = Context(actor=Identity(request.requester), frontend="sweep")
        try:
            execute(deps, ctx, request.id)
            ran += 1
        except ModelbotError as exc:  # run by its own process meanwhile, expired, or the fleet busy again
            log.info("emergency R%s not resumed: %s", request.id, exc)
    return ran


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
            refuse_if_frozen(deps, req.model, emergency=req.emergency, uow=uow)  # approved, waits for the unfreeze
            if lease.acquire(deps, uow):
                claim = _claim_locked(deps, ctx, uow, req)
                uow.commit()
                return claim
        if recover_interrupted(deps):  # a dead process's rollout stood in the way: recovered, try again now
            continue
        if time.monotonic() > deadline:
            raise FleetBusy(texts.FLEET_BUSY)
        time.sleep(LOCK_POLL_S)


def try_claim(deps: Deps, ctx: Context, uow: UnitOfWork, req: ChangeRequest) -> Claim | None:
    """Inside the caller's transaction (the approval that completed the quorum): take the fleet and start
    executing `req` at once, or None when the fleet is busy (then `execute` waits for it)."""
    if frozen(deps, req.model, uow) is not None and not req.emergency:
        return None  # stays APPROVED; `execute` then says why
    if not lease.acquire(deps, uow):
        return None
    return _claim_locked(deps, ctx, uow, req)


def _claim_locked(deps: Deps, ctx: Context, uow: UnitOfWork, req: ChangeRequest) -> Claim:
    base = uow.desired.load() or FleetConfig()
    state = base.model(req.model) or model_state(deps, req.model, uow)
    claimed = approvals.start_execution(req, live_digest(req, state), deps.clock())
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
        lease.release(deps, uow)
        return Claim(stored, 0, FleetConfig())
    op_id = uow.operations.start(
        stored.id, stored.model, deps.clock(), holder=deps.holder, before=base.model(stored.model)
    )
    return Claim(stored, op_id, base)


def _plan(deps: Deps, req: ChangeRequest, base: FleetConfig) -> RolloutPlan:
    settings = deps.settings.models[req.model]
    state = base.model(req.model) or model_state(deps, req.model)
    # Only a non-`specific` policy (adopted at bootstrap) needs the fleet's loaded versions to plan;
    # skipping the status round keeps a warm rollback at one reload round plus one verification round.
    loaded: set[int] = set()
    if state.policy.kind != "specific":
        loaded = {v for s in deps.fleet.model_status(req.model) for v in s.available()}
    # The model's smoke test rides in the plan: every rollout executed here runs it before any label moves.
    smoke = golden_request(deps, req.model)
    spec = ChangeSpec(req.model, req.to_version, req.label, settings.routing, settings.keep_warm, smoke)
    return plan_rollout(state, spec, loaded)


def _run(deps: Deps, ctx: Context, claim: Claim) -> RolloutResult:
    plan = _plan(deps, claim.request, claim.base)

    def persist(config: FleetConfig) -> None:
        """Fenced by the lease: a process whose lease was taken over records and sends nothing more."""
        with deps.db.uow() as uow:
            lease.fence(deps, uow)
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
) -> ChangeRequest | None:
    """The outcome must reach the audit trail: ride out a short database outage before handing it over."""
    for delay in (*deps.finish_retry_delays_s, None):
        try:
            return _finish(deps, ctx, req, op_id, result)
        except StoreUnavailable:
            if delay is None:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def _finish(
    deps: Deps, ctx: Context | None, req: ChangeRequest, op_id: int, result: RolloutResult, *, late: str = ""
) -> ChangeRequest | None:
    """Record the outcome, close the request, release the lease: one transaction, exactly once (None when
    the operation was already recorded, by a recovery that took over a lapsed lease)."""
    with deps.db.uow() as uow:
        if not uow.operations.finish(op_id, result, deps.clock()):
            return None
        current = uow.requests.get_for_update(req.id) or req
        done = uow.requests.save(approvals.finish(current, result.outcome), current.version)
        replicas = {r.replica: {"ok": r.ok, "phase": r.phase, "detail": r.detail} for r in result.replicas}
        extra = {"recorded_late": late} if late else {}
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
            **extra,
        )
        card = uow.requests.get_card(done.id)
        notify_card(uow, done, card[0] if card else None)
        notify_incident(uow, deps, done, texts.incident_payload(done, result))
        queue_outcome_post(uow, deps, done)
        lease.release(deps, uow)
        uow.commit()
        return done


def _record_later(deps: Deps, ctx: Context, claim: Claim, result: RolloutResult, heartbeat: lease.Heartbeat) -> None:
    """Keep trying to record `result` on a daemon thread until the database is back, holding the lease (so no
    recovery second-guesses a rollout whose outcome this process knows); then release everything."""
    since = deps.clock()

    def keep_trying() -> None:
        delays = iter(deps.late_record_delays_s)
        delay = next(delays, 5.0)
        try:
            while True:
                time.sleep(delay)
                delay = next(delays, delay)
                try:
                    late = texts.recorded_late(since, deps.clock())
                    done = _finish(deps, ctx, claim.request, claim.operation_id, result, late=late)
                except StoreUnavailable:
                    continue
                except Exception:
                    log.exception("R%s: recording the outcome failed", claim.request.id)
                    continue
                log.warning(
                    "R%s: outcome %s %s",
                    claim.request.id,
                    result.outcome.value,
                    "recorded" if done else "was recorded by a recovery",
                )
                return
        finally:
            heartbeat.stop()
            deps.running.discard(claim.operation_id)

    context = contextvars.copy_context()  # the retries' log lines keep the rollout's request and operation ids
    threading.Thread(target=context.run, args=(keep_trying,), name=f"record-R{claim.request.id}", daemon=True).start()
