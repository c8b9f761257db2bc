"""ServableStateMonitor: the last published state of every version ever seen, and waits on state changes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum

from bot.devstack.serving.status import OK, Status
from bot.serving.protos import tfs_apis_pb2

_State = tfs_apis_pb2.ModelVersionStatus.State


class ManagerState(IntEnum):
    """ServableState::ManagerState, numbered as ModelVersionStatus.State so it converts 1:1."""

    START = _State.START
    LOADING = _State.LOADING
    AVAILABLE = _State.AVAILABLE
    UNLOADING = _State.UNLOADING
    END = _State.END


@dataclass(frozen=True)
class ServableState:
    model: str
    version: int
    state: ManagerState
    health: Status = OK


Listener = Callable[[ServableState], None]


class StateMonitor:
    """History is never forgotten (upstream never calls ForgetUnloadedServableStates), so END entries stay."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, dict[int, ServableState]] = {}
        self._listeners: list[Listener] = []

    def publish(self, state: ServableState) -> None:
        with self._lock:
            self._states.setdefault(state.model, {})[state.version] = state
            listeners = list(self._listeners)
        for listener in listeners:
            listener(state)

    def get(self, model: str, version: int) -> ServableState | None:
        with self._lock:
            return self._states.get(model, {}).get(version)

    def versions(self, model: str) -> list[ServableState]:
        """Every version seen for the model, highest first (VersionMap is ordered by std::greater)."""
        with self._lock:
            states = self._states.get(model, {})
            return [states[v] for v in sorted(states, reverse=True)]

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.remove(listener)


class FreshMonitor:
    """A monitor that sees only events published after it was created, as ServerCore's per-reload monitor.

    Used as a context manager; `wait_until_available` is WaitUntilServablesReachState for Latest(model) requests.
    """

    def __init__(self, main: StateMonitor) -> None:
        self._main = main
        self._cond = threading.Condition()
        self._states: dict[str, dict[int, ServableState]] = {}

    def __enter__(self) -> FreshMonitor:
        self._main.subscribe(self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._main.unsubscribe(self._record)

    def _record(self, state: ServableState) -> None:
        with self._cond:
            self._states.setdefault(state.model, {})[state.version] = state
            self._cond.notify_all()

    def _reached(self, models: Iterable[str]) -> list[ServableState] | None:
        reached = []
        for model in models:
            states = self._states.get(model, {})
            # The highest version whose current state is AVAILABLE or END satisfies Latest(model).
            hit = next(
                (
                    states[v]
                    for v in sorted(states, reverse=True)
                    if states[v].state in (ManagerState.AVAILABLE, ManagerState.END)
                ),
                None,
            )
            if hit is None:
                return None
            reached.append(hit)
        return reached

    def wait_until_available(self, models: Iterable[str], stopping: threading.Event) -> list[ServableState]:
        """Block (without a timeout, as upstream) until every model has a version AVAILABLE or END.

        Returns the states reached; an empty list if the process is shutting down.
        """
        wanted = sorted(set(models))
        with self._cond:
            while True:
                reached = self._reached(wanted)
                if reached is not None:
                    return reached
                if stopping.is_set():
                    return []
                self._cond.wait(timeout=0.1)
