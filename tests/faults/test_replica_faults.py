"""One TF Serving replica SIGKILLed or SIGSTOPped in each phase of a rollout while `modelbot serve` stays alive:
the request ends SUCCEEDED, PARTIAL or FAILED truthfully (the replica named per replica, in the reply and in the
incident post), exactly one outcome is audited, the chain verifies, nothing answers HTTP 500, and once the replica
is back (resumed, or restarted from the model_config_file the bot writes) the fleet equals the database, if need
be after the operator re-sends the same rollback (which must re-send, never answer "nothing to do", while a
replica drifts)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.devstack_support import wait_until
from tests.e2e.stack import BOB, INCIDENT
from tests.faults.serve_harness import MODEL, ServeStack, http

CLOSED = {"SUCCEEDED", "FAILED", "PARTIAL"}
LOAD_S = 4.0  # a cold load long enough to act on one replica in the middle of it
FAULTY = 2  # the replica that is killed or stopped
NOTHING_TO_DO = "nothing to do"


# --- helpers -------------------------------------------------------------------------------------------------


@contextmanager
def _probing(stack: ServeStack) -> Iterator[Counter[int]]:
    """Poll /healthz, /readyz and /metrics of the bot while the fault lasts; yields the statuses seen."""
    seen: Counter[int] = Counter()
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            for path in ("/healthz", "/readyz", "/metrics"):
                try:
                    seen[http(stack.bots[0].url + path, timeout=15).status] += 1
                except OSError as exc:  # no answer at all is a failure too
                    seen[-1] += 1
                    print(f"probe {path}: {exc}")
            stop.wait(0.5)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(20)


def _no_server_errors(stack: ServeStack, probed: Counter[int]) -> None:
    """Nothing answered 5xx but /readyz's 503 (a degraded fleet), no reply blamed an internal error, and the bot
    never logged a request that crashed (the HTTP server logs those and answers 500)."""
    assert probed[200] > 0 and set(probed) <= {200, 503}, probed
    assert not [t for t in stack.replies() if "went wrong on our side" in t or "internal error" in t]
    log = stack.bots[0].log.read_text()
    assert "Exception while serving" not in log and "Traceback" not in log, log[-3000:]


def _request(stack: ServeStack, text: str, request_id: int) -> str:
    reply = stack.say(text)
    assert f"R{request_id}" in reply and NOTHING_TO_DO not in reply, reply
    stack.say(f"approve R{request_id}", user=BOB, wait=False)
    return reply


def _closed(stack: ServeStack, request_id: int, outcome: str, failed: list[str], timeout: float = 90) -> str:
    """Wait for the request to close; check its state, the per-replica rows, the one audited outcome, the reply
    and the incident post all tell the same story, naming the `failed` replicas. Returns the reply text."""
    req = stack.wait_state(request_id, CLOSED, timeout=timeout)
    ops = stack.operations(request_id)
    assert req.state.value == outcome, ops
    assert len(ops) == 1 and ops[0]["outcome"] == outcome, ops
    rows = {row["replica"]: row for row in ops[0]["replicas"]}
    assert set(rows) == set(stack.dev.targets), rows
    assert sorted(r for r, row in rows.items() if not row["ok"]) == sorted(failed), rows
    executed = [e for e in stack.audit(request_id) if e.action == "execute"]
    assert [e.outcome for e in executed] == ["executing", outcome.lower()], [e.outcome for e in executed]
    audited = executed[-1].detail["replicas"]
    assert sorted(r for r, row in audited.items() if not row["ok"]) == sorted(failed), audited
    head = f"R{request_id} {outcome}"
    reply = wait_until(lambda: next((t for t in stack.replies() if t.startswith(head)), None), 30, head)
    wait_until(lambda: _incident(stack, head) or None, 30, f"the incident post of {head}")
    incident = _incident(stack, head)
    assert len(incident) == 1, incident
    for replica in failed:
        assert f"FAIL {replica}" in reply, reply
        assert f"FAIL {replica}" in incident[0], incident
    assert stack.audit_verifies()
    print(f"\n{reply}")
    return reply


def _incident(stack: ServeStack, head: str) -> list[str]:
    return [
        str(p.body["text"]) for p in stack.fake.calls_to("chat.postMessage", channel=INCIDENT) if head in p.body["text"]
    ]


def _settled(stack: ServeStack, version: int, timeout: float = 30) -> None:
    """Every replica resolves `stable` to `version`, which the database holds, and loads what it lists."""
    wait_until(lambda: stack.consistent() == version or None, timeout, f"the fleet consistent on v{version}")
    state = stack.desired().model(MODEL)
    assert state is not None
    wanted = set(state.policy.versions)
    wait_until(lambda: stack.loaded() == [wanted] * len(stack.dev.targets) or None, timeout, f"loaded {wanted}")


def _no_drift_seen(stack: ServeStack, version: int) -> None:
    """The bot itself sees the fleet back: the same rollback has nothing to do (within gRPC's reconnect backoff,
    at most 5 s, the bot may still see a restarted replica as unreachable and rightly offer a re-send)."""
    wait_until(
        lambda: NOTHING_TO_DO in stack.say(f"rollback {MODEL} {version} --dry-run") or None,
        15,
        "the bot to see no drift",
    )
    assert NOTHING_TO_DO in stack.say(f'rollback {MODEL} {version} --reason "INC-7 again"')


def _cold_rollback_loading(stack: ServeStack) -> str:
    """Start the cold rollback to v1 and return once v1 is LOADING on the faulty replica."""
    _request(stack, f'rollback {MODEL} 1 --reason "INC-7 cold"', 1)
    stack.wait_state(1, {"EXECUTING"}, timeout=30)
    faulty = stack.stubs()[FAULTY]
    wait_until(lambda: faulty.status(MODEL, missing_ok=True).get(1) == "LOADING" or None, 20, "v1 loading")
    return stack.dev.targets[FAULTY]


def _warm_rollback_switching(stack: ServeStack) -> str:
    """Start the warm rollback to v2 and return while the faulty replica (delayed) is still applying the switch."""
    _request(stack, f'rollback {MODEL} 2 --reason "INC-7 warm"', 1)
    wait_until(lambda: stack.view()[:FAULTY] == [2, 2] or None, 30, "two replicas switched")
    # The third one's switch must have reached its handler (a stop before that, on a loaded machine, would hold the
    # request in the socket past its deadline, and it would never be applied): the emulator logs each delayed reload.
    wait_until(lambda: _inside_a_reload(stack) or None, 10, "the third replica inside its delayed switch reload")
    assert stack.view()[FAULTY] == 3  # the third one is still inside its (delayed) reload
    return stack.dev.targets[FAULTY]


def _inside_a_reload(stack: ServeStack) -> bool:
    log = stack.dev.log(FAULTY)
    return log.rfind("devstack: reload received") > log.rfind("Finished reloading config")


def _timed(what: str, started: float) -> None:
    print(f"\n{what}: {time.monotonic() - started:.1f}s")


# --- load phase ----------------------------------------------------------------------------------------------


def test_replica_killed_while_loading(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """A replica SIGKILLed mid-load is reported PARTIAL by name while the others switch; restarted from the
    model_config_file it comes back on the new version, equal to the database, and a re-send has nothing to do."""
    started = time.monotonic()
    stack = serve_stack(db_url, load_seconds=LOAD_S, versions=(2, 3), stable=3)
    with _probing(stack) as probed:
        faulty = _cold_rollback_loading(stack)
        stack.dev.kill(FAULTY)
        _closed(stack, 1, "PARTIAL", [faulty])
        assert stack.view()[:FAULTY] == [1, 1]
        stack.dev.restart(FAULTY)
        _settled(stack, 1)
    _no_drift_seen(stack, 1)
    _no_server_errors(stack, probed)
    assert stack.audit_verifies()
    _timed("killed while loading", started)


def test_replica_stopped_while_loading(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """A replica SIGSTOPped mid-load is reported PARTIAL by name; resumed, it drifts (still on v3), so the same
    rollback re-sends instead of answering "nothing to do", and then succeeds on every replica."""
    started = time.monotonic()
    stack = serve_stack(db_url, load_seconds=LOAD_S, versions=(2, 3), stable=3)
    with _probing(stack) as probed:
        faulty = _cold_rollback_loading(stack)
        stack.dev.pause(FAULTY)
        try:
            _closed(stack, 1, "PARTIAL", [faulty])
        finally:
            stack.dev.resume(FAULTY)
        wait_until(lambda: stack.view() == [1, 1, 3] or None, 30, "the resumed replica still on v3")
        assert stack.consistent() is None  # the database says v1: the fleet drifted
        plan = stack.say(f"rollback {MODEL} 1 --dry-run")
        assert NOTHING_TO_DO not in plan and f"{faulty} resolves to v3" in plan, plan  # it names the drift
        _request(stack, f'rollback {MODEL} 1 --reason "INC-7 resync"', 2)
        _closed(stack, 2, "SUCCEEDED", [])
        _settled(stack, 1)
    _no_server_errors(stack, probed)
    _timed("stopped while loading", started)


# --- switch phase --------------------------------------------------------------------------------------------


def test_replica_killed_while_switching(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """A replica SIGKILLed inside its (slow) switch reload is reported PARTIAL by name; restarted from the
    model_config_file it serves the new version, equal to the database."""
    started = time.monotonic()
    slow = {FAULTY: {"devstack_reload_delay_seconds": 3.0}}
    stack = serve_stack(db_url, versions=(2, 3), stable=3, per_replica=slow)
    with _probing(stack) as probed:
        faulty = _warm_rollback_switching(stack)
        stack.dev.kill(FAULTY)
        _closed(stack, 1, "PARTIAL", [faulty])
        stack.dev.restart(FAULTY)
        _settled(stack, 2)
    _no_drift_seen(stack, 2)
    _no_server_errors(stack, probed)
    _timed("killed while switching", started)


def test_replica_stopped_while_switching(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """A replica SIGSTOPped inside its switch reload past the converge deadline is reported PARTIAL by name;
    resumed, it applies the switch it was given and the fleet equals the database."""
    started = time.monotonic()
    slow = {FAULTY: {"devstack_reload_delay_seconds": 3.0}}
    stack = serve_stack(db_url, versions=(2, 3), stable=3, per_replica=slow, converge_timeout_s=8)
    with _probing(stack) as probed:
        faulty = _warm_rollback_switching(stack)
        stack.dev.pause(FAULTY)
        try:
            _closed(stack, 1, "PARTIAL", [faulty])
        finally:
            stack.dev.resume(FAULTY)
        _settled(stack, 2)
    _no_drift_seen(stack, 2)
    _no_server_errors(stack, probed)
    _timed("stopped while switching", started)
