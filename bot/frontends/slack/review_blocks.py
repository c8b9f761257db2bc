"""The retro-review of an emergency in Block Kit: its line on the card, and the Acknowledge button (on the card once
the emergency has finished, and on every reminder post). The button's value only names the request; pressing it
runs `/model review R7` as the clicking user, through the service (buttons.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.core.change_request import ChangeRequest
from bot.frontends.slack.mrkdwn import clip, date, member
from bot.texts import routing as words
from bot.texts import slack as texts

ACKNOWLEDGE_ACTION = "acknowledge"
SECTION_CHARS = 3000
FALLBACK_CHARS = 3000


class Reminder(NamedTuple):
    text: str
    blocks: list[dict[str, Any]]


def retro_blocks(req: ChangeRequest) -> list[Block]:
    """The card's retro-review line, with the Acknowledge button while it is open and the emergency has finished."""
    review = req.retro_review
    if review is None:
        return []
    if not review.open:
        at = date(review.acknowledged_at) if review.acknowledged_at else ""
        return [_section(words.retro_review_done(member(review.acknowledged_by or ""), at))]
    blocks: list[Block] = [_section(words.retro_review_due(date(review.due)))]
    if req.state.is_final:
        blocks.append(acknowledge_actions(req))
    return blocks


def acknowledge_actions(req: ChangeRequest) -> ActionsBlock:
    """The Acknowledge button of request `req` (the same action wherever it is shown)."""
    return ActionsBlock(
        block_id=f"review:{req.id}", elements=[acknowledge_button(req.id, words.acknowledge_confirm(req))]
    )


def acknowledge_button(request_id: int, confirm_text: str) -> ButtonElement:
    return ButtonElement(
        text=words.ACKNOWLEDGE,
        action_id=ACKNOWLEDGE_ACTION,
        value=str(request_id),
        style="primary",
        confirm=ConfirmObject(
            title=words.ACKNOWLEDGE_CONFIRM_TITLE,
            text=PlainTextObject(text=clip(confirm_text, 300)),
            confirm=words.ACKNOWLEDGE,
            deny=texts.SLACK_CONFIRM_DENY,
        ),
    )


def render_reminder(text: str, payload: Mapping[str, Any]) -> Reminder:
    """A retro-review reminder post (`text` already inert) with the Acknowledge button of its request."""
    request_id = int(payload["review_request_id"])
    button = acknowledge_button(request_id, clip(text, 300))
    blocks: list[Block] = [
        _section(text),
        ActionsBlock(block_id=f"review:{request_id}", elements=[button]),
    ]
    return Reminder(clip(text, FALLBACK_CHARS), [b.to_dict() for b in blocks])


def _section(markdown: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(markdown, SECTION_CHARS)))
