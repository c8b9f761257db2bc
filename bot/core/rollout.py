"""The rollout plan of DESIGN.md §4, computed purely from the desired state.

A rollout is three successive desired states of one model, each sent whole to every replica. The code names them
for what they do; DESIGN §4 numbers them (load = phase 1, switch = phase 2, trim = step 4), and users see the names:
  load   - the target added to `specific` (TF Serving loads it at its next filesystem poll);
  switch - the label moved to the target (`routing: labels`, synchronous inside ReloadConfig)
           or every higher version dropped (`routing: latest`, unversioned traffic follows when they unload);
  trim   - versions beyond `keep_warm` dropped; labelled versions are never dropped.
The executor (bot/serving/rollout.py) skips a phase whose state equals the previous one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from bot.core.desired import ModelState
from bot.core.smoke import GoldenRequest

HISTORY_LIMIT = 10


class Routing(StrEnum):
    """How clients address the model: by version label, or unversioned (highest loaded version)."""

    LABELS = "labels"
    LATEST = "latest"


@dataclass(frozen=True)
class ChangeSpec:
    """What the user asked for: serve `to_version` of `model` under `label` (or as latest)."""

    model: str
    to_version: int
    label: str = "stable"
    routing: Routing = Routing.LABELS
    keep_warm: int = 1
    smoke: GoldenRequest | None = None  # the model's golden request: sent to the loaded target before the switch


@dataclass(frozen=True)
class RolloutPlan:
    spec: ChangeSpec
    before: ModelState
    from_version: int | None
    load: ModelState
    switch: ModelState
    trim: ModelState

    @property
    def final(self) -> ModelState:
        return self.trim

    def removed_versions(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.load.policy.versions) - set(self.trim.policy.versions)))


def current_version(state: ModelState, routing: Routing, label: str = "stable") -> int | None:
    """The version clients get today according to the desired state."""
    if routing is Routing.LABELS:
        return state.label(label)
    versions = state.policy.versions
    return max(versions) if state.policy.kind == "specific" and versions else None


def base_versions(state: ModelState, loaded: Iterable[int]) -> set[int]:
    """The versions the model serves now, as an explicit set (non-specific policies use what is loaded)."""
    if state.policy.kind == "specific":
        return set(state.policy.versions)
    return set(loaded)


def plan_rollout(before: ModelState, spec: ChangeSpec, loaded: Iterable[int] = ()) -> RolloutPlan:
    """Plan the three phases. `loaded` is what the fleet has AVAILABLE (used for non-specific policies)."""
    generation = before.generation + 1
    target = spec.to_version
    base = base_versions(before, loaded)
    frm = current_version(before, spec.routing, spec.label)
    if frm is None and spec.routing is Routing.LATEST and base:
        frm = max(base)

    load = replace(before.with_versions(base | {target}), generation=generation)

    labels = before.label_map()
    if spec.routing is Routing.LABELS:
        labels[spec.label] = target
        switch = load.with_labels(labels)
    else:
        kept = {v for v in load.policy.versions if v <= target}
        # A label on a dropped version would make every later reload fail (tfserving.md §3.1).
        labels = {name: (v if v in kept else target) for name, v in labels.items()}
        switch = load.with_versions(kept).with_labels(labels)

    moves_stable = spec.routing is Routing.LATEST or spec.label == "stable"
    history = before.stable_history
    if moves_stable and frm is not None and frm != target:
        history = (frm, *[v for v in history if v not in (frm, target)])[:HISTORY_LIMIT]
    switch = replace(switch, stable_history=history)

    retained = {target, *switch.label_map().values()}
    warm = [v for v in history if v in switch.policy.versions]
    if spec.routing is Routing.LATEST:
        warm = [v for v in warm if v <= target]
    retained.update(warm[: max(spec.keep_warm, 0)])
    trim = switch.with_versions(v for v in switch.policy.versions if v in retained)

    return RolloutPlan(spec=spec, before=before, from_version=frm, load=load, switch=switch, trim=trim)
