"""The bot added to a channel (`member_joined_channel` about the bot itself): the approval cards that could be
posted nowhere after trying that channel, whose requesters were told to `/invite @modelbot`, and the posts of firing
alerts whose incident channel it is and that never landed, are posted there now (through the service, off the ack
thread). Anyone else joining is ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext

from bot.frontends.slack.runtime import SlackRuntime

log = logging.getLogger(__name__)
EVENT = "member_joined_channel"


def register(app: App, runtime: SlackRuntime) -> None:
    @app.event(EVENT)
    def on_member_joined(event: dict[str, Any], context: BoltContext) -> None:
        channel = str(event.get("channel") or "")
        if not channel or not context.bot_user_id or event.get("user") != context.bot_user_id:
            return  # a person joined, or an event without a channel: nothing of modelbot's
        if not runtime.workers.submit(repost_cards, runtime, channel):
            log.warning("cards for %s not re-posted: the worker pool is full", channel)


def repost_cards(runtime: SlackRuntime, channel: str) -> None:
    """Queue the cards and alert posts that wait for this channel, and wake the outbox; failures are logged."""
    try:
        cards, alerts = runtime.service.bot_joined(channel)
    except Exception as exc:  # the database away: the requester can still be decided from Home or /model approve
        log.warning("cards for %s not re-posted: %s", channel, type(exc).__name__)
        return
    if cards or alerts:
        waiting = [f"R{r}" for r in cards] + [f"alert {a}" for a in alerts]
        log.info("added to %s: posting %s", channel, ", ".join(waiting))
        runtime.wake_outbox()
