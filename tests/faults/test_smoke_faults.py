"""The golden-request smoke test under faults, with `modelbot serve` as a process and a real devstack fleet: the bot
SIGKILLed while a slow replica is still answering, a replica stalled in Predict, and a 30 s load before the smoke
test. In every case no label moves before every replica has answered correctly."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.devstack.smoke_files import expected_scores
from tests.devstack_support import wait_until
from tests.e2e.stack import BOB
from tests.faults.serve_harness import CLOSED, MODEL, ServeStack, elapsed_since, kill_and_restart, recovered_detail

SMOKE_STARTED = b"rollout phase smoke"  # the serve log line of the phase's first event (sending the golden request)


def _smoke_under_way(stack: ServeStack) -> bool | None:
    return SMOKE_STARTED in stack.bots[0].log.read_bytes() or None


def _views_while(stack: ServeStack, seconds: float) -> list[tuple[int | str, ...]]:
    """What `stable` resolves to on every replica, sampled every 0.2 s for `seconds`."""
    views, until = [], time.monotonic() + seconds
    while time.monotonic() < until:
        views.append(tuple(stack.view()))
        time.sleep(0.2)
    return views


def test_killed_during_the_smoke_test_moves_no_label(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """Killed while the third replica takes 8 s to answer the golden request: no label moved before or after the
    kill, the restarted process closes R1 FAILED as recovered within 30 s with every replica still on v3 (the
    database equal to the fleet), and the next rollback, smoke test included, succeeds."""
    slow = {2: {"devstack_predict_delay_seconds": 8.0}}
    stack = serve_stack(db_url, versions=(2, 3), smoke_timeout_s=20, per_replica=slow)
    stack.say(f'rollback {MODEL} 2 --reason "INC-8 smoke"')
    stack.say("approve R1", user=BOB, wait=False)
    wait_until(lambda: _smoke_under_way(stack), 30, "the smoke test under way")
    before = _views_while(stack, 1.0)
    closed, took = kill_and_restart(stack, "the smoke test")
    assert set(before) == {(3, 3, 3)}, before
    assert took <= 30
    assert closed.state.value == "FAILED"
    assert set(recovered_detail(stack, 1)["found"].values()) == {"not switched (v3)"}  # type: ignore[attr-defined]
    assert stack.view() == [3, 3, 3] and stack.consistent() == 3
    assert stack.desired().model(MODEL).policy.versions == (2, 3)  # type: ignore[union-attr]
    assert stack.audit_verifies()
    stack.say(f'rollback {MODEL} 2 --reason "INC-8 again"')
    stack.say("approve R2", user=BOB, wait=False)
    done = stack.wait_state(2, CLOSED)
    assert done.state.value == "SUCCEEDED", stack.operations(2)
    assert stack.view() == [2, 2, 2] and stack.consistent() == 2


def test_a_replica_stalled_in_predict_fails_the_rollout_at_the_deadline(
    serve_stack: Callable[..., ServeStack], db_url: str
) -> None:
    """One replica's Predict stalls for 60 s while the smoke test's deadline is 2 s: the rollout ends FAILED within
    seconds naming that replica and the deadline, no replica's `stable` moved at any moment, and the two healthy
    replicas' correct answers are on record."""
    stack = serve_stack(
        db_url, versions=(2, 3), smoke_timeout_s=2, per_replica={1: {"devstack_predict_delay_seconds": 60.0}}
    )
    stalled = stack.dev.targets[1]
    stack.say(f'rollback {MODEL} 2 --reason "INC-9 stalled model"')
    stack.say("approve R1", user=BOB, wait=False)
    approved = time.monotonic()
    views: list[tuple[int | str, ...]] = []
    while (req := stack.request(1)) is None or req.state.value not in CLOSED:
        assert time.monotonic() - approved < 30, "the rollout waited far beyond the smoke test's deadline"
        views.append(tuple(stack.view()))
        time.sleep(0.2)
    took = elapsed_since(approved)
    print(f"\nreplica stalled in Predict (smoke deadline 2 s) -> R1 {req.state.value} {took}s after the approval")
    assert req.state.value == "FAILED"
    assert set(views) <= {(3, 3, 3)}, views
    by_replica = {r["replica"]: r for r in stack.operations(1)[0]["replicas"]}
    assert by_replica[stalled]["phase"] == "smoke", by_replica
    assert by_replica[stalled]["detail"] == "smoke test: no answer within 2s", by_replica
    want = f"score[0][0]={expected_scores(2)[0][0]:.4f}"
    for healthy in set(stack.dev.targets) - {stalled}:
        assert f"answered as expected ({want}" in by_replica[healthy]["detail"], by_replica[healthy]
    assert stack.view() == [3, 3, 3] and stack.consistent() == 3
    assert stack.audit_verifies()


def test_a_30s_load_then_the_smoke_test_then_the_switch(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """A cold rollback whose load takes 30 s: the smoke test runs only once v1 is AVAILABLE everywhere, passes on
    every replica, and only then does `stable` move; the request succeeds with each replica's answer recorded."""
    stack = serve_stack(db_url, versions=(2, 3), load_seconds=30.0, smoke_timeout_s=5)
    stack.say(f'rollback {MODEL} 1 --reason "INC-10 cold with smoke"')
    stack.say("approve R1", user=BOB, wait=False)
    wait_until(lambda: any(1 in seen for seen in stack.dev_status()) or None, 20, "the load of v1 under way")
    loading = time.monotonic()
    views: list[tuple[int | str, ...]] = []
    while (req := stack.request(1)) is None or req.state.value not in CLOSED:
        assert time.monotonic() - loading < 120, "a 30 s load took over two minutes"
        views.append(tuple(stack.view()))
        if views[-1] != (3, 3, 3):  # the first moved label: by then the smoke test must have passed everywhere
            assert _smoke_under_way(stack), "a label moved before the smoke test"
        time.sleep(0.5)
    took = elapsed_since(loading)
    print(f"\n30 s load + smoke test + switch -> R1 {req.state.value} {took}s after the load began")
    assert req.state.value == "SUCCEEDED", stack.operations(1)
    assert took >= 25  # it did wait for the load
    assert views[: int(25 / 0.5)] == [(3, 3, 3)] * min(len(views), 50)  # nothing moved during the load
    want = f"score[0][0]={expected_scores(1)[0][0]:.4f}"
    for replica in stack.operations(1)[0]["replicas"]:
        assert replica["ok"] and f"answered as expected ({want}" in replica["detail"], replica
    assert stack.view() == [1, 1, 1] and stack.consistent() == 1
    assert stack.audit_verifies()
