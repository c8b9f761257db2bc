"""HandleReloadConfigRequest on the emulator: validation order and texts, labels, blocking, no rollback."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import grpc

from bot.devstack.fleet import DevFleet
from bot.serving.protos import tfs_apis_pb2
from tests.devstack_support import (
    MODEL,
    FleetFactory,
    StubsFactory,
    TfsStubs,
    config_text,
    model_entry,
    rpc_error,
    spec,
    wait_until,
)

STABLE_ON_1 = config_text(model_entry(versions=[1], labels={"stable": 1}))
ONE_AND_TWO = config_text(model_entry(versions=[1, 2]))


def _serving(
    fleet: FleetFactory, tfs: StubsFactory, config: str = STABLE_ON_1, **knobs: object
) -> tuple[DevFleet, TfsStubs]:
    """A one-replica fleet (started with config, knobs) and stubs to it, once version 1 is AVAILABLE."""
    replica = fleet(config, allow_version_labels_for_unavailable_models=True, **knobs)
    stubs = tfs(replica.targets[0])
    wait_until(lambda: stubs.status().get(1) == "AVAILABLE", what="version 1 AVAILABLE")
    return replica, stubs


def test_unset_config_is_invalid_argument(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """A request without config is INVALID_ARGUMENT with TF Serving's text, and nothing changes."""
    _, stubs = _serving(fleet, tfs)
    error = rpc_error(lambda: stubs.model.HandleReloadConfigRequest(tfs_apis_pb2.ReloadConfigRequest(), timeout=5))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "ServerModelConfig type not supported by HandleReloadConfigRequest. Only ModelConfigList is currently supported"
    )
    assert stubs.status() == {1: "AVAILABLE"}


def test_custom_model_config_is_invalid_argument(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """custom_model_config is refused with the same text as an unset config."""
    _, stubs = _serving(fleet, tfs)
    request = tfs_apis_pb2.ReloadConfigRequest()
    request.config.custom_model_config.type_url = "type.googleapis.com/example.Custom"
    error = rpc_error(lambda: stubs.model.HandleReloadConfigRequest(request, timeout=5))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("ServerModelConfig type not supported by HandleReloadConfigRequest.")


def test_duplicate_model_name_is_rejected(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """Listing a model twice is INVALID_ARGUMENT naming the model."""
    _, stubs = _serving(fleet, tfs)
    error = rpc_error(lambda: stubs.reload(config_text(model_entry(versions=[1]), model_entry(versions=[2]))))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"Illegal to list model {MODEL} multiple times in config list"


def test_relative_base_path_is_rejected(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """A relative base_path is INVALID_ARGUMENT quoting the path; a URI with a scheme is accepted as absolute."""
    _, stubs = _serving(fleet, tfs)
    error = rpc_error(lambda: stubs.reload(config_text(model_entry(base_path="models/fraud", versions=[1]))))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"Expected model {MODEL} to have an absolute path or URI; got base_path()=models/fraud"
    # An existing model whose base path moves to a URI: accepted (applied at the next poll, which then fails).
    assert stubs.reload(config_text(model_entry(base_path="s3://bucket/fraud", versions=[1]))).status.error_code == 0


def test_platform_change_is_rejected(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """An existing model cannot change platform; the message names both platforms."""
    _, stubs = _serving(fleet, tfs)
    error = rpc_error(lambda: stubs.reload(config_text(model_entry(versions=[1], platform="tensorflow_lite"))))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        f"Illegal to change a model's platform. For model {MODEL} platform was tensorflow "
        "and new platform requested is tensorflow_lite"
    )


def test_empty_platform_of_existing_model_is_rejected(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """An existing model listed without a platform gets the 'neither model_type nor model_platform' error."""
    _, stubs = _serving(fleet, tfs)
    error = rpc_error(lambda: stubs.reload(config_text(model_entry(versions=[1], platform=""))))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
        f"ModelServerConfig::model_platform, model name is {MODEL}"
    )


def test_unsupported_platform_is_stored_without_rollback(
    fleet: FleetFactory, tfs: StubsFactory, demo_models: Path
) -> None:
    """A new model's platform typo fails, yet the stored config keeps it: the corrected retry is refused."""
    _, stubs = _serving(fleet, tfs)
    typo = model_entry("other", str(demo_models), versions=[1], platform="tensorflw")
    error = rpc_error(lambda: stubs.reload(config_text(model_entry(versions=[1]), typo)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Model other requests unsupported platform tensorflw"
    fixed = model_entry("other", str(demo_models), versions=[1])
    retry = rpc_error(lambda: stubs.reload(config_text(model_entry(versions=[1]), fixed)))
    assert retry.details() == (
        "Illegal to change a model's platform. For model other platform was tensorflw "
        "and new platform requested is tensorflow"
    )
    # The documented workaround: first a config without the model, then the model again.
    stubs.reload(config_text(model_entry(versions=[1])))
    stubs.reload(config_text(model_entry(versions=[1]), fixed))
    assert stubs.status("other") == {1: "AVAILABLE"}


def test_label_on_unavailable_version_is_refused_and_versions_stay(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """Without the flag a label may only name an AVAILABLE version, checked before any version change."""
    replica = fleet(ONE_AND_TWO)
    stubs = tfs(replica.targets[0])
    wait_until(lambda: stubs.status().get(2) == "AVAILABLE", what="version 2 AVAILABLE")
    error = rpc_error(lambda: stubs.reload(config_text(model_entry(versions=[1, 2, 3], labels={"canary": 3}))))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == (
        f"Request to assign label to version 3 of model {MODEL}, which is not currently available for inference"
    )
    time.sleep(0.3)  # several polls: the rejected reload's version policy was never handed to the source
    assert 3 not in stubs.status()


def test_label_moves_synchronously_inside_the_reload(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """When the reload returns, a request by label already resolves to the new version."""
    replica = fleet(ONE_AND_TWO)
    stubs = tfs(replica.targets[0])
    wait_until(lambda: stubs.status() == {2: "AVAILABLE", 1: "AVAILABLE"}, what="1 and 2 AVAILABLE")
    for target in (1, 2, 1):
        stubs.reload(config_text(model_entry(versions=[1, 2], labels={"stable": target})))
        assert stubs.metadata(spec(label="stable")).model_spec.version.value == target


def test_flag_allows_new_labels_but_not_moving_to_unavailable(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """With the flag a new label may name any version and a kept label survives an unload; moving still needs
    the target AVAILABLE."""
    _, stubs = _serving(fleet, tfs)
    stubs.reload(config_text(model_entry(versions=[1], labels={"stable": 1, "canary": 7})))
    error = rpc_error(lambda: stubs.reload(config_text(model_entry(versions=[1], labels={"stable": 2}))))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == (
        f"Request to assign label to version 2 of model {MODEL}, which is not currently available for inference"
    )
    # Version 1 leaves; the stable label still names it and is accepted because it does not move.
    stubs.reload(config_text(model_entry(versions=[2], labels={"stable": 1})))
    wait_until(lambda: stubs.status() == {2: "AVAILABLE", 1: "END"}, what="1 unloaded, 2 loaded")
    stubs.reload(config_text(model_entry(versions=[2], labels={"stable": 1})))
    error = rpc_error(lambda: stubs.metadata(spec(label="stable")))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == f"Servable not found for request: Specific({MODEL}, 1)"


def test_existing_model_changes_only_at_a_filesystem_poll(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """With polling off after start-up (interval 0), a reload that adds a version returns OK and nothing loads."""
    _, stubs = _serving(fleet, tfs, file_system_poll_wait_seconds=0)
    assert stubs.reload(ONE_AND_TWO).status.error_code == 0
    time.sleep(0.4)
    assert stubs.status() == {1: "AVAILABLE"}


def test_new_version_loads_after_the_next_poll(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """With polling on, the added version is discovered and loaded asynchronously after the RPC returned."""
    _, stubs = _serving(fleet, tfs)
    stubs.reload(ONE_AND_TWO)
    assert wait_until(lambda: stubs.status() == {2: "AVAILABLE", 1: "AVAILABLE"}, what="version 2 loaded")


def test_new_model_blocks_until_a_version_is_available(
    fleet: FleetFactory, tfs: StubsFactory, demo_models: Path
) -> None:
    """A reload adding a model name returns only once that model serves (load time is 0.3 s here)."""
    _, stubs = _serving(fleet, tfs, devstack_load_seconds=0.3)
    started = time.monotonic()
    stubs.reload(config_text(model_entry(versions=[1]), model_entry("other", str(demo_models), versions=[2])))
    assert time.monotonic() - started >= 0.3
    assert stubs.status("other") == {2: "AVAILABLE"}


def test_new_model_without_versions_hangs_every_later_reload(
    fleet: FleetFactory, tfs: StubsFactory, tmp_path: Path, demo_models: Path
) -> None:
    """A new model with no numeric version dir blocks its reload forever (client deadline or not), later reloads
    queue behind it, and once a version appears the server carries on and applies both."""
    _, stubs = _serving(fleet, tfs)
    empty = tmp_path / "empty"
    empty.mkdir()
    hung = config_text(model_entry(versions=[1]), model_entry("other", str(empty)))
    error = rpc_error(lambda: stubs.reload(hung, timeout=0.5))
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    queued = rpc_error(lambda: stubs.reload(hung.replace("versions: 1", "versions: 1 versions: 2"), timeout=0.5))
    assert queued.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert stubs.status() == {1: "AVAILABLE"}  # reads still work while reloads hang
    shutil.copytree(demo_models / "3", empty / "3")
    wait_until(lambda: stubs.status("other", missing_ok=True) == {3: "AVAILABLE"}, what="the hung reload to complete")
    wait_until(lambda: stubs.status().get(2) == "AVAILABLE", what="the queued reload to be applied")


def test_new_model_that_fails_to_load_is_unknown(fleet: FleetFactory, tfs: StubsFactory, tmp_path: Path) -> None:
    """A new model whose only version cannot load ends the reload with UNKNOWN and the loader's error."""
    _, stubs = _serving(fleet, tfs)
    (tmp_path / "broken" / "5").mkdir(parents=True)
    error = rpc_error(
        lambda: stubs.reload(config_text(model_entry(versions=[1]), model_entry("broken", f"{tmp_path}/broken")))
    )
    assert error.code() is grpc.StatusCode.UNKNOWN
    assert error.details() == (
        "1 model(s) did not become available: {{{name: broken version: 5} due to error: NOT_FOUND: "
        f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {tmp_path}/broken/5. "
        "Check that the directory exists and that you have the right permissions for accessing it.}, }"
    )


def test_empty_list_unloads_everything_and_keeps_history(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """An empty model_config_list is valid; every version goes to END and stays listed."""
    _, stubs = _serving(fleet, tfs, config=ONE_AND_TWO)
    wait_until(lambda: stubs.status().get(2) == "AVAILABLE", what="version 2 AVAILABLE")
    stubs.reload(config_text())
    assert wait_until(lambda: stubs.status() == {2: "END", 1: "END"}, what="everything unloaded")
    error = rpc_error(lambda: stubs.predict(spec(), [[0.0] * 20]))
    assert error.details() == f"Servable not found for request: Latest({MODEL})"


def test_reloads_are_serialised(fleet: FleetFactory, tfs: StubsFactory, demo_models: Path) -> None:
    """A reload waiting for a new model holds the lock: a second reload returns only after the first finished."""
    _, stubs = _serving(fleet, tfs, devstack_load_seconds=0.4)
    slow = config_text(model_entry(versions=[1]), model_entry("other", str(demo_models), versions=[1]))
    first = threading.Thread(target=stubs.reload, args=(slow,))
    first.start()
    # "other" shows up only once the first reload has handed it to the source, i.e. while it holds the lock.
    wait_until(lambda: stubs.status("other", missing_ok=True), what="the first reload to be waiting")
    assert stubs.status("other") != {1: "AVAILABLE"}
    stubs.reload(slow)  # the same config: nothing of its own to wait for
    assert stubs.status("other") == {1: "AVAILABLE"}  # so it returned only after the first reload's wait
    first.join()


def test_config_file_poller_reverts_rpc_changes(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """With --model_config_file_poll_wait_seconds the file is reloaded unconditionally: the last writer wins."""
    file_config = config_text(model_entry(versions=[1, 2], labels={"stable": 1}))
    # A 1 s period keeps the check right after our RPC well clear of the next file reload.
    _, stubs = _serving(fleet, tfs, config=file_config, model_config_file_poll_wait_seconds=1.0)
    wait_until(lambda: stubs.status().get(2) == "AVAILABLE", what="version 2 AVAILABLE")
    stubs.reload(config_text(model_entry(versions=[1, 2], labels={"stable": 2})))
    assert stubs.metadata(spec(label="stable")).model_spec.version.value == 2
    wait_until(lambda: stubs.metadata(spec(label="stable")).model_spec.version.value == 1, what="file to win")


def test_metric_names_come_back_with_zero_increase(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """Requested metrics are echoed; none exist in the emulator, and a missing metric counts as 0."""
    _, stubs = _serving(fleet, tfs)
    request = tfs_apis_pb2.ReloadConfigRequest(
        config=stubs.server_config(STABLE_ON_1), metric_names=["/tensorflow/serving/model_count"]
    )
    response = stubs.model.HandleReloadConfigRequest(request, timeout=5)
    assert [(m.name, m.int64_value_increase) for m in response.metric] == [("/tensorflow/serving/model_count", 0)]
    assert response.status.error_code == 0 and response.status.error_message == ""


def test_long_messages_are_truncated_at_1024_characters(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """An error message over 1024 characters is cut there and marked ...TRUNCATED."""
    _, stubs = _serving(fleet, tfs)
    name = "m" * 2000
    error = rpc_error(lambda: stubs.reload(config_text(model_entry(name, versions=[1]), model_entry(name))))
    expected = f"Illegal to list model {name} multiple times in config list"
    assert error.details() == expected[:1024] + "...TRUNCATED"
