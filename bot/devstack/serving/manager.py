"""AspiredVersionsManager + BasicManager: version harnesses, the manage-state loop, loading and unloading.

One manage-state tick = FlushServables, HandlePendingAspiredVersionsRequests, then ONE action for the whole server
(the policy proposes one per model; unloads win), as core/aspired_versions_manager.cc. After start-up, loads run
inline on the manager thread (--num_load_threads=0): a slow, retrying or stalled load holds up every other load
and unload on this replica, as it does upstream. Start-up loads run in parallel (num_initial_load_threads).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from bot.devstack.serving.discovery import AspiredVersion
from bot.devstack.serving.loading import LoadedServable, load_saved_model
from bot.devstack.serving.monitor import ManagerState, ServableState, StateMonitor
from bot.devstack.serving.policy import Action, HarnessState, VersionSnapshot, next_action
from bot.devstack.serving.status import Code, Status, TfError

log = logging.getLogger("devstack.manager")

_FLUSHABLE = (HarnessState.NEW, HarnessState.DISABLED, HarnessState.ERROR)


@dataclass(frozen=True)
class LoadOptions:
    load_seconds: float  # simulated time one load attempt takes
    max_num_load_retries: int
    retry_interval_seconds: float
    tags: frozenset[str]
    stalled: frozenset[tuple[str, int]]  # (model, version) whose load never finishes on this replica


@dataclass
class _Harness:
    """LoaderHarness: one managed version and whether the source still aspires to it."""

    model: str
    version: int
    path: str
    state: HarnessState = HarnessState.NEW
    aspired: bool = True
    cancelled: bool = False  # CancelLoadServableRetry was called (un-aspired while loading)
    servable: LoadedServable | None = None

    @property
    def label(self) -> str:
        return f"{{name: {self.model} version: {self.version}}}"


class AspiredVersionsManager:
    def __init__(
        self, monitor: StateMonitor, options: LoadOptions, interval_seconds: float, stopping: threading.Event
    ) -> None:
        self._monitor = monitor
        self._options = options
        self._interval_seconds = interval_seconds
        self._stopping = stopping
        self._lock = threading.Lock()
        self._harnesses: dict[str, dict[int, _Harness]] = {}
        self._pending: dict[str, list[AspiredVersion]] = {}
        self._parallel_loads = True
        self._thread = threading.Thread(target=self._run, name="devstack-manager", daemon=True)

    # --- wiring -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def finish_initial_load(self) -> None:
        """Start-up is over: from now on loads run one at a time on the manager thread."""
        with self._lock:
            self._parallel_loads = False

    def set_aspired_versions(self, model: str, versions: Sequence[AspiredVersion]) -> None:
        """EnqueueAspiredVersionsRequest: the latest request per model replaces any unprocessed one."""
        with self._lock:
            self._pending[model] = list(versions)

    def servable(self, model: str, version: int | None) -> LoadedServable | None:
        """The serving map: a specific READY version, or the highest READY one when version is None."""
        with self._lock:
            ready = {v: h for v, h in self._harnesses.get(model, {}).items() if h.state is HarnessState.READY}
            if version is None:
                return ready[max(ready)].servable if ready else None
            harness = ready.get(version)
            return harness.servable if harness else None

    # --- manage-state loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.wait(self._interval_seconds):
            try:
                self.tick()
            except Exception:  # a bug in one tick must not stop the manager for the rest of the run
                log.exception("manage-state tick failed")

    def tick(self) -> None:
        with self._lock:
            self._flush()
            self._handle_pending()
            chosen = self._choose_action()
            if chosen is None:
                return
            action, harness = chosen
            # LoadRequested / StartQuiescing: the policy will not pick this version again.
            harness.state = HarnessState.LOADING if action is Action.LOAD else HarnessState.UNLOADING
            parallel = self._parallel_loads
        if action is Action.UNLOAD:
            self._unload(harness)
        elif parallel:
            threading.Thread(target=self._load, args=(harness,), name="devstack-initial-load", daemon=True).start()
        else:
            self._load(harness)

    def _flush(self) -> None:
        """Forget harnesses that are done with and no longer aspired (a never-loaded one keeps START history)."""
        for model in list(self._harnesses):
            harnesses = self._harnesses[model]
            for version in [v for v, h in harnesses.items() if h.state in _FLUSHABLE and not h.aspired]:
                del harnesses[version]
            if not harnesses:
                del self._harnesses[model]

    def _handle_pending(self) -> None:
        for model in list(self._pending):
            versions = self._pending[model]
            wanted = {v.version for v in versions}
            harnesses = self._harnesses.get(model, {})
            # A re-aspired version must first finish unloading and be flushed; the request waits until then.
            if any(not h.aspired and h.version in wanted for h in harnesses.values()):
                continue
            del self._pending[model]
            self._process_aspired(model, versions)

    def _process_aspired(self, model: str, versions: Sequence[AspiredVersion]) -> None:
        by_version = {v.version: v for v in versions}
        harnesses = self._harnesses.setdefault(model, {})
        for harness in harnesses.values():
            if harness.version not in by_version:
                harness.aspired = False
                harness.cancelled = True
        for version in sorted(by_version):
            if version in harnesses:  # already managed and aspired (an errored one is not retried)
                continue
            harnesses[version] = _Harness(model, version, by_version[version].path)
            self._monitor.publish(ServableState(model, version, ManagerState.START))
        if not harnesses:
            del self._harnesses[model]

    def _choose_action(self) -> tuple[Action, _Harness] | None:
        proposals: list[tuple[Action, _Harness]] = []
        for model in sorted(self._harnesses):
            harnesses = self._harnesses[model]
            proposal = next_action([VersionSnapshot(h.version, h.state, h.aspired) for h in harnesses.values()])
            if proposal is not None:
                proposals.append((proposal[0], harnesses[proposal[1]]))
        unloads = [p for p in proposals if p[0] is Action.UNLOAD]
        if unloads:
            return unloads[0]
        return proposals[0] if proposals else None

    # --- execution ----------------------------------------------------------------------------------------
    def _unload(self, harness: _Harness) -> None:
        self._monitor.publish(ServableState(harness.model, harness.version, ManagerState.UNLOADING))
        with self._lock:
            harness.servable = None
            harness.state = HarnessState.DISABLED
        log.info("Unloaded servable version %s", harness.label)
        self._monitor.publish(ServableState(harness.model, harness.version, ManagerState.END))

    def _load(self, harness: _Harness) -> None:
        self._monitor.publish(ServableState(harness.model, harness.version, ManagerState.LOADING))
        log.info("Loading servable version %s", harness.label)
        try:
            servable = self._load_with_retries(harness)
        except TfError as error:
            with self._lock:
                harness.state = HarnessState.ERROR
            self._monitor.publish(ServableState(harness.model, harness.version, ManagerState.END, error.status))
            return
        with self._lock:
            cancelled = harness.cancelled
            harness.state = HarnessState.ERROR if cancelled else HarnessState.READY
            harness.servable = None if cancelled else servable
        if cancelled:  # un-aspired while loading: reported as a failed load, never as AVAILABLE
            health = Status(Code.CANCELLED, "Loading of servable cancelled")
            self._monitor.publish(ServableState(harness.model, harness.version, ManagerState.END, health))
            return
        log.info("Successfully loaded servable version %s", harness.label)
        self._monitor.publish(ServableState(harness.model, harness.version, ManagerState.AVAILABLE))

    def _load_with_retries(self, harness: _Harness) -> LoadedServable:
        """util/retrier.cc: 1 + max_num_load_retries attempts, retry_interval apart, unless cancelled."""
        attempts = 0
        while True:
            if attempts > 0:
                if self._stopping.wait(self._options.retry_interval_seconds):
                    raise TfError(Code.CANCELLED, "Loading of servable cancelled")
                log.info("Retrying of Loading servable: %s retry: %d", harness.label, attempts)
            try:
                return self._load_once(harness)
            except TfError as error:
                log.error("Loading servable: %s failed: %s", harness.label, error.status.to_string())
                attempts += 1
                if attempts > self._options.max_num_load_retries or harness.cancelled:
                    raise

    def _load_once(self, harness: _Harness) -> LoadedServable:
        if self._stopping.wait(self._options.load_seconds):
            raise TfError(Code.CANCELLED, "Loading of servable cancelled")
        if (harness.model, harness.version) in self._options.stalled:
            self._stopping.wait()  # a hung load: LOADING until the process exits
            raise TfError(Code.CANCELLED, "Loading of servable cancelled")
        return load_saved_model(harness.model, harness.version, harness.path, self._options.tags)
