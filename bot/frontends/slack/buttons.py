"""Approve / Reject on the approval card. The button's value only says *which* request; who clicked comes
from the signed payload, and whether they may is decided by the service, exactly as for `/model approve`.
Refusals go to the clicking user alone (chat.postEphemeral); the card itself is updated by the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.core import commands
from bot.frontends.slack import modals
from bot.frontends.slack.blocks import APPROVE_ACTION, REJECT_ACTION, RESYNC_ACTION
from bot.frontends.slack.home import home_refresher
from bot.frontends.slack.notices import private_say as private
from bot.frontends.slack.review_blocks import ACKNOWLEDGE_ACTION
from bot.frontends.slack.runtime import Say, SlackRuntime, ephemeral, open_view, say_safely
from bot.parsing import request_id_value
from bot.texts import slack as texts


def register(app: App, runtime: SlackRuntime) -> None:
    @app.action(APPROVE_ACTION)
    def on_approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _decide_click(runtime, body, client, "approve", commands.Approve)

    @app.action(ACKNOWLEDGE_ACTION)
    def on_acknowledge(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _decide_click(runtime, body, client, "review", commands.Review)

    @app.action(REJECT_ACTION)
    def on_reject(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user_id, channel = _clicker(body)
        request_id = _request_id(body)
        if request_id is None:
            runtime.tell(private(client, channel, user_id), texts.SLACK_STALE_BUTTON)
            return
        # The trigger_id is valid for 3 s and once: open the modal now, on this thread.
        if not open_view(client, str(body["trigger_id"]), modals.reject_view(request_id, channel)):
            runtime.tell(private(client, channel, user_id), texts.slack_modal_failed_reject(request_id))

    @app.action(RESYNC_ACTION)
    def on_resync(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user_id, channel = _clicker(body)
        say = ephemeral(client, channel, user_id)
        actions = body.get("actions") or [{}]
        model = str(actions[0].get("value") or "")
        if not model:
            runtime.tell(say, texts.SLACK_STALE_BUTTON)
            return
        if not runtime.submit("resync", say, resync, runtime, user_id, channel, commands.Resync(model), say):
            runtime.tell(say, texts.SLACK_BUSY)

    @app.view(modals.REJECT_CALLBACK)
    def on_reject_reason(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        reason = modals.submitted(view, modals.REASON)
        meta = modals.metadata(view)
        request_id, channel = request_id_value(meta.get("request_id")), str(meta.get("channel") or "")
        if not reason:
            ack(response_action="errors", errors={modals.REASON: texts.SLACK_REASON_EMPTY})
            return
        ack()
        user_id = str(body["user"]["id"])
        say = private(client, channel, user_id)
        if request_id is None:
            runtime.tell(say, texts.SLACK_STALE_BUTTON)
            return
        if not runtime.submit(
            "reject", say, decide, runtime, user_id, channel, commands.Reject(request_id, reason), say
        ):
            runtime.tell(say, texts.SLACK_BUSY)


def _decide_click(
    runtime: SlackRuntime,
    body: dict[str, Any],
    client: WebClient,
    label: str,
    command_for: Callable[[int], commands.Approve | commands.Review],
) -> None:
    """A click that decides a request (Approve, Acknowledge): run as the clicking user off the ack thread, show
    them only a refusal or failure, then refresh their Home tab if that is where they clicked."""
    user_id, channel = _clicker(body)
    say = private(client, channel, user_id)  # a click on the Home tab has no channel: a DM then
    request_id = _request_id(body)
    if request_id is None:
        runtime.tell(say, texts.SLACK_STALE_BUTTON)
        return
    refresh = home_refresher(runtime, client, user_id, body)

    def decide_then_refresh() -> None:
        decide(runtime, user_id, channel, command_for(request_id), say)
        refresh()

    if not runtime.submit(label, say, decide_then_refresh):
        runtime.tell(say, texts.SLACK_BUSY)


def decide(
    runtime: SlackRuntime,
    user_id: str,
    channel: str,
    command: commands.Approve | commands.Reject | commands.Review,
    say: Say,
) -> None:
    """Approve, reject or acknowledge as the clicking user; only a refusal or failure is shown, to them alone (the
    card shows the decision)."""
    label = {commands.Approve: "approve", commands.Reject: "reject", commands.Review: "review"}[type(command)]
    reply = runtime.act(
        user_id,
        channel or None,
        label,
        say,
        lambda ctx: runtime.service.handle(ctx, command),
        request_id=command.request_id,
    )
    if reply is not None and not reply.ok:
        say_safely(say, reply.text)


def resync(runtime: SlackRuntime, user_id: str, channel: str, command: commands.Resync, say: Say) -> None:
    """Re-sync as the clicking user; they are always told the result (also posted to the incident channel when
    replicas were re-sent): a click that changes nothing must not look ignored."""
    reply = runtime.act(user_id, channel, "resync", say, lambda ctx: runtime.service.handle(ctx, command))
    if reply is not None:
        say_safely(say, reply.text)


def _clicker(body: Mapping[str, Any]) -> tuple[str, str]:
    """(user id, channel id) of a click, both from the signed payload."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    return str(body["user"]["id"]), str(channel)


def _request_id(body: Mapping[str, Any]) -> int | None:
    """The request a click is about, or None for a value no request can have (refused as a stale button,
    never looked up: a number beyond the store's 64-bit ids would fail there as a database error)."""
    actions = body.get("actions") or [{}]
    return request_id_value(str(actions[0].get("value") or ""))
