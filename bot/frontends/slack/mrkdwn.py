"""Small helpers for Slack's mrkdwn: escaping user text, clipping to Block Kit limits, mentions, dates."""

from __future__ import annotations

import re
from datetime import datetime

from bot.core.policy import MEMBER_ID

ELLIPSIS = "…"
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")  # public, private (legacy G...) and DM channel IDs


def escape(text: str) -> str:
    """User text made inert: `<!channel>`, `<@U…>` and links typed by a user are shown, never acted on."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def member(entry: str) -> str:
    """A policy entry as Slack shows it: users as mentions, user groups as their ID (no group ping), roles as words."""
    if MEMBER_ID.fullmatch(entry):
        return f"<@{entry}>" if entry[0] in "UW" else f"`{entry}`"
    return escape(entry)


def mention(entry: str) -> str:
    """A policy entry as a Slack mention that notifies: users `<@U…>`, user groups `<!subteam^S…>`; anything else
    (a role name) escaped as words. Only IDs matching MEMBER_ID become mentions, so no text can become `<!channel>`."""
    if MEMBER_ID.fullmatch(entry):
        return f"<@{entry}>" if entry[0] in "UW" else f"<!subteam^{entry}>"
    return escape(entry)


def channel_link(channel: str) -> str:
    """A channel as Slack links it (`<#C…>`) when it looks like a channel ID, else the text escaped."""
    return f"<#{channel}>" if CHANNEL_ID.fullmatch(channel) else escape(channel)


def date(moment: datetime) -> str:
    """A date Slack renders in the reader's own time zone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"
