"""Desired state, registry metadata and rollout operations in the store."""

from __future__ import annotations

from datetime import timedelta

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.fleet import Outcome, ReplicaResult, RolloutResult
from bot.store import Database
from tests.integration.store.conftest import T0

FRAUD = ModelState(
    name="fraud_detector",
    base_path="/models/fraud_detector",
    policy=VersionPolicy.specific([2, 3]),
    labels=(("canary", 3), ("stable", 2)),
    generation=5,
    stable_history=(3, 1),
)
CHURN = ModelState(name="churn", base_path="s3://bucket/churn", generation=1)


def test_desired_state_is_none_until_bootstrapped(db: Database) -> None:
    """A fresh database has no desired config, which differs from a saved empty config."""
    with db.uow() as uow:
        assert uow.desired.load() is None
        uow.desired.save(FleetConfig())
        uow.commit()
    with db.uow() as uow:
        assert uow.desired.load() == FleetConfig()
        assert uow.desired.revision() == 1


def test_desired_state_round_trips_and_replaces_the_whole_config(db: Database) -> None:
    """save() stores every model exactly; a later save without a model removes it."""
    config = FleetConfig().with_model(FRAUD).with_model(CHURN)
    with db.uow() as uow:
        uow.desired.save(config)
        uow.commit()
    with db.uow() as uow:
        assert uow.desired.load() == config
        assert uow.desired.get("fraud_detector") == FRAUD
        assert uow.desired.get("unknown") is None
        uow.desired.save(FleetConfig().with_model(FRAUD))
        uow.commit()
    with db.uow() as uow:
        assert uow.desired.load() == FleetConfig(models=(FRAUD,))
        assert uow.desired.get("churn") is None
        assert uow.desired.revision() == 2


def test_registry_records_and_replaces_metadata(db: Database) -> None:
    """record() stores metrics and a note per version; recording again replaces them."""
    with db.uow() as uow:
        uow.registry.record("fraud_detector", 2, {"auc": 0.91, "dataset": "2025-02"}, "baseline", "ci", T0)
        uow.registry.record("fraud_detector", 3, {"auc": 0.93}, "", "ci", T0)
        uow.registry.record("fraud_detector", 2, {"auc": 0.92}, "re-evaluated", "ci-2", T0 + timedelta(days=1))
        uow.registry.record("churn", 2, {}, "", "ci", T0)
        uow.commit()
    with db.uow() as uow:
        assert uow.registry.get("fraud_detector", 2) == {
            "model": "fraud_detector",
            "version": 2,
            "metrics": {"auc": 0.92},
            "note": "re-evaluated",
            "actor": "ci-2",
            "at": T0 + timedelta(days=1),
        }
        assert uow.registry.get("fraud_detector", 9) is None
        assert list(uow.registry.for_model("fraud_detector")) == [2, 3]


def test_operations_record_per_replica_outcome(db: Database, make_request) -> None:  # type: ignore[no-untyped-def]
    """An operation is started, then finished with its outcome and one row per replica."""
    with db.uow() as uow:
        req = uow.requests.add(make_request())
        op_id = uow.operations.start(req.id, req.model, T0)
        uow.commit()
    result = RolloutResult(
        outcome=Outcome.PARTIAL,
        replicas=(
            ReplicaResult("10.0.0.1:8500", True, "verify", "serves 2", 2),
            ReplicaResult("10.0.0.2:8500", False, "load", "NOT_FOUND: no servable", None),
        ),
        message="1 of 2 replicas serve v2",
        phases_run=("load", "switch"),
        elapsed_s=1.25,
    )
    with db.uow() as uow:
        assert uow.operations.for_request(req.id)[0]["outcome"] is None
        uow.operations.finish(op_id, result, T0 + timedelta(seconds=2))
        uow.commit()
    with db.uow() as uow:
        [op] = uow.operations.for_request(req.id)
    assert op["id"] == op_id and op["outcome"] == "PARTIAL" and op["finished_at"] == T0 + timedelta(seconds=2)
    assert op["phases_run"] == ["load", "switch"] and op["elapsed_s"] == 1.25
    assert op["replicas"] == [
        {"replica": "10.0.0.1:8500", "ok": True, "phase": "verify", "detail": "serves 2", "served_version": 2},
        {
            "replica": "10.0.0.2:8500",
            "ok": False,
            "phase": "load",
            "detail": "NOT_FOUND: no servable",
            "served_version": None,
        },
    ]


def test_interrupted_lists_operations_that_never_finished(db: Database) -> None:
    """Operations started before the cut-off and never finished are reported for recovery."""
    with db.uow() as uow:
        old = uow.operations.start(None, "fraud_detector", T0)
        done = uow.operations.start(None, "fraud_detector", T0)
        uow.operations.start(None, "churn", T0 + timedelta(hours=1))
        uow.operations.finish(done, RolloutResult(Outcome.SUCCEEDED, (), "ok"), T0)
        uow.commit()
    with db.uow() as uow:
        assert [op["id"] for op in uow.operations.interrupted(T0 + timedelta(minutes=10))] == [old]
        assert uow.operations.get(done)["outcome"] == "SUCCEEDED"
