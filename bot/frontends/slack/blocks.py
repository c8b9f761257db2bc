"""The approval card in Block Kit, built with slack_sdk.models so Slack's limits are checked before posting.

The card is re-rendered from the database on every state change, so it always shows the current state:
buttons while PENDING only, live per-replica progress while EXECUTING, the per-replica table at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.core.change_request import ChangeRequest, RequestState
from bot.core.fleet import ProgressEvent
from bot.frontends.slack.mrkdwn import clip, date, escape, member, mention
from bot.frontends.slack.review_blocks import retro_blocks
from bot.texts import slack as texts
from bot.usecases.cards import CardView

MAX_BLOCKS = 50  # per message; slack_sdk does not check this one
SECTION_CHARS = 3000
FIELD_CHARS = 2000
HEADER_CHARS = 150
CONTEXT_CHARS = 2000
FALLBACK_CHARS = 3000
LIST_LINES = 25  # replicas shown in the progress and result sections before "… and N more"
APPROVE_ACTION, REJECT_ACTION, RESYNC_ACTION = "approve", "reject", "resync"
PHASES = ("load", "switch", "verify", "trim")
FINISHED_STATES = frozenset({"AVAILABLE", "reloaded", "verified", "done", "passed"})
PHASE_OF = {"smoke": "load"}  # the smoke test ends phase 1 (DESIGN §4): a passed one fills the load segment
META_SKIP = frozenset({"model", "version", "metrics", "note", "actor", "at", "created_at", "exported_at", "created"})


@dataclass(frozen=True)
class Message:
    """What chat.postMessage / chat.update take: a notification `text` and the `blocks` as dicts."""

    text: str
    blocks: list[dict[str, Any]]


def render_drift(model: str, text: str) -> Message:
    """A drift notice with the Re-sync button (its value names the model; who may press it is the service's
    decision, as for `/model resync`)."""
    body = clip(escape(text), SECTION_CHARS)
    button = ButtonElement(
        text=texts.SLACK_RESYNC,
        action_id=RESYNC_ACTION,
        value=clip(model, 2000),
        style="primary",
        confirm=ConfirmObject(
            title=texts.SLACK_CONFIRM_TITLE,
            text=PlainTextObject(text=clip(texts.slack_resync_confirm(model), 300)),
            confirm=texts.SLACK_RESYNC,
            deny=texts.SLACK_CONFIRM_DENY,
        ),
    )
    blocks: list[Block] = [_section(body), ActionsBlock(block_id=f"drift:{clip(model, 200)}", elements=[button])]
    return Message(clip(text, FALLBACK_CHARS), [b.to_dict() for b in blocks])


def render_card(card: CardView, now: datetime, progress: Sequence[ProgressEvent] = ()) -> Message:
    """The whole card for the request's current state; `progress` are the live events of a running rollout."""
    req = card.request
    body: list[Block] = [
        HeaderBlock(text=clip(texts.slack_card_title(req), HEADER_CHARS)),
        _section(_state_line(req)),
        SectionBlock(fields=_summary_fields(card)),
        SectionBlock(fields=_version_fields(card, now)),
        ContextBlock(elements=[MarkdownTextObject(text=clip(_context(req), CONTEXT_CHARS))]),
    ]
    if req.approvals:
        lines = [texts.slack_approved_by(member(a.user_id), date(a.at)) for a in req.approvals]
        body.append(_section("\n".join(lines)))
    if req.state is RequestState.EXECUTING and progress:
        body.append(_section(_progress_text(progress)))
    if req.state.is_final and card.replicas:
        body.append(_section(_result_text(card)))
    body += retro_blocks(req)  # an emergency's retro-review, with Acknowledge once it has finished
    body = body[: MAX_BLOCKS - 1]
    if req.state is RequestState.PENDING:
        body.append(decide_buttons(req))
    fallback = clip(escape(texts.slack_card_fallback(req)), FALLBACK_CHARS)
    if req.state is RequestState.PENDING and card.approvers:  # the notification pings the approvers
        fallback = clip(f"{fallback} · {', '.join(mention(a) for a in card.approvers)}", FALLBACK_CHARS)
    return Message(text=fallback, blocks=[block.to_dict() for block in body])


def _state_line(req: ChangeRequest) -> str:
    decided_by = member(req.decided_by) if req.decided_by else ""
    shown = replace(req, model=escape(req.model))  # model names come from config, but mrkdwn stays inert anyway
    return texts.slack_card_state(shown, date(req.expires_at), decided_by, escape(req.decision_reason))


def _section(markdown: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(markdown, SECTION_CHARS)))


def _field(title: str, value: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=clip(f"*{title}*\n{value}", FIELD_CHARS))


def _summary_fields(card: CardView) -> list[MarkdownTextObject]:
    req = card.request
    approvers = [member(a.user_id) for a in req.approvals]
    fields = [
        _field(texts.SLACK_FIELD_MODEL, escape(req.model)),
        _field(texts.SLACK_FIELD_CHANGE, texts.slack_change(req)),
        _field(texts.SLACK_FIELD_REQUESTER, member(req.requester)),
        _field(texts.SLACK_FIELD_APPROVALS, texts.slack_approvals(req, approvers)),
        _field(texts.SLACK_FIELD_APPROVERS, ", ".join(mention(a) for a in card.approvers) or texts.SLACK_NOBODY),
        _field(texts.SLACK_FIELD_EXPIRES, date(req.expires_at)),
    ]
    if req.reason:
        fields.append(_field(texts.SLACK_FIELD_REASON, escape(req.reason)))
    return fields


def _version_fields(card: CardView, now: datetime) -> list[MarkdownTextObject]:
    req = card.request
    return [
        _field(texts.slack_version_heading(req.from_version, target=False), _metadata(card.from_meta, now)),
        _field(texts.slack_version_heading(req.to_version, target=True), _metadata(card.to_meta, now)),
    ]


def _metadata(meta: Mapping[str, Any], now: datetime) -> str:
    """Metrics (registry first, then metadata.json scalars), age and note of one version."""
    metrics: dict[str, Any] = {k: v for k, v in meta.items() if k not in META_SKIP and _is_scalar(v)}
    registry_metrics = meta.get("metrics")
    if isinstance(registry_metrics, Mapping):
        metrics.update({str(k): v for k, v in registry_metrics.items() if _is_scalar(v)})
    shown = ", ".join(f"{escape(str(k))}={_number(v)}" for k, v in sorted(metrics.items()))
    moment = _moment(meta)
    age = texts.slack_age((now - moment).total_seconds()) if moment else ""
    return texts.slack_version_details(shown, age, escape(str(meta.get("note") or "")))


def _is_scalar(value: object) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _number(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else escape(str(value))


def _moment(meta: Mapping[str, Any]) -> datetime | None:
    """When the version was registered or exported (registry `at`, or metadata.json's created/exported time)."""
    for key in ("at", "created_at", "exported_at", "created"):
        value = meta.get(key)
        try:
            if isinstance(value, datetime):
                found = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                found = datetime.fromtimestamp(value, UTC)
            elif isinstance(value, str):
                found = datetime.fromisoformat(value)
            else:
                continue
        except (ValueError, OverflowError, OSError):
            continue
        return found if found.tzinfo else found.replace(tzinfo=UTC)
    return None


def _context(req: ChangeRequest) -> str:
    note = str(req.extra.get("signature_note") or "")
    text = texts.slack_card_context(escape(note), escape(req.dry_run_plan))
    return f"{texts.SLACK_EMERGENCY}  ·  {text}" if req.emergency else text


def _progress_text(events: Sequence[ProgressEvent]) -> str:
    latest: dict[str, ProgressEvent] = {}
    for event in events:
        latest[event.replica] = event
    heading = texts.slack_progress_heading(events[-1])
    lines = [texts.slack_progress_line(escape(r), _bar(e), e) for r, e in sorted(latest.items()) if r]
    return "\n".join([heading, *_limited(lines)])


def _bar(event: ProgressEvent) -> str:
    """Four segments, one per phase, filled up to where this replica is."""
    if event.state == "failed":
        return "✖✖✖✖"
    phase = PHASE_OF.get(event.phase, event.phase)
    index = PHASES.index(phase) if phase in PHASES else len(PHASES) - 1
    filled = index + (1 if event.state in FINISHED_STATES else 0)
    return "▰" * filled + "▱" * (len(PHASES) - filled)


def _result_text(card: CardView) -> str:
    lines = [
        texts.slack_result_line(escape(str(r.get("replica", ""))), bool(r.get("ok")), escape(str(r.get("detail", ""))))
        for r in card.replicas
        if r.get("replica")
    ]
    return "\n".join([texts.slack_result_heading(escape(card.message)), *_limited(lines)])


def _limited(lines: Sequence[str]) -> Iterable[str]:
    yield from lines[:LIST_LINES]
    if len(lines) > LIST_LINES:
        yield texts.slack_more_lines(len(lines) - LIST_LINES)


def decide_buttons(req: ChangeRequest, block_prefix: str = "decide") -> ActionsBlock:
    """Approve (with a confirmation) and Reject for `req`; the card and the Home tab share them (same action ids,
    so the same listeners answer)."""
    value = str(req.id)
    confirm = ConfirmObject(
        title=texts.SLACK_CONFIRM_TITLE,
        text=PlainTextObject(text=clip(texts.slack_card_title(req), 300)),
        confirm=texts.SLACK_APPROVE,
        deny=texts.SLACK_CONFIRM_DENY,
    )
    return ActionsBlock(
        block_id=f"{block_prefix}:{req.id}",
        elements=[
            ButtonElement(
                text=texts.SLACK_APPROVE, action_id=APPROVE_ACTION, value=value, style="primary", confirm=confirm
            ),
            ButtonElement(text=texts.SLACK_REJECT, action_id=REJECT_ACTION, value=value, style="danger"),
        ],
    )
