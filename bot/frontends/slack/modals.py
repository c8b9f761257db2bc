"""Modals asking for a reason: rejecting a request, and a `/model rollback` typed without `--reason`.

Context travels in `private_metadata` (max 3000 characters): never trusted for identity, which always
comes from the submission's signed `user.id`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from slack_sdk.models.blocks import InputBlock, PlainTextInputElement
from slack_sdk.models.views import View

from bot.texts import slack as texts

REJECT_CALLBACK = "reject_reason"
ROLLBACK_CALLBACK = "rollback_reason"
REASON, MODEL, VERSION = "reason", "model", "version"
REASON_MAX_CHARS = 500
MODEL_MAX_CHARS = 200


def reject_view(request_id: int, channel: str) -> dict[str, Any]:
    """Ask the clicking approver why they reject request `request_id`."""
    meta = {"request_id": request_id, "channel": channel}
    return _modal(
        REJECT_CALLBACK,
        texts.SLACK_REJECT_TITLE,
        texts.SLACK_REJECT_SUBMIT,
        meta,
        [
            _input(REASON, texts.SLACK_REASON_LABEL, texts.SLACK_REJECT_HINT, multiline=True, limit=REASON_MAX_CHARS),
        ],
    )


def rollback_view(model: str, version: int, emergency: bool, channel: str, response_url: str) -> dict[str, Any]:
    """A rollback form pre-filled with what was typed; the reason is the only thing missing."""
    meta = {"channel": channel, "emergency": emergency, "response_url": response_url}
    return _modal(
        ROLLBACK_CALLBACK,
        texts.SLACK_ROLLBACK_TITLE,
        texts.SLACK_ROLLBACK_SUBMIT,
        meta,
        [
            _input(MODEL, texts.SLACK_MODEL_LABEL, None, initial=model, limit=MODEL_MAX_CHARS),
            _input(VERSION, texts.SLACK_VERSION_LABEL, None, initial=str(version), limit=20),
            _input(REASON, texts.SLACK_REASON_LABEL, texts.SLACK_ROLLBACK_HINT, multiline=True, limit=REASON_MAX_CHARS),
        ],
    )


def submitted(view: Mapping[str, Any], block_id: str) -> str:
    """The text typed into one input of a submitted view ("" when absent)."""
    values = view.get("state", {}).get("values", {})
    value = values.get(block_id, {}).get(block_id, {}).get("value")
    return str(value or "").strip()


def metadata(view: Mapping[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _modal(callback: str, title: str, submit: str, meta: Mapping[str, Any], blocks: list[InputBlock]) -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=callback,
        title=title,
        submit=submit,
        close=texts.SLACK_MODAL_CANCEL,
        private_metadata=json.dumps(meta, separators=(",", ":")),
        blocks=blocks,
    )
    result: dict[str, Any] = view.to_dict()  # validates Slack's limits (title 24 chars, metadata 3000...)
    return result


def _input(
    block_id: str, label: str, hint: str | None, *, initial: str | None = None, multiline: bool = False, limit: int
) -> InputBlock:
    element = PlainTextInputElement(
        action_id=block_id,
        initial_value=initial,
        multiline=multiline or None,
        max_length=limit,
    )
    return InputBlock(block_id=block_id, label=label, element=element, hint=hint)
