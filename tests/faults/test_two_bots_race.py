"""Two `modelbot serve` processes on one PostgreSQL database and one fleet, raced: every request is approved by
two approvers at the same instant through both processes (plus a double click on the card's button), twenty
times in a row. Exactly one execution per request, never two rollouts at once, and the fleet, the database and
the audit chain agree at the end. The time taken is printed (run with -s)."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dbs import fresh_database_url
from tests.devstack_support import wait_until
from tests.e2e.stack import BOB, DAVE, OPS
from tests.faults.serve_harness import MODEL, ServeStack, elapsed_since

pytestmark = pytest.mark.postgres

ROUNDS = 20
CLOSED = {"SUCCEEDED", "FAILED", "PARTIAL", "VOID"}
BUDGET_S = 120.0


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL schema (skipped without MODELBOT_TEST_POSTGRES_URL)."""
    with fresh_database_url("postgres", tmp_path) as url:
        yield url


def _card_ts(stack: ServeStack, request_id: int) -> str:
    """The ts of the approval card of `request_id` (posted by whichever process's outbox got to it)."""

    def find() -> str | None:
        for call in stack.fake.calls_to("chat.postMessage", channel=OPS):
            blocks = call.body.get("blocks") or []
            blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
            for block in blocks:
                if block.get("type") == "actions" and any(
                    e.get("value") == str(request_id) for e in block.get("elements", [])
                ):
                    return str(call.response["ts"])
        return None

    return wait_until(find, 15, f"the card of R{request_id}")


def _all_at_once(actions: list[Callable[[], int]]) -> list[int]:
    """Run `actions` on threads released together by a barrier; their HTTP statuses."""
    barrier = threading.Barrier(len(actions))
    statuses: list[int] = [0] * len(actions)

    def run(i: int) -> None:
        barrier.wait()
        statuses[i] = actions[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


def _approve_from_everywhere(stack: ServeStack, request_id: int) -> tuple[list[int], str]:
    """BOB types `approve` through one process, DAVE through the other, and BOB clicks the card's Approve button
    through the second one too (a double click), all at the same instant; the processes swap every round.
    Returns the HTTP statuses and the card's ts."""
    first, second = (request_id % 2, (request_id + 1) % 2)
    ts = _card_ts(stack, request_id)

    def typed(bot: int, user: str) -> Callable[[], int]:
        driver = stack.bots[bot].driver(stack.fake.response_url)
        return lambda: driver.slash_command(f"approve R{request_id}", user, channel_id=OPS).status

    def clicked(bot: int, user: str) -> Callable[[], int]:
        driver = stack.bots[bot].driver(stack.fake.response_url)
        return lambda: driver.click("approve", str(request_id), user, OPS, ts).status

    return _all_at_once([typed(first, BOB), typed(second, DAVE), clicked(second, BOB)]), ts


def _said_to_users(stack: ServeStack) -> list[str]:
    return stack.replies() + [str(c.body.get("text", "")) for c in stack.fake.calls_to("chat.postEphemeral")]


def _answers_complete(stack: ServeStack) -> list[str] | None:
    """What the users were told, once it holds an answer to every approval (two refusals per request)."""
    said = _said_to_users(stack)
    refusals = [t for t in said if re.match(r"(cannot approve R\d+|R\d+ is )", t)]
    return said if len(refusals) >= 2 * ROUNDS else None


def test_twenty_requests_approved_at_once_through_two_processes_execute_once_each(
    pg_url: str, serve_stack: Callable[..., ServeStack]
) -> None:
    """Twenty warm rollbacks (to 2, to 3, ...), each approved simultaneously through both serve processes by two
    approvers and a double click: each executes exactly once, no two rollouts overlap in time, no request gets
    an HTTP 500 or an internal error, and the fleet, the database and the audit chain agree at the end."""
    stack = serve_stack(pg_url, bots=2, versions=(2, 3), stable=3)
    started = time.monotonic()
    statuses: list[int] = []
    cards: dict[int, str] = {}
    for n in range(1, ROUNDS + 1):
        target = 2 if n % 2 else 3
        reply = stack.say(f'rollback {MODEL} {target} --reason "race round {n}"', bot=n % 2)
        assert reply.startswith(f"R{n}:"), reply
        sent, cards[n] = _approve_from_everywhere(stack, n)
        statuses += sent
        closed = stack.wait_state(n, CLOSED, timeout=30)
        assert closed.state.value == "SUCCEEDED", (n, closed.state, stack.operations(n))
    took = elapsed_since(started)

    assert statuses == [200] * (3 * ROUNDS), statuses
    operations: list[dict[str, Any]] = []
    approvals: dict[str, int] = {}
    for n in range(1, ROUNDS + 1):
        ops = stack.operations(n)
        assert len(ops) == 1, (n, ops)
        operations += ops
        executes = [e.outcome for e in stack.audit(n) if e.action == "execute"]
        assert executes == ["executing", "succeeded"], (n, executes)
        decided = [e.outcome for e in stack.audit(n) if e.action == "approve"]
        assert decided.count("approved") == 1, (n, decided)
        for outcome in decided:
            approvals[outcome] = approvals.get(outcome, 0) + 1
    operations.sort(key=lambda op: op["started_at"])
    for earlier, later in itertools.pairwise(operations):
        assert earlier["finished_at"] <= later["started_at"], f"rollouts overlapped: {earlier} / {later}"
    with stack.db.uow(readonly=True) as uow:
        assert not uow.operations.unfinished(), "an operation was left open"
    holders = {op["holder"] for op in operations}
    assert len(holders) == 2, f"one process executed everything: {holders}"

    final = 2 if ROUNDS % 2 else 3
    assert stack.view() == [final] * 3 and stack.consistent() == final
    assert stack.audit_verifies()
    # Every one of the 3 x 20 approvals is answered: the winner by the outcome (a typed one in a reply, a click
    # on the card only), each loser by a refusal; no request is reported SUCCEEDED twice, every card says it.
    said = wait_until(lambda: _answers_complete(stack), 20, "an answer to every approval")
    won_by_click = 0
    kinds: set[str] = set()
    for n in range(1, ROUNDS + 1):
        answers = [t for t in said if re.search(rf"\bR{n}\b", t) and not t.startswith(f"R{n}:")]
        successes = [t for t in answers if t.startswith(f"R{n} SUCCEEDED")]
        refusals = [t for t in answers if t not in successes]
        assert len(successes) <= 1 and len(refusals) == 2, (n, answers)
        assert not [t for t in refusals if "went wrong" in t], (n, refusals)
        won_by_click += not successes
        kinds.update(re.sub(r"R\d+", "Rn", t) for t in refusals)
    wait_until(lambda: all("SUCCEEDED" in str(stack.fake.messages[(OPS, ts)]) for ts in cards.values()), 20, "cards")
    assert not [t for t in said if "Something went wrong" in t], "an internal error reached a user"
    crashes = [b.name for b in stack.bots if "Traceback" in b.log.read_text()]
    print(
        f"\n[two bots race] {ROUNDS} requests x 3 simultaneous approvals in {took}s;"
        f" executions per process: { {h: sum(op['holder'] == h for op in operations) for h in holders} };"
        f" approve audit outcomes: {approvals}; won by the click: {won_by_click}; refusals: {sorted(kinds)};"
        f" logs with a traceback: {crashes or 'none'}"
    )
    assert not crashes, "a serve process logged a traceback"
    assert took < BUDGET_S
