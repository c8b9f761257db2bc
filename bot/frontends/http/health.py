"""Liveness and readiness, shaped for incidents.

`/readyz` is the database only (`not_ready` over `Database.check_schema`): a bot whose schema is at head can show
status and history and run rollbacks on the replicas that answer, and that is when it is needed most. So the
fleet's trouble never takes it out of the Service. `/healthz` answers 200 for as long as the process does, and
reports each replica's reachability as last probed (`FleetHealth`): probed in the background at most every
`max_age_s`, never waited for longer than `wait_s`, so a slow or dead fleet cannot fail the liveness probe either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bot.core.errors import ModelbotError
from bot.core.fleet import ReplicaStatus
from bot.core.ports import Fleet
from bot.frontends.http.router import Environ, Response

Check = tuple[str, Callable[[], None]]
PROBE_MODEL = ""  # GetModelStatus of no model: any answer from the server proves it up and our certificate accepted
# Codes only a server that accepted our TLS and read the call can send back. Anything else (UNAVAILABLE,
# DEADLINE_EXCEEDED, a refused handshake, a local error such as unreadable certificates) counts as unreachable.
ANSWERED = frozenset({"NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "UNIMPLEMENTED", "OUT_OF_RANGE"})
MAX_AGE_S = 5.0
WAIT_S = 0.5  # well inside the liveness probe's timeout


def not_ready(checks: list[Check]) -> str | None:
    """None when every check passes, else why the first failing one failed (safe to show: no secrets)."""
    for name, ping in checks:
        try:
            ping()
        except ModelbotError as exc:
            return f"{name}: {exc}"
        except Exception as exc:
            return f"{name}: {type(exc).__name__}"
    return None


def probe_fleet(fleet: Fleet) -> dict[str, Any]:
    """Every replica's reachability now: {"reachable": n, "total": n, "replicas": {address: {...}}}."""
    try:
        statuses = fleet.model_status(PROBE_MODEL)
    except Exception as exc:  # e.g. the headless Service's name does not resolve: no replica to ask at all
        reason = str(exc) if isinstance(exc, ModelbotError) else type(exc).__name__
        return {"reachable": 0, "total": 0, "replicas": {}, "error": reason}
    replicas = {s.replica: _reachability(s) for s in statuses}
    return {"reachable": sum(r["reachable"] for r in replicas.values()), "total": len(replicas), "replicas": replicas}


def _reachability(status: ReplicaStatus) -> dict[str, Any]:
    if status.error is None or status.error_code in ANSWERED:
        return {"reachable": True}
    return {"reachable": False, "error": f"{status.error_code}: {status.error}"}


class FleetHealth:
    """`/healthz`: always 200, with the fleet's per-replica reachability from the newest probe."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        max_age_s: float = MAX_AGE_S,
        wait_s: float = WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fleet = fleet
        self._max_age_s, self._wait_s, self._clock = max_age_s, wait_s, clock
        self._lock = threading.Lock()
        self._report: dict[str, Any] | None = None
        self._checked_at = 0.0
        self._probing: threading.Event | None = None  # set when the running probe is done

    def healthz(self, _: Environ) -> Response:
        return Response.json(200, {"status": "ok", "fleet": self.report()})

    def report(self) -> dict[str, Any]:
        """The newest probe's findings with their age; starts a probe when they are stale, one at a time."""
        running = self._start_probe_if_stale()
        if running is not None:
            running.wait(self._wait_s)
        with self._lock:
            if self._report is None:
                return {"checked": False, "detail": "the first probe of the fleet is still running"}
            return {"checked": True, "age_s": round(self._clock() - self._checked_at, 1), **self._report}

    def reachability(self) -> dict[str, bool] | None:
        """For /metrics: replica -> reachable as last probed (None before the first probe). Never waits; starts a
        background probe when the last one is stale, so the gauges stay fresh even when nobody calls /healthz."""
        self._start_probe_if_stale()
        with self._lock:
            if self._report is None:
                return None
            return {name: bool(r["reachable"]) for name, r in self._report["replicas"].items()}

    def _start_probe_if_stale(self) -> threading.Event | None:
        with self._lock:
            if self._report is not None and self._clock() - self._checked_at < self._max_age_s:
                return None
            if self._probing is None:
                self._probing = threading.Event()
                threading.Thread(target=self._probe, args=(self._probing,), name="healthz-fleet", daemon=True).start()
            return self._probing

    def _probe(self, done: threading.Event) -> None:
        try:
            report = probe_fleet(self._fleet)
            with self._lock:
                self._report, self._checked_at = report, self._clock()
        finally:  # whatever happened, the next stale report starts a new probe
            with self._lock:
                self._probing = None
            done.set()
