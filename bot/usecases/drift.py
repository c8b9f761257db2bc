"""Drift detection and re-sync (DESIGN §2 `drift_check_interval_s`, `/model resync`).

`check_drift` compares every replica with the desired state (one GetModelStatus per model per replica, and the
label resolution of managed models), and keeps one drift episode per model: the first sighting is audited and
posted once to the model's incident channel with a Re-sync button; the return to sync is audited and posted too.
`resync` re-sends the desired config to the drifted replicas only, under the fleet lease, verifies and audits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from bot.core import commands
from bot.core.desired import ModelState
from bot.core.drift import ModelDrift, model_drift
from bot.core.errors import Conflict, ModelbotError, NotFound
from bot.core.fleet import Outcome, ReplicaResult, RolloutResult
from bot.core.rollout import Routing
from bot.texts import replies as texts
from bot.usecases import lease
from bot.usecases.audit_trail import incident_channel, record
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.ports import UnitOfWork
from bot.usecases.recovery import recover_interrupted
from bot.usecases.state import fleet_config

log = logging.getLogger(__name__)
CONFIRM_AFTER_S = 2.0  # a drift must still be there on a second look (a version being unloaded is not drift)


def check_drift(deps: Deps, confirm_after_s: float = CONFIRM_AFTER_S) -> list[ModelDrift]:
    """One drift check of the whole fleet; returns the models found drifted (episodes opened/updated/closed)."""
    if _fleet_busy(deps):
        return []  # a rollout is moving the fleet on purpose
    config = fleet_config(deps)
    found = _read(deps, config.models)
    suspects = [config.model(d.model) for d in found if d.drifted]
    if suspects and confirm_after_s > 0:
        time.sleep(confirm_after_s)
        again = {d.model: d for d in _read(deps, [s for s in suspects if s is not None])}
        found = [again.get(d.model, d) if d.drifted else d for d in found]
    with deps.db.uow() as uow:
        if uow.operations.any_unfinished():
            return []  # a rollout started meanwhile: its own verification speaks for the fleet
        episodes = uow.drift.open_episodes()
        for drift in found:
            _episode(deps, uow, drift, is_open=drift.model in episodes)
        for model in set(episodes) - {d.model for d in found}:  # the model left the desired state
            uow.drift.close(model)
        uow.commit()
    return [d for d in found if d.drifted]


def resync(deps: Deps, ctx: Context, cmd: commands.Resync) -> Reply:
    """Re-send the desired config to the replicas that drifted from it, verify them, audit it."""
    state = fleet_config(deps).model(cmd.model_name)
    if state is None:
        raise NotFound(texts.resync_not_served(cmd.model_name))
    op_id = _hold_fleet(deps, ctx, state)
    deps.running.add(op_id)
    try:
        with lease.Heartbeat(deps, f"resync-{cmd.model_name}"):
            result = _resync(deps, state)
            with deps.db.uow() as uow:
                uow.operations.finish(op_id, result, deps.clock())
                record(uow, deps, ctx, "resync", result.outcome.value.lower(), model=state.name, **_detail(result))
                if result.replicas:
                    _notify(uow, deps, state.name, "incident", {"model": state.name, "text": result.message})
                if result.outcome is Outcome.SUCCEEDED:
                    uow.drift.close(state.name)
                lease.release(deps, uow)
                uow.commit()
    finally:
        deps.running.discard(op_id)
    return Reply(result.message, ok=result.outcome is Outcome.SUCCEEDED, public=True)


def _hold_fleet(deps: Deps, ctx: Context, state: ModelState) -> int:
    """Take the fleet lease (waiting for a running rollout, recovering a dead one) and open the operation."""
    deadline = time.monotonic() + deps.lock_wait_s
    while True:
        with deps.db.uow() as uow:
            if lease.acquire(deps, uow):
                op_id = uow.operations.start(None, state.name, deps.clock(), holder=deps.holder, before=state)
                record(uow, deps, ctx, "resync", "started", model=state.name, operation=op_id)
                uow.commit()
                return op_id
        if recover_interrupted(deps):
            continue
        if time.monotonic() > deadline:
            raise Conflict(texts.FLEET_BUSY_RESYNC)
        time.sleep(0.2)


def _resync(deps: Deps, state: ModelState) -> RolloutResult:
    started = time.monotonic()
    before = _read(deps, [state])[0]
    if not before.drifted:
        return RolloutResult(Outcome.SUCCEEDED, (), texts.resync_nothing(state.name), (), time.monotonic() - started)
    drifted = tuple(before.replicas)
    config = fleet_config(deps)
    with deps.db.uow() as uow:
        lease.fence(deps, uow)  # nothing is sent by a process that lost the fleet
        uow.commit()
    try:
        sent: Mapping[str, str | None] = deps.fleet.apply(config, replicas=drifted)
    except ModelbotError as exc:
        sent = dict.fromkeys(drifted, str(exc))
    after = _await_sync(deps, state, drifted)
    results = tuple(
        ReplicaResult(
            r,
            r not in after.replicas,
            "resync",
            texts.resync_replica(before.replicas[r], after.replicas.get(r), sent.get(r)),
            None,
        )
        for r in drifted
    )
    ok = sum(r.ok for r in results)
    outcome = Outcome.SUCCEEDED if ok == len(results) else Outcome.PARTIAL if ok else Outcome.FAILED
    message = texts.resync_done(state.name, outcome, results)
    return RolloutResult(outcome, results, message, ("resync",), time.monotonic() - started)


def _await_sync(deps: Deps, state: ModelState, replicas: Iterable[str]) -> ModelDrift:
    """Poll the re-sent replicas until none differs (loads may take a while) or the converge timeout passes."""
    wanted = set(replicas)
    deadline = time.monotonic() + deps.settings.serving.converge_timeout_s
    while True:
        now = _read(deps, [state])[0]
        left = {r: p for r, p in now.replicas.items() if r in wanted}
        if not left or time.monotonic() >= deadline:
            return ModelDrift(state.name, left)
        time.sleep(max(deps.settings.serving.status_poll_interval_s, 0.2))


def _read(deps: Deps, states: Iterable[ModelState | None]) -> list[ModelDrift]:
    """Read the models at once (`Fleet.survey`); managed models also by their route (label or unversioned)."""
    models = [s for s in states if s is not None]
    routes: dict[str, str | None] = {}
    for state in models:
        settings = deps.settings.models.get(state.name)
        if settings is not None:
            routes[state.name] = settings.label if settings.routing is Routing.LABELS else None
    readings = deps.fleet.survey([s.name for s in models], routes)
    return [model_drift(s, readings[s.name].statuses, readings[s.name].resolved, routes.get(s.name)) for s in models]


def _episode(deps: Deps, uow: UnitOfWork, drift: ModelDrift, *, is_open: bool) -> None:
    now = deps.clock()
    replicas = {r: list(p) for r, p in drift.replicas.items()}
    if drift.drifted and not is_open and uow.drift.open(drift.model, now, replicas):
        record(uow, deps, None, "drift", "detected", model=drift.model, replicas=replicas)
        payload = {"model": drift.model, "text": texts.drift_detected(drift.model, drift.replicas)}
        _notify(uow, deps, drift.model, "drift", payload, key=f"drift:{drift.model}:{now.isoformat()}")
    elif drift.drifted:
        uow.drift.update(drift.model, now, replicas)
    elif is_open and uow.drift.close(drift.model):
        record(uow, deps, None, "drift", "resolved", model=drift.model)
        _notify(uow, deps, drift.model, "incident", {"model": drift.model, "text": texts.drift_resolved(drift.model)})


def _notify(
    uow: UnitOfWork, deps: Deps, model: str, kind: str, payload: dict[str, Any], *, key: str | None = None
) -> None:
    channel = incident_channel(deps, model)
    if channel:
        uow.outbox.enqueue(kind, channel, payload, key=key, at=deps.clock())


def _fleet_busy(deps: Deps) -> bool:
    with deps.db.uow(readonly=True) as uow:
        return uow.operations.any_unfinished()


def _detail(result: RolloutResult) -> dict[str, Any]:
    return {
        "message": result.message,
        "replicas": {r.replica: {"ok": r.ok, "detail": r.detail} for r in result.replicas},
        "elapsed_s": round(result.elapsed_s, 3),
    }


__all__ = ["check_drift", "resync"]
