"""The alert post's "Request rollback to vN" button (and its version select): the clicker becomes the requester.

A click is checked by the service's policy door first (a viewer gets an ephemeral refusal, audited like any
denial); an allowed click opens a modal pre-filled with the reason "alert NAME: SUMMARY" at once (the trigger_id
lives 3 s). Submitting it runs `/model rollback MODEL VERSION --reason ...` as the submitting user through
`Service.handle`, with the alert linked on the request and in its audit rows; the card then goes where cards go.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.models.blocks import InputBlock, MarkdownTextObject, PlainTextInputElement, SectionBlock
from slack_sdk.models.views import View

from bot.core import commands
from bot.core.alerts import StoredAlert
from bot.frontends.slack import modals
from bot.frontends.slack.alert_posts import PICK_ACTION, ROLLBACK_ACTION, parse_value
from bot.frontends.slack.identity import UserRefused
from bot.frontends.slack.mrkdwn import clip, escape
from bot.frontends.slack.runtime import Say, SlackRuntime, ephemeral, open_view, say_safely
from bot.texts import alerts as texts
from bot.texts import slack as slack_texts
from bot.usecases.context import Context, Reply

CALLBACK = "alert_rollback_reason"
REASON = "reason"
REASON_MAX_CHARS = 500
FRONTEND = "slack"


def register(app: App, runtime: SlackRuntime) -> None:
    @app.action(ROLLBACK_ACTION)
    def on_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        action = (body.get("actions") or [{}])[0]
        _clicked(runtime, body, client, action.get("value"))

    @app.action(PICK_ACTION)
    def on_pick(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        action = (body.get("actions") or [{}])[0]
        _clicked(runtime, body, client, (action.get("selected_option") or {}).get("value"))

    @app.view(CALLBACK)
    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        reason = modals.submitted(view, REASON)
        if not reason:
            ack(response_action="errors", errors={REASON: slack_texts.SLACK_REASON_EMPTY})
            return
        ack()
        meta = modals.metadata(view)
        user_id, channel = str(body["user"]["id"]), str(meta.get("channel") or "")
        say = ephemeral(client, channel, user_id)
        target = parse_value(meta.get("value"))
        if target is None:
            runtime.tell(say, texts.STALE)
            return
        asked = Asked(user_id, channel, target, reason)
        if not runtime.submit("rollback", say, request_rollback, runtime, asked, say):
            runtime.tell(say, slack_texts.SLACK_BUSY)


def _clicked(runtime: SlackRuntime, body: Mapping[str, Any], client: WebClient, value: object) -> None:
    """Check the clicker may request the rollback, then open the pre-filled modal (on this thread: 3 s)."""
    user_id = str(body["user"]["id"])
    channel = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")
    say = ephemeral(client, channel, user_id)
    target = parse_value(value)
    alert = runtime.service.alert_by_id(target[0]) if target else None
    if target is None or alert is None:
        runtime.tell(say, texts.STALE)
        return
    try:
        identity = runtime.directory.identity(user_id)
    except UserRefused as exc:
        runtime.tell(say, str(exc))
        return
    ctx = Context(actor=identity, channel=channel or None, frontend=FRONTEND, alert=alert.reference())
    refusal = runtime.service.permitted(
        ctx, commands.Rollback(alert.model, target[1], reason=texts.reason(alert.alertname, ""))
    )
    if refusal is not None:
        runtime.tell(say, refusal.text)
        return
    if not open_view(client, str(body.get("trigger_id") or ""), modal(alert, target[1], channel)):
        runtime.tell(say, texts.MODAL_FAILED)


def modal(alert: StoredAlert, version: int, channel: str) -> dict[str, Any]:
    """The rollback form: what will be requested, and the reason pre-filled from the alert."""
    meta = {"value": f"{alert.id}:{version}", "channel": channel}
    reason = clip(texts.reason(alert.alertname, alert.notice.summary), REASON_MAX_CHARS)
    what = f"Roll back *{escape(alert.model)}* to *v{version}* (alert *{escape(alert.alertname)}*)."
    view = View(
        type="modal",
        callback_id=CALLBACK,
        title=texts.MODAL_TITLE,
        submit=texts.MODAL_SUBMIT,
        close=slack_texts.SLACK_MODAL_CANCEL,
        private_metadata=json.dumps(meta, separators=(",", ":")),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=clip(what, 3000))),
            InputBlock(
                block_id=REASON,
                label=slack_texts.SLACK_REASON_LABEL,
                hint=texts.MODAL_REASON_HINT,
                element=PlainTextInputElement(
                    action_id=REASON, initial_value=reason, multiline=True, max_length=REASON_MAX_CHARS
                ),
            ),
        ],
    )
    result: dict[str, Any] = view.to_dict()
    return result


@dataclass(frozen=True)
class Asked:
    """A submitted form: who (from the signed payload), where, which alert and version, and why."""

    user_id: str
    channel: str
    target: tuple[int, int]
    reason: str


def request_rollback(runtime: SlackRuntime, asked: Asked, say: Say) -> None:
    """Open the rollback request as the submitting user, through the service (policy checked again there)."""
    alert = runtime.service.alert_by_id(asked.target[0])
    if alert is None:
        say_safely(say, texts.STALE)
        return
    command = commands.Rollback(alert.model, asked.target[1], reason=asked.reason)
    reference = alert.reference()

    def run(ctx: Context) -> Reply:
        return runtime.service.handle(replace(ctx, alert=reference), command)

    reply = runtime.act(asked.user_id, asked.channel or None, "rollback", say, run, model=alert.model)
    if reply is not None:
        say_safely(say, reply.text)
