"""The emulator and logging_config / custom platforms, like the stock server (reference §1.4 steps 6-9) and like a
build with a request logger or more platforms (--devstack_request_logger, --devstack_platforms)."""

from __future__ import annotations

import re

import grpc
import pytest

from bot.devstack.fleet import DevFleet, DevFleetError
from bot.devstack.serving.core import NO_REQUEST_LOGGER
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
from tests.model_config_corpus import field_diff

COPY = "fraud_copy"  # a second model on the demo model's base path
LOGGING = (
    'logging_config { log_collector_config { type: "file" filename_prefix: "/logs/fd" } '
    "sampling_config { sampling_rate: 0.25 per_task_sampling_configs { dc: 'aa' task_index: 0 sampling_rate: 1 } } }"
)
STABLE_ON_1 = config_text(model_entry(versions=[1, 2], labels={"stable": 1}))


def _with_logging(entry: str) -> str:
    return entry[: -len(" }")] + " " + LOGGING + " }"


def _serving(fleet: FleetFactory, tfs: StubsFactory, **knobs: object) -> tuple[DevFleet, TfsStubs]:
    """One replica serving fraud_detector {1, 2} with stable on 1, dumping its stored config."""
    replica = fleet(STABLE_ON_1, allow_version_labels_for_unavailable_models=True, dump_configs=True, **knobs)
    stubs = tfs(replica.targets[0])
    wait_until(lambda: stubs.status() == {2: "AVAILABLE", 1: "AVAILABLE"}, what="versions 1 and 2 AVAILABLE")
    return replica, stubs


def test_stock_server_refuses_logging_config_after_applying_everything_else(
    fleet: FleetFactory, tfs: StubsFactory
) -> None:
    """Without a request logger the reload ends INVALID_ARGUMENT "No request-logger-creator provided." at step 9:
    the config is stored, the label moved and the new model loaded first (nothing is rolled back)."""
    replica, stubs = _serving(fleet, tfs)
    text = config_text(
        _with_logging(model_entry(versions=[1, 2], labels={"stable": 2})),
        model_entry(COPY, versions=[1]),
    )
    error = rpc_error(lambda: stubs.reload(text))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "No request-logger-creator provided."
    assert stubs.status(COPY) == {1: "AVAILABLE"}  # awaited as a new model before the logger step
    assert stubs.metadata(spec(label="stable")).model_spec.version.value == 2
    stored = replica.stored_config(0)
    assert stored is not None and field_diff(stubs.server_config(text), stored) == []


def test_stock_server_does_not_start_with_logging_config(fleet: FleetFactory) -> None:
    """A models.config with logging_config stops the stock server at start-up with the same error."""
    with pytest.raises(DevFleetError, match=re.escape(NO_REQUEST_LOGGER)):
        fleet(config_text(_with_logging(model_entry(versions=[1]))))


def test_request_logger_build_accepts_and_keeps_logging_config(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """With --devstack_request_logger the reload succeeds, and the replica stores and applies the logging_config."""
    replica, stubs = _serving(fleet, tfs, devstack_request_logger=True)
    text = config_text(_with_logging(model_entry(versions=[1, 2], labels={"stable": 2})))
    stubs.reload(text)
    stored = replica.stored_config(0)
    assert stored is not None and field_diff(stubs.server_config(text), stored) == []
    assert stored.model_config_list.config[0].logging_config.sampling_config.sampling_rate == 0.25
    assert f"Request logger updated; logging model(s): {MODEL}" in replica.log(0)


def test_unsupported_platform_is_refused_by_the_stock_server(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """A platform the build does not register is INVALID_ARGUMENT "Model <name> requests unsupported platform"."""
    _, stubs = _serving(fleet, tfs)
    error = rpc_error(lambda: stubs.reload(config_text(model_entry(COPY, versions=[1], platform="xgboost"))))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"Model {COPY} requests unsupported platform xgboost"


def test_devstack_platforms_emulates_a_build_with_more_platforms(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """With --devstack_platforms tensorflow,xgboost a model on xgboost loads like any other."""
    _, stubs = _serving(fleet, tfs, devstack_platforms="tensorflow,xgboost")
    stubs.reload(config_text(model_entry(versions=[1, 2], labels={"stable": 1}), model_entry(COPY, platform="xgboost")))
    assert stubs.status(COPY) == {4: "AVAILABLE"}  # no policy: latest 1, the highest version on disk


def test_deprecated_model_type_other_is_refused(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """model_type OTHER has no platform: INVALID_ARGUMENT "ModelServerConfig::model_type choice 2 not supported."."""
    _, stubs = _serving(fleet, tfs)
    entry = f'config {{ name: "{COPY}" base_path: "{{models_root}}/{MODEL}" model_type: OTHER }}'
    error = rpc_error(lambda: stubs.reload(config_text(model_entry(versions=[1, 2], labels={"stable": 1}), entry)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "ModelServerConfig::model_type choice 2 not supported."


def test_replica_stores_fields_it_does_not_know(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """Unknown fields in a received ModelConfig are kept in the stored config, as a newer server would keep them."""
    replica, stubs = _serving(fleet, tfs)
    config = stubs.server_config(STABLE_ON_1)
    model = config.model_config_list.config[0]
    model.ParseFromString(model.SerializeToString() + b"\xa8\x06\x05")  # field 101: unknown to our protos
    stubs.model.HandleReloadConfigRequest(tfs_apis_pb2.ReloadConfigRequest(config=config), timeout=10)
    stored = replica.stored_config(0)
    assert stored is not None and field_diff(config, stored) == []
    assert b"\xa8\x06\x05" in stored.model_config_list.config[0].SerializeToString()
