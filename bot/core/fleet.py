"""What the fleet reports, as domain values (converted from protobuf in bot/serving)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class VersionState(StrEnum):
    """ModelVersionStatus.State names (reference/tfserving.md §4)."""

    UNKNOWN = "UNKNOWN"
    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: VersionState
    error_code: str = "OK"  # tensorflow.error.Code name
    error_message: str = ""


@dataclass(frozen=True)
class ReplicaStatus:
    """GetModelStatus of one model on one replica; `error` is set when the call itself failed."""

    replica: str
    versions: tuple[VersionStatus, ...] = ()
    error: str | None = None
    error_code: str | None = None

    def state_of(self, version: int) -> VersionState | None:
        for v in self.versions:
            if v.version == version:
                return v.state
        return None

    def available(self) -> tuple[int, ...]:
        return tuple(sorted(v.version for v in self.versions if v.state is VersionState.AVAILABLE))


class Outcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"


@dataclass(frozen=True)
class ReplicaResult:
    """How one replica ended a rollout; `detail` is a short human sentence (TF Serving's message kept)."""

    replica: str
    ok: bool
    phase: str  # "preflight" | "load" | "switch" | "verify" | "trim"
    detail: str = ""
    served_version: int | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """Emitted during a rollout so front ends can show live per-replica progress."""

    phase: str  # "load" | "switch" | "verify" | "trim" | "done"
    replica: str  # "" for fleet-wide events
    state: str  # e.g. "LOADING", "AVAILABLE", "verified", "failed"
    done: int  # replicas finished with this phase
    total: int
    detail: str = ""


@dataclass(frozen=True)
class RolloutResult:
    outcome: Outcome
    replicas: tuple[ReplicaResult, ...]
    message: str
    phases_run: tuple[str, ...] = ()  # phases that actually sent a reload (warm rollbacks skip "load")
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class ModelReading:
    """One model read on every replica: its GetModelStatus per replica, and (when asked) what its route resolves
    to per replica (the version, or the error text)."""

    statuses: tuple[ReplicaStatus, ...]
    resolved: Mapping[str, int | str] | None = None
