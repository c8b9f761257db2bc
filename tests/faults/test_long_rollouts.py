"""Rollouts that outlive the fleet lease (real loads take 30-120 s): the heartbeat keeps them, nothing closes
them early, and no second rollout overlaps them. `modelbot serve` runs as a process against a devstack fleet."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.devstack_support import wait_until
from tests.e2e.stack import BOB, INCIDENT
from tests.faults.serve_harness import MODEL, OTHER, ServeStack

LOAD_S = 30.0  # twice the fleet lease (15 s): the old sweep closed such rollouts as "interrupted"


def test_a_30s_load_succeeds_and_the_next_rollout_waits_for_it(
    serve_stack: Callable[..., ServeStack], db_url: str
) -> None:
    """A cold rollback whose load takes 30 s is reported SUCCEEDED (never 'interrupted'), every replica serves
    it, and a rollback of another model approved meanwhile runs only after it finished."""
    stack = serve_stack(db_url, load_seconds=LOAD_S, versions=(2, 3), second_model=True)
    assert "R1" in stack.say(f'rollback {MODEL} 1 --reason "INC-9 cold rollback"')
    stack.say("approve R1", user=BOB, wait=False)
    stack.wait_state(1, {"EXECUTING"}, timeout=30)
    time.sleep(LOAD_S / 2)  # well past the lease: the old sweep would have closed R1 by now
    assert stack.request(1).state.value == "EXECUTING"
    assert "R2" in stack.say(f'rollback {OTHER} 2 --reason "INC-9 second model"')
    stack.say("approve R2", user=BOB, wait=False)
    first = stack.wait_state(1, {"SUCCEEDED", "FAILED", "PARTIAL"}, timeout=LOAD_S * 3)
    assert first.state.value == "SUCCEEDED", stack.operations(1)
    second = stack.wait_state(2, {"SUCCEEDED", "FAILED", "PARTIAL"}, timeout=60)
    assert second.state.value == "SUCCEEDED", stack.operations(2)
    assert stack.view(MODEL) == [1, 1, 1] and stack.consistent(MODEL) == 1
    assert stack.view(OTHER) == [2, 2, 2] and stack.consistent(OTHER) == 2
    op1, op2 = stack.operations(1)[0], stack.operations(2)[0]
    assert op1["finished_at"] <= op2["started_at"], "the second rollout overlapped the first"
    assert not [e for e in stack.audit() if e.outcome == "recovered"]
    assert [e.outcome for e in stack.audit(1) if e.action == "execute"] == ["executing", "succeeded"]
    assert stack.audit_verifies()
    posts = wait_until(lambda: stack.fake.calls_to("chat.postMessage", channel=INCIDENT) or None, 30, "incident")
    assert any("R1 SUCCEEDED" in str(p.body) for p in posts)


def test_sigterm_lets_a_running_rollout_finish_then_exits(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """SIGTERM during an 8 s load: serve stops taking requests, the rollout finishes and is recorded SUCCEEDED,
    then the process exits 0 (the time from SIGTERM to exit is printed)."""
    stack = serve_stack(db_url, load_seconds=8.0, versions=(2, 3))
    assert "R1" in stack.say(f'rollback {MODEL} 1 --reason "INC-10 drain"')
    stack.say("approve R1", user=BOB, wait=False)
    stack.wait_state(1, {"EXECUTING"}, timeout=30)
    started = time.monotonic()
    assert stack.bots[0].terminate(timeout_s=90) == 0
    print(f"\nSIGTERM during an 8 s load -> exit after {time.monotonic() - started:.1f}s")
    assert stack.request(1).state.value == "SUCCEEDED", stack.operations(1)
    assert stack.view() == [1, 1, 1] and stack.consistent() == 1
