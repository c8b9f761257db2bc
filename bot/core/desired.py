"""The desired ModelServerConfig, as domain values.

TF Serving has no "get config" call and every reload replaces the whole model list, so the bot
owns this state (in its database) and always sends all of it. See reference/tfserving.md §1.4.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

PolicyKind = Literal["specific", "latest", "all"]


@dataclass(frozen=True)
class VersionPolicy:
    """`model_version_policy`: the versions TF Serving aspires to load."""

    kind: PolicyKind = "latest"
    versions: tuple[int, ...] = ()  # for "specific", ascending, unique
    num_versions: int = 1  # for "latest"; 0 is treated as 1 by TF Serving

    @staticmethod
    def specific(versions: Iterable[int]) -> VersionPolicy:
        return VersionPolicy(kind="specific", versions=tuple(sorted(set(versions))))


@dataclass(frozen=True)
class ModelState:
    """One model's entry in the desired config, plus the bot's own bookkeeping."""

    name: str
    base_path: str
    platform: str = "tensorflow"
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: tuple[tuple[str, int], ...] = ()  # sorted (label, version) pairs
    generation: int = 0  # bumped on every change; approvals bind to it
    stable_history: tuple[int, ...] = ()  # previous stable versions, most recent first (for keep_warm)
    # The serialized ModelConfig as adopted from the fleet's models.config, kept when the fields above cannot
    # reproduce it (logging_config, a deprecated model_type, an unset policy...). The bot sends it back with only
    # the version policy and labels it changed, so nothing it does not manage is lost (issue 8).
    adopted: bytes = b""

    def label(self, name: str) -> int | None:
        return dict(self.labels).get(name)

    def label_map(self) -> dict[str, int]:
        return dict(self.labels)

    def resolves(self, label: str | None) -> int | None:
        """The version a replica serving this state resolves `label` to (None: unversioned requests, which
        get the highest version of a `specific` policy); None when it cannot be told from the config."""
        if label is not None:
            return self.label(label)
        versions = self.policy.versions
        return max(versions) if self.policy.kind == "specific" and versions else None

    def with_labels(self, labels: Mapping[str, int]) -> ModelState:
        return replace(self, labels=tuple(sorted(labels.items())))

    def with_versions(self, versions: Iterable[int]) -> ModelState:
        return replace(self, policy=VersionPolicy.specific(versions))

    def served_config(self) -> tuple[object, ...]:
        """What TF Serving sees of this model (excludes bot bookkeeping)."""
        return (self.name, self.base_path, self.platform, self.policy, self.labels, self.adopted)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "base_path": self.base_path,
            "platform": self.platform,
            "policy": {
                "kind": self.policy.kind,
                "versions": list(self.policy.versions),
                "num_versions": self.policy.num_versions,
            },
            "labels": dict(self.labels),
            "generation": self.generation,
            "stable_history": list(self.stable_history),
            # Only when present, so a state without one keeps its stored form and digest.
            **({"adopted": base64.b64encode(self.adopted).decode("ascii")} if self.adopted else {}),
        }

    @staticmethod
    def from_dict(data: Mapping[str, object]) -> ModelState:
        policy = data.get("policy") or {}
        assert isinstance(policy, Mapping)
        labels = data.get("labels") or {}
        assert isinstance(labels, Mapping)
        return ModelState(
            name=str(data["name"]),
            base_path=str(data["base_path"]),
            platform=str(data.get("platform", "tensorflow")),
            policy=VersionPolicy(
                kind=policy.get("kind", "latest"),
                versions=tuple(int(v) for v in policy.get("versions", ())),
                num_versions=int(policy.get("num_versions", 1)),
            ),
            labels=tuple(sorted((str(k), int(v)) for k, v in labels.items())),
            generation=int(data.get("generation", 0)),  # type: ignore[call-overload]
            stable_history=tuple(int(v) for v in data.get("stable_history", ())),  # type: ignore[attr-defined]
            adopted=base64.b64decode(str(data.get("adopted", "")), validate=True),
        )

    def digest(self) -> str:
        """Stable hash of everything TF Serving sees plus the generation; approvals bind to it."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class FleetConfig:
    """The whole desired ModelServerConfig: every model the fleet must serve, sorted by name."""

    models: tuple[ModelState, ...] = ()

    def model(self, name: str) -> ModelState | None:
        for m in self.models:
            if m.name == name:
                return m
        return None

    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def with_model(self, state: ModelState) -> FleetConfig:
        others = [m for m in self.models if m.name != state.name]
        return FleetConfig(models=tuple(sorted([*others, state], key=lambda m: m.name)))
