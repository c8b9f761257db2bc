"""Freezes: `/model freeze MODEL|all --reason ... [--for 2h]`, `/model unfreeze`, and the check every change
passes (ad-hoc freezes from the database, scheduled windows from permissions.yaml). Everything is audited."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.core import commands
from bot.core.errors import Conflict
from bot.core.freeze import ALL_MODELS, Freeze, scheduled
from bot.texts import replies as texts
from bot.usecases.audit_trail import record
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.ports import UnitOfWork


def freeze(deps: Deps, ctx: Context, cmd: commands.Freeze) -> Reply:
    now = deps.clock()
    until = now + timedelta(seconds=cmd.for_s) if cmd.for_s else None
    with deps.db.uow() as uow:
        uow.freezes.add(cmd.model_name, cmd.reason, ctx.actor.user_id, now, until)
        record(uow, deps, ctx, "freeze", "frozen", model=_audited(cmd.model_name), reason=cmd.reason, until=until)
        uow.commit()
    return Reply(texts.frozen_now(cmd.model_name, ctx.actor.user_id, cmd.reason, until), public=True)


def unfreeze(deps: Deps, ctx: Context, cmd: commands.Unfreeze) -> Reply:
    with deps.db.uow() as uow:
        lifted = uow.freezes.lift(cmd.model_name, ctx.actor.user_id, deps.clock())
        if not lifted:
            raise Conflict(texts.not_frozen(cmd.model_name))
        record(uow, deps, ctx, "freeze", "lifted", model=_audited(cmd.model_name), lifted=lifted)
        uow.commit()
    return Reply(texts.unfrozen_now(cmd.model_name, ctx.actor.user_id), public=True)


def frozen(deps: Deps, model: str, uow: UnitOfWork | None = None) -> Freeze | None:
    """Why `model` cannot be changed now, or None: an ad-hoc freeze first, then a scheduled window."""
    now = deps.clock()
    if uow is not None:
        found = uow.freezes.active(model, now)
    else:
        with deps.db.uow(readonly=True) as reader:
            found = reader.freezes.active(model, now)
    if found is not None or not deps.freeze_windows:
        return found
    local = {w.tz: _local(now, w.tz) for w in deps.freeze_windows}
    return scheduled(deps.freeze_windows, model, local)


def refuse_if_frozen(deps: Deps, model: str, *, emergency: bool, uow: UnitOfWork | None = None) -> Freeze | None:
    """Raise Conflict (who froze it, why, until when) unless this is an emergency; returns the freeze an
    emergency overrides (to say so), or None."""
    found = frozen(deps, model, uow)
    if found is not None and not emergency:
        raise Conflict(texts.model_frozen(found))
    return found


def _local(now: datetime, tz: str) -> datetime:
    return now.astimezone(ZoneInfo(tz))


def _audited(model: str) -> str | None:
    return None if model == ALL_MODELS else model


__all__ = ["freeze", "frozen", "refuse_if_frozen", "unfreeze"]
