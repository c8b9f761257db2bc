"""DevFleet: processes, ports, per-replica knobs, restarts, and start-up failures with the replica's own log."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from bot.devstack.certs import DevCerts
from bot.devstack.fleet import DevFleet, DevFleetError, flag_args
from tests.devstack_support import MODEL, FleetFactory, StubsFactory, config_text, model_entry, rpc_error, wait_until

ONE_AND_TWO = config_text(model_entry(versions=[1, 2]))


def test_replicas_get_distinct_ports_and_per_replica_knobs(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """Each replica listens on its own port; a per-replica stall affects only that replica."""
    replicas = fleet(ONE_AND_TWO, 2, per_replica={1: {"devstack_stall": [f"{MODEL}:2"]}})
    assert len(set(replicas.ports)) == 2 and all(replicas.ports)
    first, second = (tfs(target) for target in replicas.targets)
    wait_until(lambda: first.status() == {2: "AVAILABLE", 1: "AVAILABLE"}, what="replica 0 fully loaded")
    wait_until(lambda: second.status() == {2: "LOADING", 1: "AVAILABLE"}, what="replica 1 stalled on 2")


def test_kill_and_restart_keep_the_port_and_reread_the_config_file(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """A killed replica is unreachable; after restart it serves again on the same port from the current file."""
    replicas = fleet(ONE_AND_TWO, 2)
    target = replicas.targets[1]
    replicas.kill(1)
    assert not replicas.is_running(1)
    assert rpc_error(lambda: tfs(target).status()).code() is grpc.StatusCode.UNAVAILABLE
    replicas.write_config(config_text(model_entry(versions=[2])))
    replicas.restart(1)
    assert replicas.targets[1] == target
    assert tfs(target).status() == {2: "AVAILABLE"}


def test_stop_is_graceful_and_idempotent(fleet: FleetFactory) -> None:
    """stop() ends the process with exit code 0 (SIGTERM handled), and stopping again is harmless."""
    replicas = fleet(ONE_AND_TWO)
    replicas.stop(0)
    replicas.stop(0)
    assert not replicas.is_running(0)
    assert replicas.exit_code(0) == 0


def test_cold_start_with_a_label_fails_with_the_servers_message(fleet: FleetFactory) -> None:
    """Labels in the start-up config need the flag (nothing is AVAILABLE yet); the error quotes the replica."""
    with pytest.raises(DevFleetError) as raised:
        fleet(config_text(model_entry(versions=[1], labels={"stable": 1})))
    assert "exited with code 1" in str(raised.value)
    assert (
        f"Request to assign label to version 1 of model {MODEL}, which is not currently available for inference"
        in str(raised.value)
    )


def test_custom_model_config_at_start_up_crashes_the_server(fleet: FleetFactory) -> None:
    """As upstream's LOG(FATAL), a config file with custom_model_config stops the replica at start-up."""
    with pytest.raises(DevFleetError) as raised:
        fleet('custom_model_config { type_url: "type.googleapis.com/example.Custom" }\n')
    assert "ModelServer does not yet support custom model config." in str(raised.value)


def test_unknown_or_managed_knobs_are_refused(demo_models: Path, devstack_certs: DevCerts) -> None:
    """A misspelt knob, or one DevFleet sets itself, is an error before anything starts."""
    with pytest.raises(DevFleetError, match="unknown emulator flag 'devstack_load_second'"):
        DevFleet(1, demo_models.parent, devstack_certs, ONE_AND_TWO, devstack_load_second=1)
    with pytest.raises(DevFleetError, match="port is set by DevFleet itself"):
        DevFleet(1, demo_models.parent, devstack_certs, ONE_AND_TWO, port=1)


def test_flag_args_spell_knobs_as_server_flags() -> None:
    """Booleans become bare flags, lists repeat the flag, False and None are left out."""
    knobs = {
        "allow_version_labels_for_unavailable_models": True,
        "devstack_stall": ["m:2", "m:1"],
        "file_system_poll_wait_seconds": 0.1,
        "model_name": None,
        "saved_model_tags": False,
    }
    assert flag_args(knobs) == [
        "--allow_version_labels_for_unavailable_models",
        "--devstack_stall=m:1",
        "--devstack_stall=m:2",
        "--file_system_poll_wait_seconds=0.1",
    ]
