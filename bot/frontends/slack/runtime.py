"""What the Slack listeners share, and the one way they act: as the signed user, through the service."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core import commands
from bot.core.fleet import ProgressEvent, RolloutResult
from bot.frontends.http.metrics import Metrics, PhaseClock
from bot.frontends.slack.identity import Directory, UserRefused
from bot.frontends.slack.mrkdwn import clip, escape
from bot.frontends.slack.notices import Notices
from bot.frontends.slack.progress import LiveCard
from bot.frontends.slack.ratelimit import RateGate
from bot.frontends.slack.routing import ThreadProgress
from bot.frontends.slack.workers import Workers
from bot.logging_setup import bound_context, new_correlation_id
from bot.service import Service
from bot.texts import replies
from bot.usecases.context import Context, Reply

log = logging.getLogger(__name__)
FRONTEND = "slack"
REPLY_CHARS = 39000  # Slack truncates message text above 40,000 characters

Say = Callable[[str], None]  # shows a sentence to the acting user only (response_url or chat.postEphemeral)


@dataclass
class SlackRuntime:
    """What every Slack listener shares (service, directory, worker pool, metrics, rate gate, notices), and the one
    way it acts: as the signed user, through the service (`act`), on the worker pool (`submit`)."""

    service: Service
    directory: Directory
    workers: Workers
    progress_client: WebClient  # no retries, short timeout: live progress is best effort
    metrics: Metrics
    wake_outbox: Callable[[], None]
    rate_gate: RateGate = field(default_factory=RateGate)  # the process's, shared with the outbox (see Server)
    notices: Notices = field(default_factory=Notices)  # response_urls, shared with the outbox (routing.py)

    def act(
        self,
        user_id: str,
        channel: str | None,
        label: str,
        say: Say,
        run: Callable[[Context], Reply],
        *,
        request_id: int | None = None,
        model: str | None = None,
    ) -> Reply | None:
        """Resolve the user, run one service call as them, show refusals and errors to them only.

        `label` names the verb in metrics; `request_id` / `model` say whose card shows live progress.
        """
        with bound_context(actor=user_id, verb=label, request_id=f"R{request_id}" if request_id else None, model=model):
            try:
                identity = self.directory.identity(user_id)
            except UserRefused as exc:
                self.metrics.command(label, "refused")
                say_safely(say, str(exc))
                return None
            card = LiveCard(self.progress_client, self.service, request_id=request_id, model=model, gate=self.rate_gate)
            phases = PhaseClock(time.monotonic)  # the rollout reports no per-phase times: its events do
            thread = ThreadProgress(self.service, request_id, model)  # phase replies in the card's thread

            def progress(event: ProgressEvent) -> None:
                if phases.mark(event):
                    log.info("rollout phase %s (%d/%d replicas)", event.phase, event.done, event.total)
                    thread(event)
                card(event)

            reply = run(Context(actor=identity, channel=channel, frontend=FRONTEND, progress=progress))
            self.wake_outbox()
            self.metrics.command(label, "ok" if reply.ok else "error")
            if reply.result is not None:
                self._rollout_done(reply.result, phases.durations())
            return reply

    def _rollout_done(self, result: RolloutResult, phases: dict[str, float]) -> None:
        """Count and time the rollout, and write its canonical log line (context: request, operation, model)."""
        outcome = result.outcome.value.lower()
        self.metrics.rollout(outcome, result.elapsed_s, phases)
        log.info(
            "rollout %s in %.2fs (phases: %s)",
            outcome,
            result.elapsed_s,
            ", ".join(result.phases_run) or "none",
            extra={"outcome": outcome, "elapsed_s": round(result.elapsed_s, 3), "phases_s": phases},
        )

    def submit(self, label: str, say: Say, fn: Callable[..., None], *args: object) -> bool:
        """Run fn(*args) on the pool; False when the pool is full. Errors are logged, never shown raw."""

        correlation = new_correlation_id()  # one per Slack request; the error reply's ref, to find its lines

        def guarded() -> None:
            with bound_context(correlation_id=correlation):
                try:
                    fn(*args)
                except Exception:
                    log.exception("Slack %s failed [ref %s]", label, correlation)
                    self.metrics.command(label, "crashed")
                    say_safely(say, replies.internal_error(correlation))

        # The worker runs in a copy of this thread's context: what the HTTP entry bound (Slack team, trigger) too.
        if self.workers.submit(contextvars.copy_context().run, guarded):
            return True
        self.metrics.command(label, "busy")
        return False

    def tell(self, say: Say, text: str) -> None:
        """Tell the user something short, off the ack path (a Slack call must not delay the 200)."""
        self.workers.notice(say_safely, say, text)


def responder(respond: Callable[..., object]) -> Say:
    """Say through a response_url (bolt's `respond`, or a WebhookClient's `send`): ephemeral, works in any channel."""

    def say(text: str) -> None:
        respond(text=chat_text(text), response_type="ephemeral")

    return say


def ephemeral(client: WebClient, channel: str, user_id: str) -> Say:
    """Say with chat.postEphemeral (button clicks and modal submissions have no usable response_url)."""

    def say(text: str) -> None:
        client.chat_postEphemeral(channel=channel, user=user_id, text=chat_text(text))

    return say


def open_view(client: WebClient, trigger_id: str, view: dict[str, Any]) -> bool:
    """views.open now (a trigger_id lives 3 s and works once); False, logged, when Slack refuses or is unreachable."""
    try:
        client.views_open(trigger_id=trigger_id, view=view)
    except (SlackClientError, OSError) as exc:
        log.warning("views.open failed: %s", exc.response.get("error") if isinstance(exc, SlackApiError) else exc)
        return False
    return True


def chat_text(text: str) -> str:
    """Service text as a Slack message: inert (no mentions or links from user input) and within limits."""
    return clip(escape(text), REPLY_CHARS)


def verb_label(text: str) -> str:
    """The verb of a `/model` text for metrics: a known verb, "help" for none, "invalid" otherwise."""
    words = text.split(maxsplit=1)
    verb = words[0].lower() if words else "help"
    return verb if verb in commands.VERBS else "invalid"


def say_safely(say: Say, text: str) -> None:
    """Say `text`; if Slack cannot be reached (or the response_url expired) log it and carry on."""
    try:
        say(text)
    except Exception as exc:  # the user is gone or Slack is down: nothing more to do than log it
        log.warning("could not tell the user: %s", type(exc).__name__)
