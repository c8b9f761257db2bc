"""Drift (bot/core/drift.py): which answering replicas differ from the desired state, and how."""

from __future__ import annotations

from bot.core.desired import ModelState, VersionPolicy
from bot.core.drift import model_drift
from bot.core.fleet import ReplicaStatus, VersionState, VersionStatus

STATE = ModelState("m", "/models/m", policy=VersionPolicy.specific([2, 3]), labels=(("stable", 3),))


def _status(replica: str, *versions: tuple[int, VersionState]) -> ReplicaStatus:
    return ReplicaStatus(replica, tuple(VersionStatus(v, s) for v, s in versions))


OK = ((2, VersionState.AVAILABLE), (3, VersionState.AVAILABLE))


def test_replicas_that_match_are_in_sync() -> None:
    """Desired versions loaded and the label resolving to the desired version: no drift."""
    drift = model_drift(STATE, (_status("r1", *OK), _status("r2", *OK)), {"r1": 3, "r2": 3}, "stable")
    assert not drift.drifted


def test_a_moved_label_and_missing_versions_are_named_per_replica() -> None:
    """A label resolving elsewhere and a desired version not loaded are both reported, on that replica only."""
    statuses = (_status("r1", *OK), _status("r2", (3, VersionState.AVAILABLE)))
    drift = model_drift(STATE, statuses, {"r1": 3, "r2": 2}, "stable")
    assert list(drift.replicas) == ["r2"]
    assert drift.replicas["r2"] == ("has not loaded v2", "`stable` resolves to v2, not v3")


def test_extra_versions_and_a_missing_model_are_drift_but_unreachable_is_not() -> None:
    """Serving a version the desired state lacks, or not serving the model at all, is drift; no answer is not."""
    statuses = (
        _status("r1", *OK, (4, VersionState.AVAILABLE)),
        ReplicaStatus("r2", error="model not found", error_code="NOT_FOUND"),
        ReplicaStatus("r3", error="connection refused", error_code="UNAVAILABLE"),
    )
    drift = model_drift(STATE, statuses, {"r1": 3, "r2": "NOT_FOUND", "r3": "UNAVAILABLE"}, "stable")
    assert drift.replicas == {
        "r1": ("serves v4 that the desired state does not",),
        "r2": ("does not serve the model at all",),
    }


def test_a_version_still_loading_is_not_missing() -> None:
    """A desired version that is LOADING is on its way, not drift."""
    statuses = (_status("r1", (2, VersionState.LOADING), (3, VersionState.AVAILABLE)),)
    assert not model_drift(STATE, statuses, {"r1": 3}, "stable").drifted
