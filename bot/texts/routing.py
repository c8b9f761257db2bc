"""Slack wording of approval routing, approver DMs, card threads, retro-review acknowledgement and the Home tab.

Callers pass values already made safe for mrkdwn: mentions and channel links built from IDs (bot/frontends/slack/
mrkdwn.py), user text escaped. Nothing here escapes again.
"""

from __future__ import annotations

from bot.core.change_request import ChangeRequest
from bot.core.commands import format_request_id as rid

# Slack's errors for a post the bot may never make there, in words (anything else: Slack's error code as is).
CANNOT_POST_WORDS = {
    "not_in_channel": "modelbot is not a member of {channel}",
    "channel_not_found": "{channel} does not exist, or it is private and modelbot is not a member of it",
    "is_archived": "{channel} is archived",
}

ACKNOWLEDGE = "Acknowledge"
ACKNOWLEDGE_CONFIRM_TITLE = "Acknowledge the emergency?"
HOME_OPEN_REQUESTS = "Open requests"
HOME_RETRO_REVIEWS = "Emergencies waiting for a retro-review"
HOME_PROBLEMS = "Models with problems"
HOME_RECENT = "Recent changes"
HOME_NONE = "_None._"
HOME_NOT_ALLOWED = (
    "You hold no role that lets you see modelbot's requests; ask an admin to add you to permissions.yaml."
)
HOME_CANNOT_VERIFY = "Slack could not confirm who you are right now; open this tab again in a moment."


def cannot_post(error: str, channel: str) -> str:
    """Why a post to `channel` (a channel link) failed, in words."""
    words = CANNOT_POST_WORDS.get(error)
    return words.format(channel=channel) if words else f"Slack refused the post to {channel} ({error})"


def link_back(req: ChangeRequest, where: str, permalink: str) -> str:
    """Posted where the request was typed when its card went to the approval channel `where`."""
    card = f"<{permalink}|the card>" if permalink else "the card"
    return f":inbox_tray: {rid(req.id)} ({_what(req)}) waits for approval in {where}: {card}"


def link_back_private(req: ChangeRequest, where: str, permalink: str, typed: str, why: str) -> str:
    """Told to the requester alone when the link-back could not be posted in the channel they typed in."""
    return (
        f"{link_back(req, where, permalink)}\n(modelbot could not post this in {typed}: {why}."
        " Invite it there with `/invite @modelbot` to get these links in the channel.)"
    )


def card_undeliverable(req: ChangeRequest, reasons: list[str], invite_in: str) -> str:
    """Told to the requester at once when the card could be posted nowhere: why, and what to do."""
    why = "; ".join(reasons)
    return (
        f":warning: {rid(req.id)} ({_what(req)}) is open, but its approval card could not be posted: {why}."
        f" Invite modelbot with `/invite @modelbot` in {invite_in} and the card is posted there. Meanwhile"
        f" approvers can decide it from modelbot's Home tab or with `/model approve {rid(req.id)}`; it expires if"
        " nobody does."
    )


def approver_dm(req: ChangeRequest, requester: str, permalink: str, where: str) -> str:
    """The DM each approver gets (`notify_approvers: dm`); `requester` is a mention."""
    card = f"<{permalink}|Open the card>" if permalink else f"The card is in {where}"
    return f":wave: {requester} asks for your approval of {rid(req.id)}: {_what(req)}. {card} to approve or reject."


def thread_started(req: ChangeRequest) -> str:
    return f":gear: {rid(req.id)} is rolling out: {_what(req)}."


def thread_phase(phase: str, done: int, total: int) -> str:
    return f"Phase *{phase}* started ({done}/{total} replicas through it so far)."


def thread_result_heading(req: ChangeRequest, message: str) -> str:
    tail = f" — {message}" if message else ""
    return f"*{rid(req.id)} {req.state.value}*{tail}"


def retro_review_due(due: str) -> str:
    return f":mag: *Retro-review due* {due}: an approver other than the requester must acknowledge this emergency."


def retro_review_done(who: str, at: str) -> str:
    return f":white_check_mark: *Retro-review acknowledged* by {who} {at}"


def acknowledge_confirm(req: ChangeRequest) -> str:
    return f"Acknowledge emergency {rid(req.id)} ({_what(req)}) as reviewed?"


def home_more(count: int) -> str:
    return f"… and {count} more"


def home_request_line(req: ChangeRequest, requester: str, expires: str) -> str:
    wait = f", needs {req.approvals_missing} more approval(s)" if req.state.value == "PENDING" else ""
    return f"*{rid(req.id)}* {_what(req)} by {requester}: {req.state.value}{wait}; expires {expires}"


def home_review_line(req: ChangeRequest, requester: str, due: str, overdue: bool) -> str:
    when = "*OVERDUE*" if overdue else f"due {due}"
    return f"*{rid(req.id)}* {_what(req)} by {requester}: {req.state.value}; retro-review {when}"


def home_drift_line(model: str, since: str, replicas: int) -> str:
    return f":warning: *{model}* drifted from the desired state on {replicas} replica(s) since {since}"


def home_frozen_line(model: str, reason: str) -> str:
    return f":snowflake: *{model}* is frozen: {reason}"


def home_recent_line(req: ChangeRequest, requester: str) -> str:
    return f"*{rid(req.id)}* {_what(req)} by {requester}: {req.state.value}"


def _what(req: ChangeRequest) -> str:
    frm = f"v{req.from_version}" if req.from_version is not None else "nothing"
    return f"{req.action} {req.model} {frm} → v{req.to_version}"
