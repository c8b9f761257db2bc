"""`modelbot serve` SIGKILLed in the middle of a rollout and restarted: the lapsed lease is noticed within
seconds, every replica is read, one consistent state is confirmed or restored, the request is closed with what
was found per replica, and the next rollback works. Times from the kill to the closed request are printed."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.serving.config_proto import read_model_config_file
from tests.devstack_support import wait_until
from tests.e2e.stack import BOB
from tests.faults.serve_harness import (
    CLOSED,
    MODEL,
    OTHER,
    ServeStack,
    elapsed_since,
    kill_and_restart,
    recovered_detail,
)


def test_killed_while_loading_restores_the_previous_state(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """Killed during a 10 s load: after restart R1 is closed FAILED within 30 s, every replica serves the
    previous stable version, the database equals the fleet, and a new rollback then succeeds."""
    stack = serve_stack(db_url, load_seconds=10.0, versions=(2, 3))
    stack.say(f'rollback {MODEL} 1 --reason "INC-1 cold"')
    stack.say("approve R1", user=BOB, wait=False)
    stack.wait_state(1, {"EXECUTING"})
    wait_until(lambda: any(1 in seen for seen in stack.dev_status()), 20, "the load of v1 under way")
    closed, took = kill_and_restart(stack, "the load")
    assert took <= 30
    assert closed.state.value == "FAILED"
    detail = recovered_detail(stack, 1)
    assert set(detail["found"].values()) == {"not switched (v3)"}  # type: ignore[union-attr]
    assert stack.view() == [3, 3, 3] and stack.consistent() == 3
    assert stack.desired().model(MODEL).policy.versions == (2, 3)
    assert stack.audit_verifies()
    stack.say(f'rollback {MODEL} 2 --reason "INC-1 warm"')
    stack.say("approve R2", user=BOB, wait=False)
    assert stack.wait_state(2, CLOSED).state.value == "SUCCEEDED", stack.operations(2)
    assert stack.view() == [2, 2, 2] and stack.consistent() == 2


def test_killed_mid_switch_leaves_no_split_fleet(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """Killed while one replica's switch is still being applied (the fleet observably split): after restart
    the recovery confirms the switch on every replica, closes R1 SUCCEEDED as recovered within 30 s, and the
    database, the model_config_file and every replica agree."""
    stack = serve_stack(db_url, versions=(2, 3), per_replica={2: {"devstack_reload_delay_seconds": 4.0}})
    stack.say(f'rollback {MODEL} 2 --reason "INC-2 warm"')
    stack.say("approve R1", user=BOB, wait=False)
    wait_until(lambda: stack.view()[:2] == [2, 2] or None, 30, "two replicas switched")
    stack.bots[0].kill()
    killed = time.monotonic()
    split = stack.view()
    assert split == [2, 2, 3], split  # the third replica is still applying its switch
    stack.bots[0].start()
    closed = stack.wait_state(1, CLOSED, timeout=60)
    took = elapsed_since(killed)
    print(f"\nkill during switch (fleet {split}) -> R1 closed {closed.state.value} in {took}s after the kill")
    assert took <= 30
    assert closed.state.value == "SUCCEEDED"
    detail = recovered_detail(stack, 1)
    assert all(r["ok"] for r in detail["replicas"].values())  # type: ignore[union-attr]
    assert stack.view() == [2, 2, 2] and stack.consistent() == 2
    assert read_model_config_file(stack.dev.config_file).model(MODEL).label("stable") == 2
    assert stack.audit_verifies()
    stack.say(f'rollback {MODEL} 3 --reason "INC-2 back"')
    stack.say("approve R2", user=BOB, wait=False)
    assert stack.wait_state(2, CLOSED).state.value == "SUCCEEDED", stack.operations(2)
    assert stack.view() == [3, 3, 3]


def test_a_rollout_approved_right_after_a_crash_waits_for_the_recovery(
    serve_stack: Callable[..., ServeStack], db_url: str
) -> None:
    """Killed during a load of fraud_detector and restarted; a rollback of another model approved at once does not
    start before the dead rollout is recovered (its operation starts after that one finished), and both end true."""
    stack = serve_stack(db_url, load_seconds=10.0, versions=(2, 3), second_model=True)
    stack.say(f'rollback {MODEL} 1 --reason "INC-3 cold"')
    stack.say("approve R1", user=BOB, wait=False)
    stack.wait_state(1, {"EXECUTING"})
    wait_until(lambda: any(1 in seen for seen in stack.dev_status()), 20, "the load of v1 under way")
    stack.bots[0].kill()
    stack.bots[0].start()
    stack.say(f'rollback {OTHER} 2 --reason "INC-3 other model"')
    stack.say("approve R2", user=BOB, wait=False)
    assert stack.wait_state(1, CLOSED, timeout=60).state.value == "FAILED"
    assert stack.wait_state(2, CLOSED, timeout=60).state.value == "SUCCEEDED", stack.operations(2)
    assert stack.operations(1)[0]["finished_at"] <= stack.operations(2)[0]["started_at"]
    assert stack.view(MODEL) == [3, 3, 3] and stack.consistent(MODEL) == 3
    assert stack.view(OTHER) == [2, 2, 2] and stack.consistent(OTHER) == 2
    assert stack.audit_verifies()
