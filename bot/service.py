"""The one door into the bot: parse, check policy (fail closed), dispatch to the use case, report.

Every front end (Slack, console, alerts) calls `Service.handle_text` or `Service.handle`, so no front
end can bypass the permission check. Errors become friendly replies; tracebacks stay in the log.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection
from datetime import datetime

from bot import parsing
from bot.core import commands
from bot.core.alerts import StoredAlert
from bot.core.change_request import ChangeRequest, RequestState
from bot.core.errors import ModelbotError, PermissionDenied, StoreUnavailable, UsageError
from bot.core.outbox import OutboxMessage
from bot.core.policy import Decision, Identity
from bot.core.ports import ProgressSink
from bot.texts import alerts as alert_texts
from bot.texts import replies as texts
from bot.usecases import alerts, changes, decisions, drift, freezes, postmortem, queries, smoke
from bot.usecases import approval_routing as routing
from bot.usecases import gauges as scrape
from bot.usecases import outbox as outbox_book
from bot.usecases.alerts import AlertsOutcome, AlertView
from bot.usecases.audit_trail import record_alone
from bot.usecases.auto_rollback import SYSTEM_ACTOR
from bot.usecases.auto_rollback import sweep as auto_rollback_sweep
from bot.usecases.cards import CardView, card_view
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.dispatch import Handlers
from bot.usecases.execution import resume_waiting_emergencies
from bot.usecases.home import HomeView, home_view
from bot.usecases.outbox import CardSpot, Delivered
from bot.usecases.pagerduty import receive as pagerduty_receive
from bot.usecases.recovery import recover_interrupted
from bot.usecases.state import bootstrap

log = logging.getLogger(__name__)

HANDLERS = (
    Handlers()
    .register(commands.Help, queries.help_)
    .register(commands.ListModels, queries.list_models)
    .register(commands.Versions, queries.versions)
    .register(commands.Status, queries.status)
    .register(commands.History, queries.history)
    .register(commands.Requests, queries.requests)
    .register(commands.Whoami, queries.whoami)
    .register(commands.Promote, changes.promote)
    .register(commands.Rollback, changes.rollback)
    .register(commands.Approve, decisions.approve)
    .register(commands.Reject, decisions.reject)
    .register(commands.Resync, drift.resync)
    .register(commands.Cancel, decisions.cancel)
    .register(commands.Review, decisions.review)
    .register(commands.Freeze, freezes.freeze)
    .register(commands.Unfreeze, freezes.unfreeze)
    .register(commands.Explain, postmortem.explain)
    .register(commands.Smoke, smoke.smoke)
)


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

    def handle(self, ctx: Context, command: commands.Command) -> Reply:
        permission = commands.permission_of(command)
        try:
            decision = self._decide(ctx, command)
            if not decision.allowed:
                model = command.model or self._model_of_request(command)
                record_alone(self.deps, ctx, permission, "denied", model=model, rule=decision.rule)
                raise PermissionDenied(texts.denied(decision, permission), decision.rule, decision.who_can)
            return HANDLERS.handler_for(command)(self.deps, ctx, command)
        except ModelbotError as exc:
            return Reply(texts.error(exc), ok=False)
        except Exception as exc:
            ref = secrets.token_hex(4)
            if _is_database_error(exc):
                log.exception("database error [ref %s]", ref)
                return Reply(texts.error(StoreUnavailable(texts.STORE_DOWN)), ok=False)
            log.exception("unexpected error handling %s [ref %s]", type(command).__name__, ref)
            return Reply(texts.internal_error(ref), ok=False)

    def permitted(self, ctx: Context, command: commands.Command) -> Reply | None:
        """The policy check alone (for a button that opens a form first): None when allowed, else the refusal,
        audited exactly as `handle` audits it."""
        try:
            decision = self._decide(ctx, command)
            if decision.allowed:
                return None
            permission = commands.permission_of(command)
            record_alone(self.deps, ctx, permission, "denied", model=command.model, rule=decision.rule)
            raise PermissionDenied(texts.denied(decision, permission), decision.rule, decision.who_can)
        except ModelbotError as exc:
            return Reply(texts.error(exc), ok=False)

    def _decide(self, ctx: Context, command: commands.Command) -> Decision:
        if ctx.actor.user_id == SYSTEM_ACTOR:  # the bot itself acts only through its own sweep
            return Decision(False, "system-actor", alert_texts.SYSTEM_ACTOR_REFUSED, ())
        try:
            action = commands.permission_of(command)
            if isinstance(
                command, commands.Cancel
            ):  # whoever may make the change may withdraw it (if they asked for it)
                action = commands.cancel_permission(self._action_of_request(command.request_id))
            return self.deps.policy.decide(ctx.actor, action, command.model)
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

    def resume_emergencies(self) -> int:
        """Periodic: run the emergencies that gave up waiting for a busy fleet, once it is free."""
        return resume_waiting_emergencies(self.deps)

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

    def _model_of_request(self, command: commands.Command) -> str | None:
        """Denied approvals are filed under the request's model, so `/model history MODEL` shows them."""
        request_id = getattr(command, "request_id", None)
        if request_id is None:
            return None
        with self.deps.db.uow(readonly=True) as uow:
            req = uow.requests.get(request_id)
        return req.model if req else None

    def _action_of_request(self, request_id: int) -> str | None:
        with self.deps.db.uow(readonly=True) as uow:
            req = uow.requests.get(request_id)
        return req.action if req is not None else None

    def card(self, request_id: int) -> CardView:
        """The approval card's view model, for front ends that render one (Slack)."""
        return card_view(self.deps, request_id)

    def home(self, viewer: Identity) -> HomeView:
        """The Home tab's view model (read-only; shown to whoever the policy lets see `/model requests`)."""
        return home_view(self.deps, viewer)

    # --- for front ends: everything they need of the bot's state goes through these (never the store itself)

    def now(self) -> datetime:
        """The bot's clock (aware UTC)."""
        return self.deps.clock()

    def check_ready(self) -> None:
        """Readiness (`/readyz`): the database answers and its schema is at the newest migration; raises
        StoreUnavailable otherwise. The fleet is not part of it: a bot whose fleet is away still serves incidents."""
        self.deps.db.check_schema()

    @property
    def heartbeat_s(self) -> float:
        """How often a running rollout renews its fleet lease: `serve` sweeps for dead rollouts as often."""
        return self.deps.heartbeat_s

    def parse(self, text: str) -> commands.Command:
        """`/model ...` text as a command against the configured models (raises UsageError), e.g. to open a form
        before the command itself goes through `handle_text`."""
        return parsing.parse(text, tuple(self.deps.settings.models))

    def policy_members(self) -> Collection[str]:
        """The user and user-group IDs the policy names."""
        return self.deps.policy.members

    def claim_outbox(self) -> list[OutboxMessage]:
        """Lease the oldest due outbox message of every channel to this process (bot/usecases/outbox.py)."""
        return outbox_book.claim_due(self.deps)

    def outbox_delivered(self, message: OutboxMessage, delivered: Delivered) -> None:
        """Settle a delivered (or abandoned) message with what the delivery taught, in one transaction."""
        outbox_book.record_delivered(self.deps, message, delivered)

    def outbox_retry(self, message: OutboxMessage, error: str, delay_s: float) -> None:
        """A failed delivery attempt: try again in `delay_s`."""
        outbox_book.retry_later(self.deps, message, error, delay_s)

    def outbox_give_up(self, message: OutboxMessage, error: str) -> None:
        """Never deliver this message."""
        outbox_book.give_up(self.deps, message, error)

    def card_location(self, request_id: int) -> tuple[str, str] | None:
        """(channel, ts) of a request's card, None before its first post."""
        return outbox_book.card_location(self.deps, request_id)

    def find_card(self, request_id: int | None, model: str | None) -> CardSpot:
        """A rollout's request (given, else `model`'s open one) and where its card is."""
        return outbox_book.find_card(self.deps, request_id, model)

    def queue_card_correction(self, request_id: int, channel: str, delay_s: float) -> None:
        """Queue a re-render of the card from the database, due in `delay_s`."""
        outbox_book.queue_card_correction(self.deps, request_id, channel, delay_s)

    def card_thread(self, request_id: int | None, model: str | None) -> ProgressSink:
        """A progress sink queueing the card-thread replies of a rollout (started, each phase it is told of)."""
        return outbox_book.CardThread(self.deps, request_id, model)

    def approvers_to_dm(self, request: ChangeRequest) -> tuple[str, ...]:
        """The approvers (people) to DM about a pending request whose model says `notify_approvers: dm`."""
        if request.state is not RequestState.PENDING:
            return ()
        if not routing.notifies_approvers_by_dm(self.deps, request.model):
            return ()
        return routing.approver_users(self.deps, request)

    def card_undeliverable(self, request_id: int, channels: tuple[str, ...], error: str) -> None:
        """Audit that a request's card could be posted nowhere (the requester was told why)."""
        routing.record_card_undeliverable(self.deps, request_id, channels, error)

    def bot_joined(self, channel: str) -> tuple[list[int], list[int]]:
        """The bot was added to `channel`: post there the cards that could be posted nowhere after trying it, and the
        firing alerts whose incident post never landed; returns (request ids, alert ids)."""
        cards = routing.repost_undeliverable_cards(self.deps, channel)
        return cards, alerts.repost_unposted(self.deps, channel)

    def approver_dm_failed(self, request_id: int, user: str, error: str) -> None:
        """Audit that an approver could not be sent their DM."""
        routing.record_dm_failed(self.deps, request_id, user, error)

    # --- scrape-time reads of /metrics (bot/usecases/gauges.py; each fails on its own)

    def outbox_pending(self) -> int:
        """Outbox messages neither delivered nor given up."""
        return scrape.outbox_pending(self.deps)

    def outbox_oldest_age_s(self) -> float | None:
        """Age of the oldest pending outbox message (None: nothing pending)."""
        return scrape.outbox_oldest_age_s(self.deps)

    def approvals_pending(self) -> dict[str, int]:
        """PENDING requests by action."""
        return scrape.approvals_pending(self.deps)

    def retro_reviews_open(self) -> int:
        """Finished emergencies not acknowledged yet."""
        return scrape.retro_reviews_open(self.deps)

    def drifted(self) -> dict[str, list[str]]:
        """Model -> the replicas of its open drift episode."""
        return scrape.drifted(self.deps)


def _is_database_error(exc: Exception) -> bool:
    return type(exc).__module__.startswith(("sqlalchemy", "psycopg", "sqlite3"))
