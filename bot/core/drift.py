"""Drift: a replica that answers but serves something other than the desired state (a replica restarted
without the shared model_config_file, or reloaded by hand by someone else). Pure: the readings come in.

A replica that does not answer is not drift (nothing can be re-sent to it); it is reported as unreachable by
`/model status` and the metrics instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.core.desired import ModelState
from bot.core.fleet import ReplicaStatus, VersionState


@dataclass(frozen=True)
class Episode:
    """An open drift episode as stored: the model, since when it drifts, and what differs on each replica."""

    model: str
    since: datetime
    replicas: dict[str, list[str]]  # replica -> what differs there


@dataclass(frozen=True)
class ModelDrift:
    """What differs, per drifted replica (an empty mapping: every answering replica is in sync)."""

    model: str
    replicas: Mapping[str, tuple[str, ...]]

    @property
    def drifted(self) -> bool:
        return bool(self.replicas)


def model_drift(
    state: ModelState,
    statuses: tuple[ReplicaStatus, ...],
    resolved: Mapping[str, int | str] | None,
    label: str | None,
) -> ModelDrift:
    """`resolved`: per replica what `label` (None: unversioned requests) resolves to, or the error text; None
    when it was not read (a model that is not managed)."""
    found: dict[str, tuple[str, ...]] = {}
    for status in statuses:
        if status.error is not None and status.error_code != "NOT_FOUND":
            continue  # unreachable: not drift
        problems = _versions(state, status)
        if status.error_code != "NOT_FOUND":
            problems += _route(state, status.replica, resolved, label)
        if problems:
            found[status.replica] = problems
    return ModelDrift(state.name, found)


def _versions(state: ModelState, status: ReplicaStatus) -> tuple[str, ...]:
    if status.error_code == "NOT_FOUND":
        return ("does not serve the model at all",)
    if state.policy.kind != "specific":
        return ()  # `latest`/`all` policies follow the disk: nothing exact to compare
    available = set(status.available())
    loading = {v.version for v in status.versions if v.state in (VersionState.START, VersionState.LOADING)}
    problems = []
    missing = [v for v in state.policy.versions if v not in available and v not in loading]
    if missing:
        problems.append("has not loaded " + _list(missing))
    extra = sorted(available - set(state.policy.versions))
    if extra:
        problems.append("serves " + _list(extra) + " that the desired state does not")
    return tuple(problems)


def _route(
    state: ModelState, replica: str, resolved: Mapping[str, int | str] | None, label: str | None
) -> tuple[str, ...]:
    expected = state.resolves(label)
    if resolved is None or expected is None or replica not in resolved:
        return ()
    seen = resolved[replica]
    if seen == expected:
        return ()
    route = f"`{label}`" if label else "unversioned requests"
    got = f"v{seen}" if isinstance(seen, int) else str(seen)
    return (f"{route} resolves to {got}, not v{expected}",)


def _list(versions: list[int]) -> str:
    return ", ".join(f"v{v}" for v in versions)
