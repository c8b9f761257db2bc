"""Alerts as the bot keeps them (pure): one row per alert firing, identified by its source, fingerprint and start.

Alertmanager and PagerDuty repeat themselves; a firing is recorded once (the identity below is unique in the
store), later notifications only count and resolve it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

FIRING, RESOLVED = "firing", "resolved"
NEW, REPEAT, RESOLVED_NOW = "new", "repeat", "resolved"  # what recording a notification did


class AutoState(StrEnum):
    """Where an alert stands with its model's `auto_rollback`: None on the row when the model did not opt in."""

    PENDING = "pending"  # opted in: the sweep decides once the alert has fired for min_firing
    ACTED = "acted"  # the bot rolled back (auto_request_id)
    HELD = "held"  # a guardrail held it back (auto_reason says which); the post offers the manual button
    SKIPPED = "skipped"  # resolved before min_firing


@dataclass(frozen=True)
class AlertNotice:
    """One alert state as a source reported it (already mapped to a configured model)."""

    source: str  # "alertmanager" | "pagerduty"
    fingerprint: str  # Alertmanager fingerprint, PagerDuty incident id
    starts_key: str  # the firing's start as the source spells it (a new firing has a new one)
    status: str  # FIRING | RESOLVED
    model: str
    alertname: str
    summary: str = ""
    link: str = ""  # generatorURL, the PagerDuty incident page
    firing_since: datetime | None = None  # parsed start; the first notification's time when absent


@dataclass(frozen=True)
class StoredAlert:
    """An alert firing as recorded, with its incident post and its auto-rollback decision."""

    id: int
    notice: AlertNotice
    firing_since: datetime
    first_seen: datetime
    last_seen: datetime
    notifications: int = 1
    status: str = FIRING
    resolved_at: datetime | None = None
    post: tuple[str, str] | None = None  # (channel, ts) of the incident post, once posted
    auto_state: AutoState | None = None
    auto_reason: str = ""
    auto_request_id: int | None = None
    auto_at: datetime | None = None

    @property
    def model(self) -> str:
        return self.notice.model

    @property
    def alertname(self) -> str:
        return self.notice.alertname

    @property
    def firing(self) -> bool:
        return self.status == FIRING

    def reference(self) -> dict[str, object]:
        """What a request (and its audit rows) keeps of the alert that led to it."""
        ref: dict[str, object] = {
            "id": self.id,
            "source": self.notice.source,
            "fingerprint": self.notice.fingerprint,
            "alertname": self.alertname,
            "starts_at": self.notice.starts_key,
        }
        if self.notice.link:
            ref["link"] = self.notice.link
        return ref
