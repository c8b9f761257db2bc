"""Hand-written fakes of the service's ports (STYLE.md: fakes over mocks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.desired import FleetConfig
from bot.core.fleet import (
    ModelReading,
    Outcome,
    ProgressEvent,
    ReplicaResult,
    ReplicaStatus,
    RolloutResult,
    VersionState,
    VersionStatus,
)
from bot.core.rollout import RolloutPlan, Routing
from bot.core.signatures import Signature, TensorSpec
from bot.core.smoke import GoldenRequest, SmokeVerdict

DEMO_SIGNATURE = Signature(
    "tensorflow/serving/predict",
    {"features": TensorSpec("DT_FLOAT", (-1, 20))},
    {"score": TensorSpec("DT_FLOAT", (-1, 1))},
)
OTHER_SIGNATURE = Signature(
    "tensorflow/serving/predict",
    {"features": TensorSpec("DT_FLOAT", (-1, 32))},
    {"score": TensorSpec("DT_FLOAT", (-1, 1))},
)


@dataclass
class FakeCatalog:
    """Versions 'on disk' per base_path; version 4 has an incompatible signature like the demo models."""

    on_disk: dict[str, tuple[int, ...]] = field(default_factory=dict)
    default: tuple[int, ...] = (1, 2, 3, 4)

    def versions(self, base_path: str) -> tuple[int, ...]:
        return self.on_disk.get(base_path, self.default)

    def signature(self, base_path: str, version: int) -> Signature | None:
        if version not in self.versions(base_path):
            return None
        return OTHER_SIGNATURE if version == 4 else DEMO_SIGNATURE

    def metadata(self, base_path: str, version: int) -> Mapping[str, Any]:
        if version not in self.versions(base_path):
            return {}
        return {"metrics": {"auc": round(0.9 + version / 100, 3)}, "note": f"demo v{version}"}


@dataclass
class FakeFleet:
    """Replicas that load instantly; records every whole config it was sent (one entry per reload round)."""

    names: tuple[str, ...] = ("r1", "r2", "r3")
    down: set[str] = field(default_factory=set)
    sent: list[FleetConfig] = field(default_factory=list)
    rollouts: int = 0
    drift: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, replica) -> version a label resolves to
    on_rollout: Callable[[], None] | None = None  # called as a rollout starts
    after_rollout: Callable[[], None] | None = None  # called once every replica is switched
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def current(self) -> FleetConfig:
        return self.sent[-1] if self.sent else FleetConfig()

    def replicas(self) -> tuple[str, ...]:
        return self.names

    def model_status(self, model: str) -> tuple[ReplicaStatus, ...]:
        state = self.current.model(model)
        versions = tuple(VersionStatus(v, VersionState.AVAILABLE) for v in (state.policy.versions if state else ()))
        return tuple(
            ReplicaStatus(r, error="connection refused", error_code="UNAVAILABLE")
            if r in self.down
            else ReplicaStatus(r, tuple(sorted(versions, key=lambda v: -v.version)))
            for r in self.names
        )

    def served_signature(self, model: str, version: int | None = None) -> Signature | None:
        return DEMO_SIGNATURE

    def resolve(self, model: str, label: str | None = None) -> Mapping[str, int | str]:
        state = self.current.model(model)
        got: int | str = "not served"
        if state is not None:
            got = state.label(label) if label else max(state.policy.versions, default=0)  # type: ignore[assignment]
        return {r: ("unreachable" if r in self.down else self.drift.get((model, r), got)) for r in self.names}

    def survey(self, models: Sequence[str], routes: Mapping[str, str | None]) -> Mapping[str, ModelReading]:
        return {
            m: ModelReading(self.model_status(m), self.resolve(m, routes[m]) if m in routes else None) for m in models
        }

    def apply(self, config: FleetConfig, replicas: Sequence[str] | None = None) -> Mapping[str, str | None]:
        with self._lock:
            self.sent.append(config)
        return {r: ("unreachable" if r in self.down else None) for r in self.names if replicas is None or r in replicas}

    def rollout(
        self,
        plan: RolloutPlan,
        base: FleetConfig,
        persist: Callable[[FleetConfig], None],
        progress: Callable[[ProgressEvent], None],
    ) -> RolloutResult:
        started = time.monotonic()
        with self._lock:
            self.rollouts += 1
        if self.on_rollout:
            self.on_rollout()
        phases = []
        for name, state in (("load", plan.load), ("switch", plan.switch), ("trim", plan.trim)):
            config = base.with_model(state)
            if config == self.current:
                continue
            persist(config)
            self.apply(config)
            phases.append(name)
            for i, r in enumerate(self.names, 1):
                progress(ProgressEvent(name, r, "done", i, len(self.names)))
        up = [r for r in self.names if r not in self.down]
        label = plan.spec.label if plan.spec.routing is Routing.LABELS else "latest"
        results = tuple(
            ReplicaResult(
                r,
                r in up,
                "verify",
                f"{label} -> v{plan.spec.to_version}" if r in up else "unreachable",
                plan.spec.to_version if r in up else None,
            )
            for r in self.names
        )
        outcome = Outcome.SUCCEEDED if len(up) == len(self.names) else (Outcome.PARTIAL if up else Outcome.FAILED)
        if self.after_rollout:
            self.after_rollout()
        return RolloutResult(outcome, results, "", tuple(phases), time.monotonic() - started)

    def smoke_test(
        self, model: str, version: int, golden: GoldenRequest, signature: Signature | None = None
    ) -> tuple[SmokeVerdict, ...]:
        state = self.current.model(model)
        loaded = state is not None and version in state.policy.versions
        return tuple(
            SmokeVerdict(r, True, "answered as expected (fake)")
            if loaded and r not in self.down
            else SmokeVerdict(r, False, f"v{version} is not loaded here", loaded=False)
            for r in self.names
        )

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class FlakyDatabase:
    """Wraps a real Database; while `down` is true every new unit of work fails like an unreachable server."""

    real: Any
    down: bool = False
    refused: int = 0
    heal_after: int | None = None  # come back after this many refused attempts

    def uow(self, *, readonly: bool = False) -> Any:
        if self.down:
            self.refused += 1
            if self.heal_after is not None and self.refused >= self.heal_after:
                self.down = False
            from bot.core.errors import StoreUnavailable  # noqa: PLC0415 - keeps the fake's import list short

            raise StoreUnavailable("database at 127.0.0.1:5432 is unreachable (connection refused)")
        return self.real.uow(readonly=readonly)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)
