"""GetModelStatus and the version lifecycle on the emulator: texts, ordering, history, policy, discovery."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc

from bot.serving.protos import tfs_apis_pb2
from tests.devstack_support import (
    MODEL,
    FleetFactory,
    StubsFactory,
    config_text,
    model_entry,
    rpc_error,
    spec,
    wait_until,
)

ALL_THREE = config_text(model_entry(versions=[1, 2, 3]))


def test_status_texts_for_missing_spec_model_and_version(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """The three GetModelStatus errors carry TF Serving's exact texts and codes."""
    stubs = tfs(fleet(config_text(model_entry(versions=[1]))).targets[0])
    missing_spec = rpc_error(lambda: stubs.model.GetModelStatus(tfs_apis_pb2.GetModelStatusRequest(), timeout=5))
    assert (missing_spec.code(), missing_spec.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    unknown_model = rpc_error(lambda: stubs.status("nope"))
    assert (unknown_model.code(), unknown_model.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "Could not find any versions of model nope",
    )
    unknown_version = rpc_error(lambda: stubs.status(MODEL, version=9))
    assert unknown_version.details() == f"Could not find version 9 of model {MODEL}"


def test_versions_descend_and_labels_are_ignored(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """All versions come highest first; a label-only spec is not validated and returns every version."""
    stubs = tfs(fleet(ALL_THREE).targets[0])
    wait_until(lambda: stubs.status() == {3: "AVAILABLE", 2: "AVAILABLE", 1: "AVAILABLE"}, what="1-3 AVAILABLE")
    request = tfs_apis_pb2.GetModelStatusRequest(model_spec=spec(label="no-such-label"))
    response = stubs.model.GetModelStatus(request, timeout=5)
    assert [s.version for s in response.model_version_status] == [3, 2, 1]
    assert all(s.status.error_code == 0 and s.status.error_message == "" for s in response.model_version_status)
    assert stubs.status(version=2) == {2: "AVAILABLE"}


def test_unloaded_versions_stay_as_end_history(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """A version dropped from the policy goes to END with an OK status and stays in the response."""
    stubs = tfs(fleet(ALL_THREE).targets[0])
    wait_until(lambda: len(stubs.status()) == 3 and set(stubs.status().values()) == {"AVAILABLE"}, what="loaded")
    stubs.reload(config_text(model_entry(versions=[3])))
    wait_until(lambda: stubs.status() == {3: "AVAILABLE", 2: "END", 1: "END"}, what="1 and 2 unloaded")
    response = stubs.model.GetModelStatus(tfs_apis_pb2.GetModelStatusRequest(model_spec=spec(version=1)), timeout=5)
    assert response.model_version_status[0].status.error_code == 0


def test_new_version_is_available_before_the_old_one_unloads(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """Switching specific {1} to {2}: at every observed moment some version is AVAILABLE, and 1 unloads only
    after 2 became AVAILABLE."""
    stubs = tfs(fleet(config_text(model_entry(versions=[1])), devstack_load_seconds=0.2).targets[0])
    wait_until(lambda: stubs.status() == {1: "AVAILABLE"}, what="1 AVAILABLE")
    stubs.reload(config_text(model_entry(versions=[2])))
    snapshots = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        snapshots.append(stubs.status())
        if snapshots[-1] == {2: "AVAILABLE", 1: "END"}:
            break
    assert snapshots[-1] == {2: "AVAILABLE", 1: "END"}
    assert all("AVAILABLE" in s.values() for s in snapshots)
    assert any(s.get(2) == "LOADING" and s.get(1) == "AVAILABLE" for s in snapshots)


def test_failed_load_retries_then_ends_and_the_old_version_keeps_serving(
    fleet: FleetFactory, tfs: StubsFactory, models_copy: Path
) -> None:
    """A version without saved_model.pb stays LOADING through its retries, ends with NOT_FOUND, is not retried
    while still aspired, and the previous version serves on."""
    (models_copy / "7").mkdir()
    replica = fleet(
        config_text(model_entry(base_path=str(models_copy), versions=[1])),
        models_root=models_copy.parent,
        max_num_load_retries=2,
        load_retry_interval_micros=300_000,
    )
    stubs = tfs(replica.targets[0], models_root=models_copy.parent)
    wait_until(lambda: stubs.status() == {1: "AVAILABLE"}, what="1 AVAILABLE")
    stubs.reload(config_text(model_entry(base_path=str(models_copy), versions=[1, 7])))
    wait_until(lambda: stubs.status().get(7) == "LOADING", what="7 LOADING")
    time.sleep(0.3)  # inside the retry interval: still LOADING
    assert stubs.status().get(7) == "LOADING"
    wait_until(lambda: stubs.status().get(7) == "END", what="7 END")
    response = stubs.model.GetModelStatus(tfs_apis_pb2.GetModelStatusRequest(model_spec=spec(version=7)), timeout=5)
    status = response.model_version_status[0].status
    assert status.error_code == 5  # NOT_FOUND
    assert status.error_message == (
        f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {models_copy}/7. "
        "Check that the directory exists and that you have the right permissions for accessing it."
    )
    assert replica.log(0).count("Loading servable: {name: fraud_detector version: 7} failed") == 3
    shutil.copy(models_copy / "1" / "saved_model.pb", models_copy / "7" / "saved_model.pb")
    time.sleep(0.3)  # many polls later the errored version is still not retried
    assert stubs.status()[7] == "END"
    assert stubs.predict(spec(), [[0.0] * 20]).model_spec.version.value == 1


def test_stalled_version_stays_loading_and_latest_is_highest_available(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """A --devstack_stall version never leaves LOADING; Latest resolves to the highest AVAILABLE version."""
    replica = fleet(config_text(model_entry(versions=[1])), devstack_stall=[f"{MODEL}:3"])
    stubs = tfs(replica.targets[0])
    wait_until(lambda: stubs.status() == {1: "AVAILABLE"}, what="1 AVAILABLE")
    stubs.reload(config_text(model_entry(versions=[1, 3])))
    wait_until(lambda: stubs.status().get(3) == "LOADING", what="3 LOADING")
    time.sleep(0.3)
    assert stubs.status() == {3: "LOADING", 1: "AVAILABLE"}
    assert stubs.predict(spec(), [[1.0] * 20]).model_spec.version.value == 1


def test_missing_base_path_freezes_updates_for_every_model(
    fleet: FleetFactory, tfs: StubsFactory, models_copy: Path, demo_models: Path
) -> None:
    """While one model's base path is missing no model gets version updates; restoring it unfreezes them."""
    other = models_copy.parent / "other"
    shutil.copytree(demo_models, other)
    two_models = [model_entry(base_path=str(models_copy), versions=[1]), model_entry("other", str(other), versions=[1])]
    replica = fleet(config_text(*two_models), models_root=models_copy.parent)
    stubs = tfs(replica.targets[0])
    wait_until(lambda: stubs.status() == {1: "AVAILABLE"} and stubs.status("other") == {1: "AVAILABLE"}, what="up")
    parked = models_copy.parent / "parked"
    other.rename(parked)
    stubs.reload(config_text(model_entry(base_path=str(models_copy), versions=[1, 2]), two_models[1]))
    time.sleep(0.4)
    assert stubs.status() == {1: "AVAILABLE"}
    assert f"Could not find base path {other} for servable other" in replica.log(0)
    parked.rename(other)
    wait_until(lambda: stubs.status().get(2) == "AVAILABLE", what="2 AVAILABLE after the path is back")


def test_specific_versions_missing_on_disk_unload_the_model(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """A specific policy naming only absent versions aspires nothing, so every loaded version unloads."""
    stubs = tfs(fleet(config_text(model_entry(versions=[1]))).targets[0])
    wait_until(lambda: stubs.status() == {1: "AVAILABLE"}, what="1 AVAILABLE")
    stubs.reload(config_text(model_entry(versions=[9])))
    wait_until(lambda: stubs.status() == {1: "END"}, what="1 unloaded")
    error = rpc_error(lambda: stubs.predict(spec(), [[0.0] * 20]))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.NOT_FOUND,
        f"Servable not found for request: Latest({MODEL})",
    )


def test_latest_policy_serves_the_highest_numbered_directories(
    fleet: FleetFactory, tfs: StubsFactory, models_copy: Path
) -> None:
    """latest {num_versions: 2} aspires the two highest numbers; a new, higher directory replaces the lower one."""
    replica = fleet(
        config_text(model_entry(base_path=str(models_copy), policy="latest { num_versions: 2 }")),
        models_root=models_copy.parent,
    )
    stubs = tfs(replica.targets[0])
    wait_until(lambda: stubs.status() == {4: "AVAILABLE", 3: "AVAILABLE"}, what="3 and 4 AVAILABLE")
    staging = models_copy / "staging"
    shutil.copytree(models_copy / "1", staging)
    staging.rename(models_copy / "00010")  # leading zeros are fine
    wait_until(lambda: stubs.status() == {10: "AVAILABLE", 4: "AVAILABLE", 3: "END"}, what="10 in, 3 out")
