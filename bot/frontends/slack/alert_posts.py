"""An alert's incident post in Block Kit, and its delivery: posted the first time, updated in place (chat.update
by the stored ts) on every later change: resolved, auto-rollback held or done. Rendered from the alert's row at
delivery time, so a late or repeated delivery always shows the current state.

Firing, it carries the "Request rollback to vN" button (the previous stable version), or, when the bot has no
earlier stable version recorded (a fleet it adopted), a select of the versions on disk below the current one,
newest first (at most 100: Block Kit's limit). Their value names the alert row and the version only; who clicked
and whether they may is decided later, from the signed payload, by the service.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
)

from bot.core.alerts import AutoState
from bot.frontends.slack.blocks import Message
from bot.frontends.slack.mrkdwn import clip, escape
from bot.frontends.slack.ratelimit import RateGate
from bot.texts import alerts as texts
from bot.usecases.alerts import POST_KIND, AlertView

ROLLBACK_ACTION, PICK_ACTION = "alert_rollback", "alert_rollback_pick"
KIND = POST_KIND
SECTION_CHARS, CONTEXT_CHARS, FALLBACK_CHARS, OPTION_CHARS = 3000, 2000, 3000, 75
GONE = frozenset({"message_not_found", "cant_update_message"})


def action_value(alert_id: int, version: int) -> str:
    return f"{alert_id}:{version}"


def parse_value(value: object) -> tuple[int, int] | None:
    """(alert id, version) from a button or option value; None for anything else (a stale or forged value)."""
    alert, sep, version = str(value or "").partition(":")
    if not sep or not (alert.isdigit() and version.isdigit()) or len(alert) > 18 or len(version) > 18:
        return None
    return int(alert), int(version)


def render(view: AlertView) -> Message:
    alert = view.alert
    model, name, summary = escape(alert.model), escape(alert.alertname), escape(alert.notice.summary)
    details = texts.details(summary, alert.firing_since, alert.notifications, alert.notice.link)
    if alert.firing:
        heading = texts.incident_heading(name, model, alert.notice.source)
    else:
        heading = texts.resolved_heading(name, model, alert.resolved_at)
    blocks: list[Block] = [_section(f"{heading}\n{details}")]
    auto = _auto_line(view)
    if auto:
        blocks.append(_context(auto))
    offers = alert.firing and alert.auto_state is not AutoState.ACTED
    if offers and view.target is not None:
        button = ButtonElement(
            text=texts.button_rollback(view.target),
            action_id=ROLLBACK_ACTION,
            value=action_value(alert.id, view.target),
            style="danger",
        )
        blocks.append(ActionsBlock(block_id=f"alert:{alert.id}", elements=[button]))
        if view.command:
            blocks.append(_context(texts.command_hint(escape(view.command))))
    elif offers and view.choices:
        options = [
            Option(text=clip(texts.option_version(v, view.current), OPTION_CHARS), value=action_value(alert.id, v))
            for v in view.choices
        ]
        pick = StaticSelectElement(placeholder=texts.PICK_PLACEHOLDER, action_id=PICK_ACTION, options=options)
        blocks.append(_context(texts.pick_note()))
        blocks.append(ActionsBlock(block_id=f"alert:{alert.id}", elements=[pick]))
    elif offers:
        blocks.append(_context(texts.no_target()))
    fallback = texts.fallback(alert.alertname, alert.model, alert.notice.summary, view.command, not alert.firing)
    return Message(clip(escape(fallback), FALLBACK_CHARS), [b.to_dict() for b in blocks])


def _auto_line(view: AlertView) -> str:
    alert = view.alert
    if alert.auto_state is AutoState.ACTED and view.auto_request is not None:
        request = view.auto_request
        return texts.auto_acted(request.id, request.to_version, request.state.value)
    if alert.auto_state is AutoState.HELD:
        return texts.auto_held(escape(alert.auto_reason))
    if alert.auto_state is AutoState.SKIPPED:
        return texts.auto_skipped()
    if alert.auto_state is AutoState.PENDING and alert.firing and view.auto_until is not None:
        return texts.auto_waiting(view.auto_until)
    return ""


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_CHARS)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text, CONTEXT_CHARS))])


def deliver(
    client: WebClient, gate: RateGate, view: AlertView, channel: str
) -> tuple[dict[str, Any], tuple[int, str, str] | None]:
    """Post the alert's post, or update it in place when it was posted already (posted again if someone deleted
    it). Returns Slack's (channel, ts) and, after a first post, the (alert id, channel, ts) to remember in the
    delivery's transaction."""
    message = render(view)
    if view.alert.post is not None:
        where, ts = view.alert.post
        try:
            with gate.guard("chat.update"):
                client.chat_update(channel=where, ts=ts, text=message.text, blocks=message.blocks)
            return {"channel": where, "ts": ts}, None
        except SlackApiError as exc:
            if exc.response.get("error") not in GONE:
                raise
    with gate.guard("chat.postMessage", channel):
        response = client.chat_postMessage(
            channel=channel, text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
        )
    where, ts = str(response["channel"]), str(response["ts"])
    return {"channel": where, "ts": ts}, (view.alert.id, where, ts)
