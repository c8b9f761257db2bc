"""AvailabilityPreservingPolicy (core/availability_preserving_policy.cc): load new versions before unloading."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


class HarnessState(Enum):
    """LoaderHarness states, collapsed to those the policy and the status report tell apart."""

    NEW = "new"
    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"
    DISABLED = "disabled"
    ERROR = "error"


class Action(Enum):
    LOAD = "load"
    UNLOAD = "unload"


@dataclass(frozen=True)
class VersionSnapshot:
    version: int
    state: HarnessState
    aspired: bool


def next_action(versions: Sequence[VersionSnapshot]) -> tuple[Action, int] | None:
    """The one action for a model: unload the lowest unaspired READY version when that keeps the model
    available, else load the highest NEW aspired version, else nothing."""
    has_aspired = any(v.aspired for v in versions)
    has_aspired_ready = any(v.aspired and v.state is HarnessState.READY for v in versions)
    unaspired_ready = [v.version for v in versions if not v.aspired and v.state is HarnessState.READY]
    if unaspired_ready and (not has_aspired or has_aspired_ready or len(unaspired_ready) > 1):
        return Action.UNLOAD, min(unaspired_ready)
    new_aspired = [v.version for v in versions if v.aspired and v.state is HarnessState.NEW]
    if new_aspired:
        return Action.LOAD, max(new_aspired)
    return None
