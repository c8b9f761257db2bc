"""A queued Slack message as the durable outbox keeps it (see bot/store/outbox.py for the delivery loop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class OutboxMessage:
    """One queued Slack message. `payload` is what the front end renders; `key` deduplicates."""

    id: int
    kind: str  # "audit" | "card" | "incident" | ...
    channel: str
    payload: dict[str, Any]
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    key: str | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    abandoned_at: datetime | None = None
    response: dict[str, Any] | None = field(default=None, compare=False)
