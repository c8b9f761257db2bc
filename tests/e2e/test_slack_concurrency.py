"""Double clicks and simultaneous approvals through Slack execute a rollout exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.devstack_support import wait_until
from tests.e2e.slack_driver import HttpResult
from tests.e2e.stack import ALICE, BOB, DAVE, OPS, ROLLBACK, Stack

RELOADED = "Finished reloading config"


def _reloads(stack: Stack) -> list[int]:
    """How many config reloads each emulator replica has logged so far."""
    assert stack.dev is not None
    return [stack.dev.log(i).count(RELOADED) for i in range(len(stack.dev.targets))]


def _executions(stack: Stack) -> list[str]:
    return [r.outcome for r in stack.audit_rows() if r.action == "execute"]


def _request_card(stack: Stack) -> str:
    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
    return str(stack.card(OPS).response["ts"])


def _assert_one_execution(stack: Stack, before: list[int]) -> None:
    wait_until(lambda: stack.request(1).state.value == "SUCCEEDED", 60, "the rollout")
    stack.settled()
    operations = stack.operations(1)
    assert len(operations) == 1, operations
    assert _executions(stack) == ["executing", "succeeded"]
    rounds = len(operations[0]["phases_run"])
    assert rounds == 1  # a warm rollback: v2 is loaded already, only the label moves
    assert [after - was for after, was in zip(_reloads(stack), before, strict=True)] == [rounds] * 3


def test_double_click_executes_once(devstack_stack: Callable[..., Stack]) -> None:
    """bob clicking Approve twice in a row runs one rollout: one operation, one reload round per replica."""
    stack = devstack_stack()
    ts = _request_card(stack)
    before = _reloads(stack)
    first = stack.driver.click("approve", "1", BOB, OPS, ts)
    second = stack.driver.click("approve", "1", BOB, OPS, ts)
    assert (first.status, second.status) == (200, 200)
    _assert_one_execution(stack, before)
    assert len(stack.fake.wait_for("chat.postEphemeral", 1, user=BOB)) == 1  # the second click is told why


def test_simultaneous_approvals_execute_once(devstack_stack: Callable[..., Stack]) -> None:
    """bob and dave clicking Approve at the same moment run one rollout; the approval is counted once."""
    stack = devstack_stack()
    ts = _request_card(stack)
    before = _reloads(stack)
    start = threading.Barrier(2)
    results: dict[str, HttpResult] = {}

    def click(user: str) -> None:
        body = stack.driver.block_action_body("approve", "1", user, OPS, ts)
        start.wait()
        results[user] = stack.driver.post(body)

    threads = [threading.Thread(target=click, args=(user,)) for user in (BOB, DAVE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert {user: r.status for user, r in results.items()} == {BOB: 200, DAVE: 200}
    _assert_one_execution(stack, before)
    assert len(stack.request(1).approvals) == 1
    approvals = [r for r in stack.audit_rows() if r.action == "approve" and r.outcome == "approved"]
    assert len(approvals) == 1
