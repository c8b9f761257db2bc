"""A replica that serves something else than the database says (a manual ReloadConfig by someone else): never
reported healthy, and asking for the state the database holds re-sends it instead of "nothing to do"."""

from __future__ import annotations

from collections.abc import Callable

from tests.devstack_support import config_text, model_entry
from tests.e2e.stack import BOB
from tests.faults.serve_harness import MODEL, ServeStack


def test_a_drifted_replica_is_reported_and_re_sent(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """One replica is reloaded by hand with `stable` -> v2: `/model list` names it instead of '3/3 healthy', and
    `/model rollback fraud_detector 3` (what the database holds) opens a re-send that brings it back."""
    stack = serve_stack(db_url, versions=(2, 3))
    assert "already serves version 3" in stack.say(f'rollback {MODEL} 3 --reason "in sync"')
    stack.stubs()[2].reload(config_text(model_entry(MODEL, versions=[2, 3], labels={"stable": 2})))
    assert stack.view() == [3, 3, 2]
    listing = stack.say("list")
    assert "2/3 replicas healthy" in listing and "DRIFT" in listing and "resolves `stable` to v2" in listing, listing
    status = stack.say(f"status {MODEL}")
    assert status.count("in sync") == 2 and "DRIFT" in status, status
    opened = stack.say(f'rollback {MODEL} 3 --reason "INC-7 drifted replica"')
    assert "nothing to do" not in opened and "R1" in opened, opened
    stack.say("approve R1", user=BOB, wait=False)
    done = stack.wait_state(1, {"SUCCEEDED", "FAILED", "PARTIAL"})
    assert done.state.value == "SUCCEEDED", stack.operations(1)
    assert stack.view() == [3, 3, 3] and stack.consistent() == 3
    assert "3/3 replicas healthy" in stack.say("list")
