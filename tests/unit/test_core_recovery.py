"""The recovery decision (bot/core/recovery.py): what a dead process's rollout left, and what to send."""

from __future__ import annotations

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.fleet import Outcome
from bot.core.recovery import Found, classify, decide

BEFORE = ModelState("m", "/models/m", policy=VersionPolicy.specific([2, 3]), labels=(("stable", 3),), generation=4)
SWITCHED = ModelState("m", "/models/m", policy=VersionPolicy.specific([2, 3]), labels=(("stable", 2),), generation=5)
OTHER = ModelState("other", "/models/o", policy=VersionPolicy.specific([7]), labels=(("stable", 7),), generation=1)
PERSISTED = FleetConfig((SWITCHED, OTHER))


def _decide(resolved: dict[str, int | str], silent: frozenset[str] = frozenset(), before: ModelState | None = BEFORE):
    findings = classify(resolved, 2, silent)
    return findings, decide(findings, persisted=PERSISTED, model="m", before=before, target=2, label="stable")


def test_every_replica_switched_is_finished_as_succeeded() -> None:
    """All replicas resolve the label to the target: the persisted config is confirmed, SUCCEEDED."""
    _, recovery = _decide({"r1": 2, "r2": 2, "r3": 2})
    assert recovery is not None and recovery.finish and recovery.outcome is Outcome.SUCCEEDED
    assert recovery.config == PERSISTED and recovery.expect == 2


def test_a_split_fleet_is_restored_to_the_state_before_the_rollout() -> None:
    """Two switched, one not: the model's state before the operation is sent everywhere (exactly, generation
    included), other models are untouched, FAILED."""
    findings, recovery = _decide({"r1": 2, "r2": 2, "r3": 3})
    assert [f.found for f in findings] == [Found.SWITCHED, Found.SWITCHED, Found.NOT_SWITCHED]
    assert recovery is not None and not recovery.finish and recovery.outcome is Outcome.FAILED
    restored = recovery.config.model("m")
    assert restored == BEFORE
    assert recovery.config.model("other") == OTHER and recovery.expect == 3


def test_an_unreachable_replica_makes_a_finished_rollout_partial() -> None:
    """Every replica that answers is switched but one does not answer: finished, PARTIAL."""
    findings, recovery = _decide({"r1": 2, "r2": 2, "r3": "UNAVAILABLE: connection refused"}, frozenset({"r3"}))
    assert findings[2].found is Found.UNREACHABLE
    assert recovery is not None and recovery.finish and recovery.outcome is Outcome.PARTIAL


def test_an_error_that_is_an_answer_counts_as_not_switched() -> None:
    """A replica that answers with an error (label unknown there) is not switched, so the state is restored."""
    findings, recovery = _decide({"r1": 2, "r2": "NOT_FOUND: label stable not found", "r3": 2})
    assert findings[1].found is Found.NOT_SWITCHED
    assert recovery is not None and not recovery.finish


def test_nothing_is_decided_when_no_replica_answers() -> None:
    """No answer at all: nothing can be known, so nothing is sent (the sweep tries again)."""
    _, recovery = _decide({"r1": "down", "r2": "down", "r3": "down"}, frozenset({"r1", "r2", "r3"}))
    assert recovery is None


def test_a_model_new_to_the_fleet_is_removed_again() -> None:
    """A first rollout of a model (no state before it) that did not switch everywhere removes the model."""
    _, recovery = _decide({"r1": 3, "r2": 3, "r3": 3}, before=None)
    assert recovery is not None and recovery.config.model("m") is None and recovery.expect is None
    assert recovery.config.model("other") == OTHER
