"""The serving adapter against a real 3-replica devstack fleet over mTLS (DESIGN.md §4)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.errors import PreflightFailed, ServingError
from bot.core.fleet import Outcome, VersionState
from bot.core.rollout import ChangeSpec, Routing, plan_rollout
from bot.devstack.certs import DevCerts
from bot.serving import channel
from bot.serving.config_proto import read_model_config_file
from bot.serving.fleet import GrpcFleet
from tests.devstack_support import MODEL
from tests.integration.serving_rig import Rig, settings_for, start_rig

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def rig(fleet: Any, devstack_certs: DevCerts, demo_models: Path, tmp_path: Path) -> Iterator[Rig]:
    started = start_rig(fleet, devstack_certs, demo_models, model_config_file=tmp_path / "serving" / "models.config")
    yield started
    started.fleet.close()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the RPCs the bot makes, by method."""
    counted: Counter[str] = Counter()
    for name in ("status", "reload", "metadata"):
        original = getattr(channel.ReplicaClient, name)

        def spy(self: Any, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            counted[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(channel.ReplicaClient, name, spy)
    return counted


def test_cold_rollback_by_label(rig: Rig) -> None:
    """Rolling stable back to an unloaded version loads it everywhere, moves the label, then trims."""
    result = rig.rollout(1)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.phases_run == ("load", "switch", "trim")
    assert set(rig.resolved().values()) == {1}
    load, switch, trim = (c.model(MODEL) for c in rig.persisted)
    assert load is not None and switch is not None and trim is not None
    assert (load.policy.versions, load.label("stable")) == ((1, 2, 3), 3)
    assert switch.label("stable") == 1
    assert trim.policy.versions == (1, 3)  # 3 kept warm for an instant roll forward
    assert all(r.ok and r.served_version == 1 for r in result.replicas)
    verified = [e for e in rig.events if e.phase == "verify" and e.state == "verified"]
    assert sorted(e.replica for e in verified) == sorted(rig.dev.targets)
    switched = [e.done for e in rig.events if e.phase == "switch" and e.state == "reloaded"]
    assert switched == list(range(1, len(rig.dev.targets) + 1))  # progress counts replicas as they switch


def test_warm_rollback_is_one_reload_round_and_one_verification_round(rig: Rig, calls: Counter[str]) -> None:
    """Back to a version kept warm: no load phase, and exactly one reload and one metadata call per replica."""
    assert rig.rollout(2).outcome is Outcome.SUCCEEDED  # observes what each replica serves
    calls.clear()
    result = rig.rollout(3)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.phases_run == ("switch",)
    assert calls == Counter(reload=3, metadata=3)
    assert set(rig.resolved().values()) == {3}


def test_rollback_with_latest_routing(fleet: Any, devstack_certs: DevCerts, demo_models: Path) -> None:
    """With routing latest the higher version is dropped and unversioned requests end on the target."""
    rig = start_rig(fleet, devstack_certs, demo_models, labels=False)
    try:
        assert set(rig.resolved(None).values()) == {3}
        result = rig.rollout(2, routing=Routing.LATEST)
        assert result.outcome is Outcome.SUCCEEDED, result.message
        assert set(rig.resolved(None).values()) == {2}
        assert rig.state.policy.versions == (2,)
    finally:
        rig.fleet.close()


def test_version_missing_on_disk_is_refused_before_any_reload(rig: Rig, calls: Counter[str]) -> None:
    """A version that is not on disk is refused in pre-flight: nothing persisted, nothing sent."""
    result = rig.rollout(9)
    assert result.outcome is Outcome.FAILED
    assert "not on disk" in result.message
    assert rig.persisted == [] and result.phases_run == ()
    assert calls["reload"] == 0
    assert set(rig.resolved().values()) == {3}


def test_incompatible_signature_is_refused(rig: Rig, calls: Counter[str]) -> None:
    """Version 4 expects 32 features instead of 20: refused, naming the input, before any reload."""
    result = rig.rollout(4)
    assert result.outcome is Outcome.FAILED
    assert "'features' changed from float[None, 20] to float[None, 32]" in result.message
    assert calls["reload"] == 0 and rig.persisted == []


def test_replica_down_gives_partial_naming_it(rig: Rig) -> None:
    """With one replica killed the other two switch, and the result names the dead one with gRPC's error."""
    down = rig.dev.targets[2]
    rig.dev.kill(2)
    result = rig.rollout(1)
    assert result.outcome is Outcome.PARTIAL
    assert down in result.message and "UNAVAILABLE" in result.message
    failed = [r for r in result.replicas if not r.ok]
    assert [r.replica for r in failed] == [down]
    alive = {r: v for r, v in rig.resolved().items() if r != down}
    assert set(alive.values()) == {1}


def test_stalled_load_fails_after_the_deadline_with_no_label_moved(
    fleet: Any, devstack_certs: DevCerts, demo_models: Path
) -> None:
    """A replica that never finishes loading makes the rollout FAIL at the deadline; the load is reverted."""
    stall = {2: {"devstack_stall": [f"{MODEL}:1"]}}
    rig = start_rig(fleet, devstack_certs, demo_models, per_replica=stall, converge_timeout_s=1.5)
    try:
        stalled = rig.dev.targets[2]
        result = rig.rollout(1)
        assert result.outcome is Outcome.FAILED
        assert "no label moved" in result.message and stalled in result.message
        assert result.elapsed_s >= 1.5
        assert set(rig.resolved().values()) == {3}
        assert rig.state.policy.versions == (2, 3) and rig.state.label("stable") == 3  # reverted and persisted
        assert all(not r.ok for r in result.replicas)
    finally:
        rig.fleet.close()


@pytest.mark.parametrize("client", ["rogue", "none"])
def test_untrusted_client_is_refused_at_the_handshake(rig: Rig, devstack_certs: DevCerts, client: str) -> None:
    """A certificate from another CA, or none at all, is refused by the replicas with a clear ServingError."""
    intruder = GrpcFleet(settings_for(rig.dev, devstack_certs, client=client))
    try:
        with pytest.raises(ServingError) as err:
            intruder.ping()
        assert err.value.code == "UNAVAILABLE"
        assert "client certificate" in str(err.value)
        assert all(s.error for s in intruder.model_status(MODEL))
    finally:
        intruder.close()


def test_model_config_file_follows_the_desired_state(rig: Rig, tmp_path: Path) -> None:
    """After a rollout the models.config on disk is the final config, readable as a ModelServerConfig."""
    assert rig.rollout(1).outcome is Outcome.SUCCEEDED
    written = read_model_config_file(tmp_path / "serving" / "models.config")
    state = written.model(MODEL)
    assert state is not None
    assert (state.policy.versions, state.label_map()) == ((1, 3), {"stable": 1})


def test_first_rollout_of_a_new_model_survives_a_reload_deadline(
    fleet: Any, devstack_certs: DevCerts, demo_models: Path
) -> None:
    """A reload adding a model blocks until it loads; the bot's deadline passes, it checks status and succeeds."""
    dev = fleet("model_config_list { }\n", 2, devstack_load_seconds=0.5)
    grpc_fleet = GrpcFleet(settings_for(dev, devstack_certs, rpc_timeout_s=0.2))
    try:
        before = ModelState(name=MODEL, base_path=str(demo_models), policy=VersionPolicy.specific(()))
        plan = plan_rollout(before, ChangeSpec(MODEL, 2))
        persisted: list[FleetConfig] = []
        result = grpc_fleet.rollout(plan, FleetConfig(), persisted.append, lambda e: None)
        assert result.outcome is Outcome.SUCCEEDED, result.message
        assert set(grpc_fleet.resolve(MODEL, "stable").values()) == {2}
    finally:
        grpc_fleet.close()


def test_fleet_queries(rig: Rig) -> None:
    """model_status, served_signature and resolve report what the replicas serve."""
    statuses = rig.fleet.model_status(MODEL)
    assert len(statuses) == 3 and all(s.state_of(3) is VersionState.AVAILABLE for s in statuses)
    signature = rig.fleet.served_signature(MODEL, 3)
    assert signature is not None and signature.describe().startswith("(features: float[None, 20])")
    assert rig.fleet.served_signature(MODEL, 1) is None  # not loaded anywhere
    unknown = rig.fleet.resolve(MODEL, "nope")
    assert all(isinstance(v, str) and "INVALID_ARGUMENT" in v for v in unknown.values())
    rig.fleet.ping()


def test_apply_refuses_a_model_with_no_version_on_disk(rig: Rig, tmp_path: Path, calls: Counter[str]) -> None:
    """apply() never sends a model whose base_path has no version: TF Serving would hang on it forever."""
    empty = tmp_path / "empty_model"
    empty.mkdir()
    config = rig.base.with_model(ModelState(name="ghost", base_path=str(empty), policy=VersionPolicy.specific([1])))
    with pytest.raises(PreflightFailed, match="ghost"):
        rig.fleet.apply(config)
    assert calls["reload"] == 0
