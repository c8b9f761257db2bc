"""`/model ...`: ack at once, then run the text through the service on the worker pool and answer by response_url.

A `/model rollback MODEL VERSION` without `--reason` opens a modal pre-filled with model and version
instead; its submission creates the request. The approval card itself is posted by the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot import parsing
from bot.core import commands
from bot.core.errors import UsageError
from bot.core.policy import MUTATING_ACTIONS
from bot.frontends.slack import modals
from bot.frontends.slack.runtime import Say, SlackRuntime, ephemeral, open_view, responder, say_safely, verb_label
from bot.texts import commands as command_texts
from bot.texts import slack as texts

COMMAND = command_texts.COMMAND


def register(app: App, runtime: SlackRuntime) -> None:
    @app.command(COMMAND)
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        # With process_before_response the 200 goes out when this listener returns: deciding what to ack
        # after opening the modal or queueing the work still answers Slack at once, without a Web API call.
        text = slack_unescape(str(command.get("text") or ""))
        label = verb_label(text)
        parsed = _parsed(runtime, text)
        modal = _reason_modal(parsed, command)
        if modal is not None:
            if open_view(client, str(command["trigger_id"]), modal):
                ack()
            else:
                ack(response_type="ephemeral", text=texts.SLACK_MODAL_FAILED)
            return
        say = responder(respond)
        typed = TypedCommand(str(command["user_id"]), command.get("channel_id"), text, parsed)
        runtime.notices.remember(typed.user_id, typed.channel, respond)  # the outbox may tell them about the card
        if not runtime.submit(label, say, run_text, runtime, typed, say):
            ack(response_type="ephemeral", text=texts.SLACK_BUSY)
        elif label in MUTATING_ACTIONS:
            ack(response_type="ephemeral", text=texts.SLACK_WORKING)
        else:
            ack()

    _register_rollback_modal(app, runtime)


def _register_rollback_modal(app: App, runtime: SlackRuntime) -> None:
    @app.view(modals.ROLLBACK_CALLBACK)
    def on_rollback_reason(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        version, reason = modals.submitted(view, modals.VERSION), modals.submitted(view, modals.REASON)
        errors = {}
        if not version.isdigit() or int(version) <= 0:
            errors[modals.VERSION] = texts.SLACK_VERSION_NOT_NUMBER
        if not reason:
            errors[modals.REASON] = texts.SLACK_REASON_EMPTY
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        meta = modals.metadata(view)
        command = commands.Rollback(
            modals.submitted(view, modals.MODEL), int(version), reason, emergency=bool(meta.get("emergency"))
        )
        user_id, channel = str(body["user"]["id"]), str(meta.get("channel") or "")
        url = str(meta.get("response_url") or "")
        say = responder(WebhookClient(url).send) if url else ephemeral(client, channel, user_id)
        if url:
            runtime.notices.remember(user_id, channel, WebhookClient(url).send)
        text = parsing.format_command(command)  # parsed again by the service: the model is checked there
        if not runtime.submit(
            "rollback", say, run_text, runtime, TypedCommand(user_id, channel or None, text, command), say
        ):
            runtime.tell(say, texts.SLACK_BUSY)


@dataclass(frozen=True)
class TypedCommand:
    """One `/model` text from a signed payload; `parsed` is None when it does not parse (the service says why)."""

    user_id: str
    channel: str | None
    text: str
    parsed: commands.Command | None


def run_text(runtime: SlackRuntime, typed: TypedCommand, say: Say) -> None:
    """Run the text as its user and show them the reply (the card, if any, comes from the outbox)."""
    target = typed.parsed  # says whose card shows live progress
    request_id = target.request_id if isinstance(target, commands.Approve | commands.Reject) else None
    model = target.model if target is not None else None
    reply = runtime.act(
        typed.user_id,
        typed.channel,
        verb_label(typed.text),
        say,
        lambda ctx: runtime.service.handle_text(ctx, typed.text),
        request_id=request_id,
        model=model,
    )
    if reply is not None:
        say_safely(say, reply.text)


def slack_unescape(text: str) -> str:
    """Slack escapes &, < and > in slash-command text; a reason typed as `A&B` must be stored as `A&B`."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _parsed(runtime: SlackRuntime, text: str) -> commands.Command | None:
    try:
        return runtime.service.parse(text)
    except UsageError:
        return None  # the service parses again and explains the mistake


def _reason_modal(parsed: commands.Command | None, command: dict[str, Any]) -> dict[str, Any] | None:
    """The rollback modal when the text is a rollback without a reason (and not a dry run), else None."""
    if not isinstance(parsed, commands.Rollback) or parsed.reason or parsed.dry_run or "trigger_id" not in command:
        return None
    return modals.rollback_view(
        parsed.model_name,
        parsed.version,
        parsed.emergency,
        str(command.get("channel_id") or ""),
        str(command.get("response_url") or ""),
    )
