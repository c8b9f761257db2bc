"""What every use case receives: who is acting, from where, and the collaborators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot.core.fleet import ProgressEvent, RolloutResult
from bot.core.policy import Identity, Policy
from bot.core.ports import Fleet, VersionCatalog
from bot.settings import Settings
from bot.store.database import Database


@dataclass(frozen=True)
class Context:
    """The acting user (from the signed Slack payload or the console's :as), and where they typed."""

    actor: Identity
    channel: str | None = None  # the approval card is posted where the command was typed
    frontend: str = "console"
    progress: Callable[[ProgressEvent], None] | None = None


@dataclass(frozen=True)
class Reply:
    """The outcome of one command, rendered as plain text; front ends may render `request_id`'s card too."""

    text: str
    ok: bool = True
    public: bool = False  # posted for the channel to see, not only to the user
    request_id: int | None = None
    result: RolloutResult | None = None


@dataclass
class Deps:
    """Collaborators built once by bot.wiring."""

    settings: Settings
    policy: Policy
    db: Database
    fleet: Fleet
    catalog: VersionCatalog
    clock: Callable[[], datetime]
    holder: str  # this process's name in the fleet lock
    lock_wait_s: float = 30.0
    finish_retry_delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)  # tests set () to fail fast
    extra: dict[str, object] = field(default_factory=dict)
