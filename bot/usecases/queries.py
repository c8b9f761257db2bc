"""Read-only commands: list, versions, status, history, requests, whoami, help."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bot import parsing
from bot.core import commands
from bot.core.fleet import ReplicaStatus
from bot.core.rollout import Routing
from bot.texts import replies as texts
from bot.usecases.cards import version_metadata
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.decisions import expire_due
from bot.usecases.state import fleet_config, model_state


def list_models(deps: Deps, ctx: Context, cmd: commands.ListModels) -> Reply:
    """Every model (or those starting with the prefix): the fleet is read once per model per replica, every call
    in flight at once (`Fleet.survey`), so 1,000 models cost little more than the calls themselves."""
    config = fleet_config(deps)
    names = sorted(n for n in set(deps.settings.models) | set(config.names()) if n.startswith(cmd.prefix))
    routes = {name: _route(deps, name) for name in names}
    with deps.db.uow(readonly=True) as uow:
        rolling = {str(op["model"]) for op in uow.operations.unfinished()}
    served = set(config.names())
    readings = deps.fleet.survey(names, {name: routes[name] for name in names if name in served})
    rows = []
    for name in names:
        state = config.model(name)
        rows.append(
            texts.ModelRow(
                name=name,
                labels=state.label_map() if state else {},
                desired=state.policy.versions if state else (),
                replicas=readings[name].statuses,
                route=routes[name],
                expected=state.resolves(routes[name]) if state else None,
                resolved=readings[name].resolved,
                rolling=name in rolling,
            )
        )
    return Reply(texts.model_list(rows, show_all=cmd.show_all, page=cmd.page, prefix=cmd.prefix))


def _route(deps: Deps, model: str) -> str | None:
    """The label clients of `model` use, or None for unversioned requests (`routing: latest`)."""
    settings = deps.settings.models.get(model)
    if settings is None:
        return None
    return settings.label if settings.routing is Routing.LABELS else None


def versions(deps: Deps, ctx: Context, cmd: commands.Versions) -> Reply:
    settings = deps.settings.models[cmd.model_name]
    state = model_state(deps, cmd.model_name)
    on_disk = deps.catalog.versions(settings.base_path)
    with deps.db.uow(readonly=True) as uow:
        registry = uow.registry.for_model(cmd.model_name)
    statuses = deps.fleet.model_status(cmd.model_name)
    rows = []
    for version in sorted(set(on_disk) | set(registry), reverse=True):
        disk = deps.catalog.metadata(settings.base_path, version) if version in on_disk else {}
        meta = version_metadata(disk, registry.get(version))
        rows.append(
            texts.VersionRow(
                version=version,
                on_disk=version in on_disk,
                labels=tuple(sorted(k for k, v in state.label_map().items() if v == version)),
                metadata=meta,
                states={s.replica: (s.error and "unreachable") or str(_state_name(s, version)) for s in statuses},
            )
        )
    return Reply(texts.version_table(cmd.model_name, rows))


def _state_name(status: ReplicaStatus, version: int) -> str:
    state = status.state_of(version)
    return state.value if state else "-"


def status(deps: Deps, ctx: Context, cmd: commands.Status) -> Reply:
    state = model_state(deps, cmd.model_name)
    label = _route(deps, cmd.model_name)
    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses_f = pool.submit(deps.fleet.model_status, cmd.model_name)
        resolved_f = pool.submit(deps.fleet.resolve, cmd.model_name, label)
        statuses, resolved = statuses_f.result(), resolved_f.result()
    return Reply(texts.status_report(state, label, state.resolves(label), statuses, resolved))


def history(deps: Deps, ctx: Context, cmd: commands.History) -> Reply:
    with deps.db.uow(readonly=True) as uow:
        entries = uow.audit.recent(model=cmd.model_name, limit=cmd.limit)
    return Reply(texts.history(cmd.model_name, entries))


def requests(deps: Deps, ctx: Context, cmd: commands.Requests) -> Reply:
    expire_due(deps)
    with deps.db.uow(readonly=True) as uow:
        open_requests = uow.requests.list_open()
        reviews = [
            r for r in uow.requests.emergencies() if r.retro_review and r.retro_review.open and not r.state.is_open
        ]
    return Reply(texts.open_requests(open_requests, deps.clock(), reviews))


def whoami(deps: Deps, ctx: Context, cmd: commands.Whoami) -> Reply:
    roles = deps.policy.roles_of(ctx.actor)
    actions = deps.policy.actions_of(ctx.actor)
    return Reply(texts.whoami(ctx.actor, roles, actions))


def help_(deps: Deps, ctx: Context, cmd: commands.Help) -> Reply:
    return Reply(parsing.help_text(cmd.verb, deps.policy.actions_of(ctx.actor)))
