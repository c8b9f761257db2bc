"""The one door into the bot: parse, check policy (fail closed), dispatch to the use case, report.

Every front end (Slack, console, alerts) calls `Service.handle_text` or `Service.handle`, so no front
end can bypass the permission check. Errors become friendly replies; tracebacks stay in the log.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from bot import parsing
from bot.core import commands as c
from bot.core.alerts import StoredAlert
from bot.core.errors import ModelbotError, PermissionDenied, StoreUnavailable, UsageError
from bot.core.policy import Decision, Identity
from bot.texts import alerts as alert_texts
from bot.texts import replies as texts
from bot.usecases import alerts, changes, decisions, drift, freezes, postmortem, queries, smoke
from bot.usecases.alerts import AlertsOutcome, AlertView
from bot.usecases.audit_trail import record_alone
from bot.usecases.auto_rollback import SYSTEM_ACTOR
from bot.usecases.auto_rollback import sweep as auto_rollback_sweep
from bot.usecases.cards import CardView, card_view
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.home import HomeView, home_view
from bot.usecases.pagerduty import receive as pagerduty_receive
from bot.usecases.recovery import recover_interrupted
from bot.usecases.state import bootstrap

log = logging.getLogger(__name__)

Handler = Callable[[Deps, Context, c.Command], Reply]
HANDLERS: dict[type[c.Command], Handler] = {
    c.Help: queries.help_,  # type: ignore[dict-item]
    c.ListModels: queries.list_models,  # type: ignore[dict-item]
    c.Versions: queries.versions,  # type: ignore[dict-item]
    c.Status: queries.status,  # type: ignore[dict-item]
    c.History: queries.history,  # type: ignore[dict-item]
    c.Requests: queries.requests,  # type: ignore[dict-item]
    c.Whoami: queries.whoami,  # type: ignore[dict-item]
    c.Promote: changes.promote,  # type: ignore[dict-item]
    c.Rollback: changes.rollback,  # type: ignore[dict-item]
    c.Approve: decisions.approve,  # type: ignore[dict-item]
    c.Reject: decisions.reject,  # type: ignore[dict-item]
    c.Resync: drift.resync,  # type: ignore[dict-item]
    c.Cancel: decisions.cancel,  # type: ignore[dict-item]
    c.Review: decisions.review,  # type: ignore[dict-item]
    c.Freeze: freezes.freeze,  # type: ignore[dict-item]
    c.Unfreeze: freezes.unfreeze,  # type: ignore[dict-item]
    c.Explain: postmortem.explain,  # type: ignore[dict-item]
    c.Smoke: smoke.smoke,  # type: ignore[dict-item]
}


class Service:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def start(self) -> None:
        """Adopt the served config on first start and close rollouts a crashed process left open."""
        bootstrap(self.deps)
        recover_interrupted(self.deps)

    def handle_text(self, ctx: Context, text: str) -> Reply:
        try:
            command = parsing.parse(text, tuple(self.deps.settings.models))
        except UsageError as exc:
            return Reply(texts.usage_error(str(exc), exc.usage), ok=False)
        return self.handle(ctx, command)

    def handle(self, ctx: Context, command: c.Command) -> Reply:
        try:
            decision = self._decide(ctx, command)
            if not decision.allowed:
                model = command.model or self._model_of_request(command)
                record_alone(self.deps, ctx, command.ACTION, "denied", model=model, rule=decision.rule)
                raise PermissionDenied(texts.denied(decision, command.ACTION), decision.rule, decision.who_can)
            return HANDLERS[type(command)](self.deps, ctx, command)
        except ModelbotError as exc:
            return Reply(texts.error(exc), ok=False)
        except Exception as exc:
            ref = secrets.token_hex(4)
            if _is_database_error(exc):
                log.exception("database error [ref %s]", ref)
                return Reply(texts.error(StoreUnavailable(texts.STORE_DOWN)), ok=False)
            log.exception("unexpected error handling %s [ref %s]", type(command).__name__, ref)
            return Reply(texts.internal_error(ref), ok=False)

    def permitted(self, ctx: Context, command: c.Command) -> Reply | None:
        """The policy check alone (for a button that opens a form first): None when allowed, else the refusal,
        audited exactly as `handle` audits it."""
        try:
            decision = self._decide(ctx, command)
            if decision.allowed:
                return None
            record_alone(self.deps, ctx, command.ACTION, "denied", model=command.model, rule=decision.rule)
            raise PermissionDenied(texts.denied(decision, command.ACTION), decision.rule, decision.who_can)
        except ModelbotError as exc:
            return Reply(texts.error(exc), ok=False)

    def _decide(self, ctx: Context, command: c.Command) -> Decision:
        if ctx.actor.user_id == SYSTEM_ACTOR:  # the bot itself acts only through its own sweep
            return Decision(False, "system-actor", alert_texts.SYSTEM_ACTOR_REFUSED, ())
        try:
            if isinstance(command, c.Cancel):  # whoever may make the change may withdraw it (if they asked for it)
                return self.deps.policy.decide(ctx.actor, self._action_of_request(command.request_id), command.model)
            return self.deps.policy.decide(ctx.actor, command.ACTION, command.model)
        except Exception:  # an exception while deciding means deny
            log.exception("policy evaluation failed")
            return Decision(False, "policy-error", texts.POLICY_ERROR, ())

    def expire_due(self) -> int:
        """Periodic housekeeping: expire requests past their TTL (audited), and recover rollouts whose process
        died (once its fleet lease has lapsed). Returns how many requests expired."""
        expired = len(decisions.expire_due(self.deps))
        self.recover()
        decisions.remind_retro_reviews(self.deps)
        return expired

    def recover(self) -> list[int]:
        """Recover the rollouts of processes whose fleet lease lapsed (read the fleet, finish or restore,
        record); cheap when there is none. Returns the ids of the requests it closed."""
        return recover_interrupted(self.deps)

    def check_drift(self) -> int:
        """Compare every replica with the desired state; open/close drift episodes (posted once each with a
        Re-sync button). Returns how many models are drifted now."""
        return len(drift.check_drift(self.deps))

    def alert(self, body: bytes) -> AlertsOutcome:
        """An Alertmanager webhook body: each new firing recorded and posted with its rollback button, each
        resolution updating that post (raises BadAlert)."""
        return alerts.receive(self.deps, body)

    def pagerduty(self, body: bytes) -> AlertsOutcome:
        """A PagerDuty V3 webhook body whose signature was verified (raises BadAlert)."""
        return pagerduty_receive(self.deps, body)

    def alert_view(self, alert_id: int) -> AlertView:
        """An alert's incident post content (for front ends that render one)."""
        return alerts.alert_view(self.deps, alert_id)

    def alert_by_id(self, alert_id: int) -> StoredAlert | None:
        return alerts.get(self.deps, alert_id)

    def auto_rollback(self) -> int:
        """Periodic: decide the opted-in alerts that fired for min_firing (act, or hold with the reason posted);
        returns how many automatic rollbacks ran."""
        return auto_rollback_sweep(self.deps)

    def _model_of_request(self, command: c.Command) -> str | None:
        """Denied approvals are filed under the request's model, so `/model history MODEL` shows them."""
        request_id = getattr(command, "request_id", None)
        if request_id is None:
            return None
        with self.deps.db.uow(readonly=True) as uow:
            req = uow.requests.get(request_id)
        return req.model if req else None

    def _action_of_request(self, request_id: int) -> str:
        with self.deps.db.uow(readonly=True) as uow:
            req = uow.requests.get(request_id)
        return req.action if req is not None else "rollback"  # unknown ids are refused by the use case

    def card(self, request_id: int) -> CardView:
        """The approval card's view model, for front ends that render one (Slack)."""
        return card_view(self.deps, request_id)

    def home(self, viewer: Identity) -> HomeView:
        """The Home tab's view model (read-only; shown to whoever the policy lets see `/model requests`)."""
        return home_view(self.deps, viewer)


def _is_database_error(exc: Exception) -> bool:
    return type(exc).__module__.startswith(("sqlalchemy", "psycopg", "sqlite3"))
