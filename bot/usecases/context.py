"""What every use case receives: who is acting, from where, and the collaborators."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.core.fleet import ProgressEvent, RolloutResult
from bot.core.freeze import FreezeWindow
from bot.core.policy import Identity, Policy
from bot.core.ports import Fleet, VersionCatalog
from bot.settings import Settings
from bot.usecases.ports import ModelConfigReader, Store


@dataclass(frozen=True)
class Context:
    """The acting user (from the signed Slack payload or the console's :as), and where they typed."""

    actor: Identity
    channel: str | None = None  # the approval card is posted where the command was typed
    frontend: str = "console"
    progress: Callable[[ProgressEvent], None] | None = None
    alert: Mapping[str, object] | None = None  # the alert a request comes from (its post's button): kept on it


@dataclass(frozen=True)
class Reply:
    """The outcome of one command, rendered as plain text; front ends may render `request_id`'s card too."""

    text: str
    ok: bool = True
    public: bool = False  # posted for the channel to see, not only to the user
    request_id: int | None = None
    result: RolloutResult | None = None


class Running:
    """The operations this process is running right now: the recovery sweep never touches them, even if their
    lease lapsed while the database was away, and no second rollout of this process starts beside them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: set[int] = set()

    def add(self, op_id: int) -> None:
        with self._lock:
            self._ops.add(op_id)

    def discard(self, op_id: int) -> None:
        with self._lock:
            self._ops.discard(op_id)

    def __contains__(self, op_id: object) -> bool:
        with self._lock:
            return op_id in self._ops

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._ops)


@dataclass
class Deps:
    """Collaborators built once by bot.wiring (the store and the config-file reader through bot.usecases.ports)."""

    settings: Settings
    policy: Policy
    db: Store
    fleet: Fleet
    catalog: VersionCatalog
    clock: Callable[[], datetime]
    holder: str  # this process's name in the fleet lock (unique per process start: see wiring.process_holder)
    read_model_config: ModelConfigReader  # bootstrap adopts the fleet's model_config_file (bot.serving.config_proto)
    lock_wait_s: float = 30.0
    finish_retry_delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)  # tests set () to fail fast
    lease_s: float = 15.0  # a holder that has not renewed for this long is dead: its rollout is recovered
    heartbeat_s: float = 5.0  # how often a running rollout renews its lease (three beats per lease)
    late_record_delays_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)  # outcome recording after an outage, then
    # every last delay for as long as the process lives
    running: Running = field(default_factory=Running)
    retro_review_within: timedelta = timedelta(hours=24)  # permissions.yaml; an emergency must be acknowledged
    freeze_windows: tuple[FreezeWindow, ...] = ()  # permissions.yaml: scheduled freezes
    extra: dict[str, object] = field(default_factory=dict)
