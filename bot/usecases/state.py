"""Reading the desired state, and bootstrapping it (DESIGN.md §4 step 0) without changing what is served."""

from __future__ import annotations

import logging

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.errors import NotFound, ServingError
from bot.core.rollout import Routing
from bot.usecases.context import Deps
from bot.usecases.ports import UnitOfWork

log = logging.getLogger(__name__)


def model_state(deps: Deps, model: str, uow: UnitOfWork | None = None) -> ModelState:
    """The desired state of `model`; a configured model the fleet does not serve yet gets an empty one."""
    settings = deps.settings.models.get(model)
    if settings is None:
        raise NotFound(f"unknown model {model!r}")
    if uow is not None:
        state = uow.desired.get(model)
    else:
        with deps.db.uow(readonly=True) as reader:
            state = reader.desired.get(model)
    if state is None:
        return ModelState(name=model, base_path=settings.base_path, policy=VersionPolicy.specific(()))
    return state


def fleet_config(deps: Deps) -> FleetConfig:
    with deps.db.uow(readonly=True) as uow:
        return uow.desired.load() or FleetConfig()


def bootstrap(deps: Deps) -> FleetConfig:
    """Adopt the model_config_file the fleet was started with, else what the fleet reports; send nothing."""
    with deps.db.uow(readonly=True) as uow:
        existing = uow.desired.load()
        if existing is not None:
            return existing
    config, source = _discover(deps)
    with deps.db.uow() as uow:
        if uow.desired.load() is None:  # another process may have bootstrapped meanwhile
            uow.desired.save(config)
            detail = {"source": source, "models": {m.name: m.to_dict() for m in config.models}}
            uow.audit.append(
                at=deps.clock(),
                actor="modelbot",
                action="bootstrap",
                outcome="adopted",
                request_id=None,
                model=None,
                detail=detail,
            )
            uow.commit()
        return uow.desired.load() or config


def _discover(deps: Deps) -> tuple[FleetConfig, str]:
    path = deps.settings.serving.model_config_file
    if path is not None and path.exists():
        return deps.read_model_config(path), str(path)
    models = []
    for name, settings in sorted(deps.settings.models.items()):
        try:
            statuses = deps.fleet.model_status(name)
        except ServingError as exc:
            log.warning("bootstrap: cannot read status of %s: %s", name, exc)
            continue
        loaded = sorted({v for s in statuses for v in s.available()})
        if not loaded:
            continue  # not served: adding it would make TF Serving load it, which bootstrap must not do
        labels = {}
        if settings.routing is Routing.LABELS:
            resolved = {v for v in deps.fleet.resolve(name, settings.label).values() if isinstance(v, int)}
            if len(resolved) == 1:
                labels[settings.label] = resolved.pop()
        state = ModelState(name=name, base_path=settings.base_path, policy=VersionPolicy.specific(loaded))
        models.append(state.with_labels(labels))
    return FleetConfig(models=tuple(models)), "fleet"


__all__ = ["bootstrap", "fleet_config", "model_state"]
