"""Pre-flight of a rollout (DESIGN.md §4 step 1): everything that can be checked before anything is sent.

The hard rule: never send a config containing a model whose base_path holds no version. TF Serving would
wait forever for it inside ReloadConfig while holding its config lock, and every later reload would queue
behind it until the server is restarted (reference/tfserving.md §1.4, §9.1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.core.desired import FleetConfig, ModelState
from bot.core.errors import PreflightFailed
from bot.core.ports import VersionCatalog
from bot.core.rollout import RolloutPlan
from bot.core.signatures import Signature, compatibility_problems


@dataclass(frozen=True)
class Checked:
    """The whole configs each phase sends, and the signatures read from disk."""

    load: FleetConfig
    switch: FleetConfig
    trim: FleetConfig
    revert: FleetConfig  # what phase 1 sends back when the target cannot be loaded
    target_signature: Signature
    current_signature: Signature | None  # None when nothing serves yet, or the current version left the disk


def check_rollout(plan: RolloutPlan, base: FleetConfig, catalog: VersionCatalog) -> Checked:
    """Raise PreflightFailed (a user-facing sentence) unless the plan is safe to start."""
    name, target = plan.spec.model, plan.spec.to_version
    _check_unchanged(plan, base)
    on_disk = catalog.versions(plan.before.base_path)
    if target not in on_disk:
        listed = ", ".join(map(str, on_disk)) or "none"
        raise PreflightFailed(
            f"version {target} of {name} is not on disk under {plan.before.base_path} (versions found: {listed})"
        )
    load, switch, trim = base.with_model(plan.load), base.with_model(plan.switch), base.with_model(plan.trim)
    problems = unservable_models([load, switch, trim], catalog)
    if problems:
        raise PreflightFailed("refusing to send a config TF Serving would hang on: " + "; ".join(problems))
    target_sig, current_sig = _disk_signatures(plan, catalog)
    revert = base.with_model(replace(plan.before, generation=plan.load.generation + 1))
    if base.model(name) is None:
        revert = base
    return Checked(load, switch, trim, revert, target_signature=target_sig, current_signature=current_sig)


def unservable_models(configs: list[FleetConfig], catalog: VersionCatalog) -> list[str]:
    """Models the configs would ask for but that have no version (or none of their `specific` ones) on disk."""
    problems: dict[str, str] = {}
    listed: dict[str, tuple[int, ...]] = {}
    for config in configs:
        for model in config.models:
            if model.name in problems:
                continue
            found = listed.setdefault(model.base_path, catalog.versions(model.base_path))
            problem = _unservable(model, found)
            if problem:
                problems[model.name] = problem
    return list(problems.values())


def check_served(name: str, reference: Signature | None, served: Signature | None, where: str) -> str | None:
    """Why the loaded target's signature (from GetModelMetadata) must not be switched to, or None."""
    if served is None:
        return f"{where}: the loaded version of {name} has no serving_default signature"
    if reference is None:
        return None
    problems = compatibility_problems(reference, served)
    if not problems:
        return None
    return f"{where}: serving_default of the loaded target is incompatible: " + "; ".join(problems)


def _unservable(model: ModelState, on_disk: tuple[int, ...]) -> str | None:
    if not on_disk:
        return f"{model.name} has no version with a saved_model.pb under {model.base_path}"
    if model.policy.kind == "specific" and model.policy.versions and not set(model.policy.versions) & set(on_disk):
        wanted = ", ".join(map(str, model.policy.versions))
        return f"none of the versions {wanted} of {model.name} is on disk under {model.base_path}"
    return None


def _check_unchanged(plan: RolloutPlan, base: FleetConfig) -> None:
    current = base.model(plan.spec.model)
    fresh = plan.before.policy.versions == () and not plan.before.labels  # a model not served yet
    changed = current.served_config() != plan.before.served_config() if current is not None else not fresh
    if changed:
        raise PreflightFailed(f"the desired state of {plan.spec.model} changed since this rollout was planned")


def _disk_signatures(plan: RolloutPlan, catalog: VersionCatalog) -> tuple[Signature, Signature | None]:
    name, target, current = plan.spec.model, plan.spec.to_version, plan.from_version
    target_sig = catalog.signature(plan.before.base_path, target)
    if target_sig is None:
        raise PreflightFailed(f"version {target} of {name} has no readable serving_default signature on disk")
    if current is None or current == target:
        return target_sig, None
    current_sig = catalog.signature(plan.before.base_path, current)
    if current_sig is not None:
        problems = compatibility_problems(current_sig, target_sig)
        if problems:
            raise PreflightFailed(
                f"serving_default of {name} version {target} is incompatible with version {current}: "
                + "; ".join(problems)
            )
    return target_sig, current_sig
