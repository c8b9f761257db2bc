"""Ports: what the service needs from the outside world. Adapters implement these (bot/serving, bot/store)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from bot.core.desired import FleetConfig
from bot.core.fleet import ModelReading, ProgressEvent, ReplicaStatus, RolloutResult
from bot.core.rollout import RolloutPlan
from bot.core.signatures import Signature
from bot.core.smoke import GoldenRequest, SmokeVerdict

ProgressSink = Callable[[ProgressEvent], None]


class Fleet(Protocol):
    """The TF Serving fleet, reached over mTLS gRPC (bot/serving/fleet.py)."""

    def replicas(self) -> tuple[str, ...]:
        """Current replica addresses (re-resolved for dns:/// targets)."""
        ...

    def model_status(self, model: str) -> tuple[ReplicaStatus, ...]:
        """GetModelStatus on every replica in parallel; a failed replica has `error` set."""
        ...

    def served_signature(self, model: str, version: int | None = None) -> Signature | None:
        """`serving_default` of a loaded version via GetModelMetadata (None if no replica serves it)."""
        ...

    def resolve(self, model: str, label: str | None = None) -> Mapping[str, int | str]:
        """Per replica, the version GetModelMetadata resolves `label` (or no version: latest) to,
        or the error text when it cannot be resolved there."""
        ...

    def survey(self, models: Sequence[str], routes: Mapping[str, str | None]) -> Mapping[str, ModelReading]:
        """Read many models at once (list, drift): GetModelStatus of every model on every replica, and for the
        models in `routes` what their label (None: unversioned requests) resolves to; all calls in flight
        together."""
        ...

    def apply(self, config: FleetConfig, replicas: Sequence[str] | None = None) -> Mapping[str, str | None]:
        """Send the whole config to every replica (or only `replicas`) in parallel; replica -> None on success
        or the error."""
        ...

    def rollout(
        self,
        plan: RolloutPlan,
        base: FleetConfig,
        persist: Callable[[FleetConfig], None],
        progress: ProgressSink,
    ) -> RolloutResult:
        """Run DESIGN.md §4: pre-flight, load, switch, verify, trim. `persist` is called with each whole
        config *before* it is sent, so the database always holds the newest config the fleet may have."""
        ...

    def smoke_test(
        self, model: str, version: int, golden: GoldenRequest, signature: Signature | None = None
    ) -> tuple[SmokeVerdict, ...]:
        """Send the golden request to `version` (by number) on every replica in parallel and judge each answer;
        read-only (`/model smoke`). `signature` (e.g. from disk) encodes the inputs, else GetModelMetadata does."""
        ...

    def ping(self) -> None:
        """Raise ServingError unless at least one replica answers."""
        ...


class VersionCatalog(Protocol):
    """Versions on disk (or object store) under a model's base_path (bot/serving/discovery.py)."""

    def versions(self, base_path: str) -> tuple[int, ...]:
        """Numeric sub-directories that hold a saved_model.pb, ascending."""
        ...

    def signature(self, base_path: str, version: int) -> Signature | None:
        """`serving_default` read from base_path/<version>/saved_model.pb, None if absent."""
        ...

    def metadata(self, base_path: str, version: int) -> Mapping[str, Any]:
        """base_path/<version>/metadata.json if present, else {}."""
        ...
