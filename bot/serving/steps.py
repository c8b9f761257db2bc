"""The per-replica steps of a rollout: wait for a load, check the loaded signature, switch, verify.

Each step runs for one replica on the fan-out pool and raises `ReplicaFailed` naming the phase and keeping
TF Serving's own message; the orchestration (bot/serving/rollout.py) decides what a failure means fleet-wide.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.errors import ModelbotError, ServingError
from bot.core.fleet import ProgressEvent, VersionState, VersionStatus
from bot.core.ports import ProgressSink
from bot.core.signatures import Signature
from bot.serving.channel import ReplicaClient
from bot.serving.convert import resolved_version, served_signature, version_status
from bot.serving.errors import describe, is_deadline, is_unreachable
from bot.serving.observed import Observed
from bot.serving.preflight import check_served
from bot.serving.protos import tfs_apis_pb2 as apis

log = logging.getLogger(__name__)


class ReplicaFailed(ModelbotError):
    """One replica failed a phase. `timed_out`: the deadline passed; `unsafe`: switching would break clients."""

    def __init__(self, phase: str, detail: str, *, timed_out: bool = False, unsafe: bool = False) -> None:
        super().__init__(detail)
        self.phase = phase
        self.timed_out = timed_out
        self.unsafe = unsafe


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return max(self.at - time.monotonic(), 0.0)


class Progress:
    """Serialises ProgressEvents from the worker threads; a failing sink never breaks the rollout."""

    def __init__(self, sink: ProgressSink, total: int) -> None:
        self._sink, self._total = sink, total
        self._lock = threading.Lock()
        self._done: Counter[str] = Counter()

    def state(self, phase: str, replica: str, state: str, detail: str = "", *, finished: bool = False) -> None:
        with self._lock:
            if finished:
                self._done[phase] += 1
            event = ProgressEvent(phase, replica, state, self._done[phase], self._total, detail)
            try:
                self._sink(event)
            except Exception:  # the front end's problem must not abort a half-done rollout
                log.exception("progress sink failed on %s", event)


@dataclass
class Steps:
    """What every step of one rollout needs to know."""

    model: str
    target: int
    label: str | None  # the label being moved; None for `routing: latest` (unversioned traffic)
    current: int | None  # the version clients get now
    disk_reference: Signature | None  # serving_default of `current` read from disk
    poll_s: float
    observed: Observed
    progress: Progress

    def snapshot(self, client: ReplicaClient) -> Callable[[], VersionStatus | None]:
        """Start reading the target's entry as it is before the reload (GetModelStatus keeps END entries
        forever, reference §4). Sent alongside the reload: a reload changes no state of an existing model
        before the next filesystem poll, so this costs no extra round trip."""
        pending = client.status_later(self.model, self.target)
        return lambda: self._entry(client, "load", pending)

    def await_available(self, client: ReplicaClient, snapshot: VersionStatus | None, deadline: Deadline) -> None:
        """Poll until the target is AVAILABLE; END (with its error) or the deadline fail the replica."""
        fresh, first, previous = snapshot is None, True, snapshot
        while True:
            entry = self._entry(client, "load")
            fresh = fresh or entry != snapshot  # an entry equal to the snapshot may be stale history
            if first or entry != previous:
                self.progress.state("load", client.replica, entry.state.value if entry else "PENDING")
            first, previous = False, entry
            if entry is not None and entry.state is VersionState.AVAILABLE:
                return
            # END with OK may be the tail of an earlier unload, the reload comes at the next filesystem poll;
            # END with an error is final (failed loads are not retried while aspired, reference §1.5).
            if entry is not None and entry.state is VersionState.END and entry.error_code != "OK" and fresh:
                raise ReplicaFailed(
                    "load", f"version {self.target} failed to load: {entry.error_code}: {entry.error_message}"
                )
            if deadline.left() <= 0:
                state = entry.state.value if entry else "not seen by the server"
                detail = f"version {self.target} still {state} after {deadline.seconds:g}s"
                raise ReplicaFailed("load", detail, timed_out=True)
            time.sleep(min(self.poll_s, deadline.left()))

    def check_served(self, client: ReplicaClient) -> Signature:
        """The loaded target's serving_default (GetModelMetadata), compatible with what clients use now."""
        served = self.observed.get(client.replica, self.model, self.target)
        if served is None:
            served = self._served(client, self.target, missing_ok=False)
        reference = self._reference(client)
        problem = check_served(self.model, reference, served, client.replica)
        if problem or served is None:
            raise ReplicaFailed("preflight", problem or "no signature", unsafe=True)
        return served

    def switch(self, client: ReplicaClient, config: apis.ModelServerConfig, deadline: Deadline) -> None:
        """Reload with the label moved. If TF Serving says the target is not AVAILABLE here after all (the
        replica restarted since we saw it), wait for it, check it, and retry once."""
        try:
            client.reload(config)
        except ServingError as exc:
            if is_deadline(exc):
                self.progress.state("switch", client.replica, "reload timed out; verifying", finished=True)
                return
            if exc.code != "FAILED_PRECONDITION" or self.label is None:
                raise ReplicaFailed("switch", describe(exc)) from None
            self.observed.record(client.replica, self.model, self.target, None)
            self.await_available(client, None, deadline)
            self.check_served(client)
            self._retry(client, config)
        self.progress.state("switch", client.replica, "reloaded", finished=True)  # counted: [switch 2/3]

    def verify(self, client: ReplicaClient, deadline: Deadline) -> int:
        """Poll GetModelMetadata (by label, or unversioned) until it resolves to the target."""
        what = f"label {self.label!r}" if self.label else "unversioned requests"
        while True:
            try:
                response = client.metadata(self.model, label=self.label)
                seen = resolved_version(response)
                self.observed.record(client.replica, self.model, seen, served_signature(response))
                if seen == self.target:
                    self.progress.state("verify", client.replica, "verified", finished=True)
                    return seen
                detail = f"resolves to version {seen}"
            except ServingError as exc:
                if is_unreachable(exc):
                    raise ReplicaFailed("verify", describe(exc)) from None
                detail = f"fails with {describe(exc)}"
            if deadline.left() <= 0:
                raise ReplicaFailed("verify", f"{what} still {detail} after {deadline.seconds:g}s", timed_out=True)
            time.sleep(min(self.poll_s, deadline.left()))

    def _retry(self, client: ReplicaClient, config: apis.ModelServerConfig) -> None:
        try:
            client.reload(config)
        except ServingError as exc:
            if not is_deadline(exc):
                raise ReplicaFailed("switch", describe(exc)) from None

    def _entry(
        self, client: ReplicaClient, phase: str, pending: Callable[[], apis.GetModelStatusResponse] | None = None
    ) -> VersionStatus | None:
        try:
            response = pending() if pending is not None else client.status(self.model, self.target)
        except ServingError as exc:
            if exc.code == "NOT_FOUND":  # not discovered yet: the next filesystem poll aspires it
                return None
            raise ReplicaFailed(phase, describe(exc)) from None
        entries = [version_status(v) for v in response.model_version_status]
        self.observed.note_status(client.replica, self.model, entries)
        return next((e for e in entries if e.version == self.target), None)

    def _served(self, client: ReplicaClient, version: int, *, missing_ok: bool = True) -> Signature | None:
        try:
            response = client.metadata(self.model, version=version)
        except ServingError as exc:
            if exc.code == "NOT_FOUND" and missing_ok:
                return None
            raise ReplicaFailed("load", describe(exc)) from None
        signature = served_signature(response)
        self.observed.record(client.replica, self.model, version, signature)
        return signature

    def _reference(self, client: ReplicaClient) -> Signature | None:
        """The current version's signature as served here; from disk when this replica does not serve it."""
        if self.current is None or self.current == self.target:
            return None
        served = self.observed.get(client.replica, self.model, self.current) or self._served(client, self.current)
        return served or self.disk_reference
