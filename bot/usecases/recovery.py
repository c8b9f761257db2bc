"""Recovering the rollouts of dead processes (DESIGN.md §4): read every replica, finish or restore one
consistent state, and record what was found and done, per replica.

Only an operation whose holder's lease has lapsed is touched: the sweep takes the fleet lock itself, which a
live holder renews on its heartbeat, and never touches an operation this process is running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from bot.core import approvals
from bot.core.change_request import ChangeRequest, RequestState
from bot.core.desired import FleetConfig, ModelState
from bot.core.errors import ModelbotError
from bot.core.fleet import Outcome, ReplicaResult, RolloutResult
from bot.core.recovery import Finding, Found, Recovery, classify, decide
from bot.core.rollout import Routing
from bot.texts import replies as texts
from bot.usecases import lease
from bot.usecases.alerts import queue_outcome_post
from bot.usecases.audit_trail import notify_card, notify_incident, record
from bot.usecases.context import Deps

log = logging.getLogger(__name__)
NO_ANSWER = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


def recover_interrupted(deps: Deps) -> list[int]:
    """Close every operation a dead process left open; returns the ids of the requests it closed."""
    with deps.db.uow(readonly=True) as uow:
        if not uow.operations.any_unfinished():
            return []  # the usual case: one indexed look-up, no write
    with deps.db.uow() as uow:
        if not lease.acquire(deps, uow, recovering=True):
            return []  # a live holder is still running it (or this process is busy on the fleet)
        # Read what is stuck only now, under the lease: an operation whose process finished it (and released the
        # lease) a moment ago is not touched.
        stuck = [op for op in uow.operations.unfinished() if op["id"] not in deps.running]
        if not stuck:
            return []  # leaving without commit gives the lease back untaken
        uow.commit()
    closed: list[int] = []
    try:
        with lease.Heartbeat(deps, "recovery"):
            for op in stuck:
                request_id = _recover(deps, op)
                if request_id is not None:
                    closed.append(request_id)
    finally:
        with deps.db.uow() as uow:
            lease.release(deps, uow)
            uow.commit()
    return closed


def _recover(deps: Deps, op: dict[str, Any]) -> int | None:
    with deps.db.uow(readonly=True) as uow:
        req = uow.requests.get(op["request_id"]) if op["request_id"] is not None else None
        known, before = uow.operations.before_state(op["id"])
        persisted = uow.desired.load() or FleetConfig()
    model = req.model if req is not None else str(op["model"])
    if not known:  # recorded before the schema kept the state: the label pointed at from_version then
        before = _legacy_before(persisted.model(model), req)
    label = _label(deps, model, req.label if req is not None else "stable")
    target = req.to_version if req is not None else None  # no request: nothing counts as switched, restore
    findings = _read(deps, model, target, label)
    decision = decide(findings, persisted=persisted, model=model, before=before, target=target, label=label)
    if decision is None:
        log.warning("operation %s on %s: no replica answered; recovered once one does", op["id"], model)
        return None
    with deps.db.uow() as uow:
        lease.fence(deps, uow)
        uow.desired.save(decision.config)  # persist before send, as every rollout phase does
        uow.commit()
    try:
        sent = deps.fleet.apply(decision.config)
    except ModelbotError as exc:  # refused before sending (a model with no version on disk): say so per replica
        sent = {f.replica: str(exc) for f in findings}
    after = _verify(deps, model, label, decision.expect)
    result = _result(decision, findings, sent=sent, after=after, holder=op.get("holder"))
    return _record(deps, op["id"], model=model, req=req, result=result, findings=findings)


def _label(deps: Deps, model: str, label: str) -> str | None:
    settings = deps.settings.models.get(model)
    return None if settings is not None and settings.routing is Routing.LATEST else label


def _legacy_before(current: ModelState | None, req: ChangeRequest | None) -> ModelState | None:
    if current is None or req is None or req.from_version is None:
        return current
    labels = current.label_map()
    labels[req.label] = req.from_version
    return current.with_versions({*current.policy.versions, req.from_version}).with_labels(labels)


def _read(deps: Deps, model: str, target: int | None, label: str | None) -> tuple[Finding, ...]:
    statuses = deps.fleet.model_status(model)
    silent = frozenset(s.replica for s in statuses if s.error_code in NO_ANSWER)
    return classify(deps.fleet.resolve(model, label), target, silent)


def _verify(deps: Deps, model: str, label: str | None, expect: int | None) -> dict[str, int | str]:
    """Poll until every replica resolves to `expect` (labels move at once; unversioned traffic follows the
    next filesystem poll) or the converge timeout passes; returns the last resolution per replica."""
    serving = deps.settings.serving
    deadline = time.monotonic() + serving.converge_timeout_s
    while True:
        seen = dict(deps.fleet.resolve(model, label))
        if expect is None or all(v == expect for v in seen.values()) or time.monotonic() >= deadline:
            return seen
        time.sleep(max(serving.status_poll_interval_s, 0.2))


def _result(
    decision: Recovery,
    findings: tuple[Finding, ...],
    *,
    sent: Mapping[str, str | None],
    after: Mapping[str, int | str],
    holder: str | None,
) -> RolloutResult:
    replicas = []
    for f in findings:
        error, seen = sent.get(f.replica), after.get(f.replica)
        # A reload that outlived its deadline may still apply (reference §1.3): what the replica resolves to
        # afterwards decides, not the send.
        ok = seen == decision.expect if decision.expect is not None else error is None
        did = "confirmed" if decision.finish else "restored"
        if ok:
            detail = f"found {_found(f)}; {did}" + (f" v{seen}" if isinstance(seen, int) else "")
        elif error is not None:
            detail = (
                f"found {_found(f)}; sending the {'final' if decision.finish else 'previous'} config failed: {error}"
            )
        else:
            detail = f"found {_found(f)}; then resolves to {seen}, expected v{decision.expect}"
        replicas.append(ReplicaResult(f.replica, ok, "recovery", detail, seen if isinstance(seen, int) else None))
    outcome = decision.outcome
    if decision.finish and not all(r.ok for r in replicas):
        outcome = Outcome.PARTIAL if any(r.ok for r in replicas) else Outcome.FAILED
    message = texts.recovered(holder, decision.finish, {f.replica: f.found.value for f in findings}, decision.expect)
    return RolloutResult(outcome, tuple(replicas), message, ("recovery",))


def _found(f: Finding) -> str:
    if f.found is Found.UNREACHABLE:
        return f"unreachable ({f.detail})"
    return f"{f.found.value}" + (f" (v{f.resolves_to})" if f.resolves_to is not None else f" ({f.detail})")


def _record(
    deps: Deps,
    op_id: int,
    *,
    model: str,
    req: ChangeRequest | None,
    result: RolloutResult,
    findings: tuple[Finding, ...],
) -> int | None:
    """Close the operation (exactly once) and its request, with the audit row, card and incident post."""
    with deps.db.uow() as uow:
        if not uow.operations.finish(op_id, result, deps.clock()):
            return None  # its own process recorded it meanwhile (it was alive after all, behind an outage)
        done = uow.requests.get_for_update(req.id) if req is not None else None
        if done is not None and done.state is RequestState.EXECUTING:
            done = uow.requests.save(approvals.finish(done, result.outcome), done.version)
        detail = {
            "message": result.message,
            "outcome_state": result.outcome.value,
            "found": {f.replica: _found(f) for f in findings},
            "replicas": {r.replica: {"ok": r.ok, "detail": r.detail} for r in result.replicas},
            "operation": op_id,
        }
        record(uow, deps, None, "execute", "recovered", request=done, model=model, **detail)
        if done is not None:
            card = uow.requests.get_card(done.id)
            notify_card(uow, done, card[0] if card else None)
            notify_incident(uow, deps, done, texts.incident_payload(done, result))
            queue_outcome_post(uow, deps, done)
        uow.commit()
    log.warning("operation %s on %s recovered: %s", op_id, model, result.message)
    return done.id if done is not None else None


__all__ = ["recover_interrupted"]
