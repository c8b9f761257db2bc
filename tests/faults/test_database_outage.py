"""PostgreSQL away from `modelbot serve` (connections refused through tests/faults/tcp_proxy.py) while the test
keeps reading the same database directly: a rollout caught by the outage ends truthfully and is recorded exactly
once, an outcome that ends during a short outage is recorded once the database is back, /readyz follows the
database, and the log stays small. Timings and log volume are printed (run with -s)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url

from bot.core.audit import AuditEntry
from tests.dbs import fresh_database_url
from tests.devstack_support import wait_until
from tests.e2e.slack_driver import HttpResult
from tests.e2e.stack import BOB, INCIDENT
from tests.faults.serve_harness import MODEL, ServeStack, elapsed_since, http
from tests.faults.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

CLOSED = {"SUCCEEDED", "FAILED", "PARTIAL"}
PASSWORD = "pw-must-not-leak-7f3a"  # trust auth ignores it; it must never show in /readyz or the log
LONG_OUTAGE_S = 20.0  # longer than the fleet lease (15 s)
COLD_LOAD_S = 8.0
MAX_OUTAGE_LOG_LINES = 50
MAX_OUTAGE_LOG_RECORDS = 20
RECORD = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (?:WARNING|ERROR|CRITICAL|INFO|DEBUG) ([\w.]+: [^\n]{0,60})", re.M)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL schema (skipped without MODELBOT_TEST_POSTGRES_URL)."""
    with fresh_database_url("postgres", tmp_path) as url:
        yield url


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[TcpProxy]:
    """A cuttable loopback forwarder to that PostgreSQL server."""
    url = make_url(pg_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy


def _start(serve_stack: Callable[..., ServeStack], pg_url: str, proxy: TcpProxy, **options: object) -> ServeStack:
    """The serve process reaches PostgreSQL through the proxy (with a password in its URL); the test directly."""
    through = make_url(pg_url).set(host="127.0.0.1", port=proxy.port, password=PASSWORD)
    return serve_stack(pg_url, bot_db_url=through.render_as_string(hide_password=False), **options)


def _state(stack: ServeStack, request_id: int) -> str | None:
    req = stack.request(request_id)
    return req.state.value if req is not None else None


def _terminal(stack: ServeStack, request_id: int) -> list[AuditEntry]:
    return [e for e in stack.audit(request_id) if e.action == "execute" and e.outcome != "executing"]


def _chat_texts(stack: ServeStack) -> list[str]:
    """Everything the bot said: replies to the users, and every message it posted or updated."""
    said = list(stack.replies())
    for method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
        said += [str(c.body.get("text", "")) + str(c.body.get("blocks", "")) for c in stack.fake.calls_to(method)]
    return said


def _outcome_replies(stack: ServeStack, request_id: int) -> list[str]:
    """The replies that report the request's outcome (to whoever approved it)."""
    heads = tuple(f"R{request_id} {state}" for state in CLOSED)
    return [t for t in stack.replies() if t.startswith(heads)]


def _answer_if(answer: HttpResult, status: int) -> HttpResult | None:
    return answer if answer.status == status else None


def _log_size(stack: ServeStack) -> int:
    return stack.bots[0].log.stat().st_size


def _log_since(stack: ServeStack, offset: int) -> bytes:
    with stack.bots[0].log.open("rb") as log:
        log.seek(offset)
        return log.read()


def _settled_fleet(stack: ServeStack, versions: set[int]) -> None:
    wait_until(lambda: all(versions <= s for s in stack.loaded()) or None, 60, f"every replica serving {versions}")


def _fleet_equals_database(stack: ServeStack) -> int:
    """Every replica resolves `stable` alike, equal to the database's desired state, and has loaded exactly the
    versions the desired state lists; returns the stable version."""
    stable = stack.consistent()
    assert stable is not None, (stack.view(), stack.desired().model(MODEL))
    desired = stack.desired().model(MODEL)
    assert desired is not None
    wanted = set(desired.policy.versions)
    wait_until(lambda: all(s == wanted for s in stack.loaded()) or None, 20, f"every replica loaded {wanted}")
    return stable


@dataclass(frozen=True)
class MidRollout:
    """Where in the rollout the 20 s outage begins, and which truthful ending that makes the only possible one."""

    options: dict[str, object]
    target: int
    under_way: Callable[[ServeStack], bool]
    outcome: str  # FAILED: stopped before the switch; SUCCEEDED: completed, recorded late
    then: int  # the next rollback's target (warm)


MID_ROLLOUT = {
    # Cold rollback to v1: the cut lands in the 8 s load, so the switch config cannot be persisted, so not sent.
    "load": MidRollout(
        {"load_seconds": COLD_LOAD_S}, 1, lambda stack: any(1 in seen for seen in stack.dev_status()), "FAILED", 2
    ),
    # Warm rollback to v2 whose third replica answers the golden request 4 s late: the cut lands in the smoke test,
    # so the switch config cannot be persisted, so not sent.
    "smoke": MidRollout(
        {"smoke_timeout_s": 20, "per_replica": {2: {"devstack_predict_delay_seconds": 4.0}}},
        2,
        lambda stack: b"rollout phase smoke" in stack.bots[0].log.read_bytes(),
        "FAILED",
        2,
    ),
    # Warm rollback to v2 with one slow replica: the cut lands after the switch was persisted and sent.
    "switch": MidRollout(
        {"per_replica": {2: {"devstack_reload_delay_seconds": 1.5}}},
        2,
        lambda stack: stack.view()[:2] == [2, 2],
        "SUCCEEDED",
        3,
    ),
}


@pytest.mark.parametrize("cut_during", list(MID_ROLLOUT))
def test_refused_for_longer_than_the_lease_mid_rollout_ends_truthfully(
    pg_url: str, pg_proxy: TcpProxy, serve_stack: Callable[..., ServeStack], cut_during: str
) -> None:
    """Connections refused for 20 s (longer than the lease) from the load, the smoke test or the switch on: the
    request ends stopped before the switch saying the database was unreachable, or completed and recorded late; with
    one outcome row, no recovery, the fleet unsplit and equal to the database, a verifying chain, a working next
    rollback."""
    case = MID_ROLLOUT[cut_during]
    stack = _start(serve_stack, pg_url, pg_proxy, versions=(2, 3), **case.options)
    _settled_fleet(stack, {2, 3})
    assert "R1" in stack.say(f'rollback {MODEL} {case.target} --reason "INC-7 database outage"')
    stack.say("approve R1", user=BOB, wait=False)
    approved = time.monotonic()
    wait_until(lambda: case.under_way(stack) or None, 30, f"the {cut_during} phase under way")
    log_from = _log_size(stack)
    pg_proxy.cut()
    cut = time.monotonic()
    views: list[tuple[int | str, ...]] = []
    reply_at: float | None = None
    while time.monotonic() - cut < LONG_OUTAGE_S:
        views.append(tuple(stack.view()))
        if reply_at is None and _outcome_replies(stack, 1):
            reply_at = elapsed_since(cut)
        assert _state(stack, 1) == "EXECUTING"  # nothing can be recorded while the database is away
        time.sleep(0.25)
    outage_log = _log_since(stack, log_from)
    pg_proxy.heal()
    healed = time.monotonic()
    closed = stack.wait_state(1, CLOSED, timeout=60)
    closed_after_heal = elapsed_since(healed)

    ops = stack.operations(1)
    assert len(ops) == 1 and ops[0]["finished_at"] is not None, ops
    terminal = _terminal(stack, 1)
    assert len(terminal) == 1, [(e.action, e.outcome) for e in stack.audit(1)]
    assert not [e for e in stack.audit() if e.outcome == "recovered"], "a live rollout was 'recovered'"
    # Only the switch being applied may show a split, and only until the slow replica has applied it.
    split = [len(set(v)) > 1 for v in views]
    assert False in split, f"the fleet stayed split: {views}"
    assert True not in split[split.index(False) :] and split.index(False) <= 10, f"the fleet was split: {views}"
    said = _chat_texts(stack)
    assert not [t for t in said if "restart" in t.lower()], "the bot claimed a restart"
    late = str(terminal[0].detail.get("recorded_late", ""))
    message = str(ops[0]["message"])
    assert closed.state.value == case.outcome, (closed.state, message)
    if closed.state.value == "FAILED":
        path = "stopped before the switch"
        assert "switch config could not be recorded before sending it" in message, message
        assert "database" in message.lower() and ("unavailable" in message or "unreachable" in message), message
        assert PASSWORD not in message
        assert stack.view() == [3, 3, 3]
    else:
        path = "completed, recorded late"
        assert late, terminal[0].detail
        assert stack.view() == [case.target] * 3
    lines = outage_log.count(b"\n")
    replies = _outcome_replies(stack, 1)
    # Told the truth: "not recorded yet" exactly when the outcome was recorded late. (Once, on a loaded machine, the
    # finish retries outlasted the outage and recorded it normally: then the reply, after the heal, says so plainly.)
    assert len(replies) == 1 and ("not recorded yet" in replies[0]) == bool(late), (replies, late)
    assert _fleet_equals_database(stack) == stack.view()[0]
    assert stack.audit_verifies()
    print(
        f"\n[database outage {LONG_OUTAGE_S:.0f}s from the {cut_during}] path: {path}; R1 {closed.state.value};"
        f" recorded late: {late or '-'}; approve->cut {round(cut - approved, 1)}s; rollout ran"
        f" {round(ops[0]['elapsed_s'], 1)}s; approver told after {reply_at}s of the outage; recorded"
        f" {closed_after_heal}s after the heal; split views during the outage: {sum(split)} of {len(views)};"
        f" log during the outage: {lines} lines / {len(outage_log)} bytes"
    )  # the log volume is asserted by test_log_volume_during_a_20s_outage_is_bounded

    assert "R2" in stack.say(f'rollback {MODEL} {case.then} --reason "INC-7 after the outage"')
    stack.say("approve R2", user=BOB, wait=False)
    assert stack.wait_state(2, CLOSED, timeout=60).state.value == "SUCCEEDED", stack.operations(2)
    assert stack.view() == [case.then] * 3 and stack.consistent() == case.then
    assert stack.audit_verifies()


def test_short_outage_as_the_rollout_ends_is_recorded_once_after(
    pg_url: str, pg_proxy: TcpProxy, serve_stack: Callable[..., ServeStack]
) -> None:
    """A 3 s outage that begins while the last replica applies its switch: the rollout ends while the database
    is away, and its outcome is recorded after the heal, exactly once (one row, one incident post, one reply)."""
    stack = _start(serve_stack, pg_url, pg_proxy, per_replica={2: {"devstack_reload_delay_seconds": 1.5}})
    _settled_fleet(stack, {2, 3})
    assert "R1" in stack.say(f'rollback {MODEL} 2 --reason "INC-8 warm, short outage"')
    stack.say("approve R1", user=BOB, wait=False)
    wait_until(lambda: stack.view()[:2] == [2, 2] or None, 30, "two replicas switched")
    pg_proxy.cut()
    cut = time.monotonic()
    wait_until(lambda: stack.view() == [2, 2, 2] or None, 10, "the last replica switched")
    switched = elapsed_since(cut)
    assert _state(stack, 1) == "EXECUTING"
    time.sleep(max(0.0, 3.0 - (time.monotonic() - cut)))
    assert _state(stack, 1) == "EXECUTING"
    healed_at = datetime.now(UTC)
    pg_proxy.heal()
    healed = time.monotonic()
    closed = stack.wait_state(1, CLOSED, timeout=30)
    recorded = elapsed_since(healed)

    assert closed.state.value == "SUCCEEDED", stack.operations(1)
    ops = stack.operations(1)
    assert len(ops) == 1, ops
    finished = ops[0]["finished_at"]
    finished = finished if finished.tzinfo else finished.replace(tzinfo=UTC)
    assert finished >= healed_at, (finished, healed_at)  # recorded after the heal, not before the cut
    terminal = _terminal(stack, 1)
    assert [e.outcome for e in terminal] == ["succeeded"], [(e.action, e.outcome) for e in stack.audit(1)]
    assert stack.view() == [2, 2, 2] and _fleet_equals_database(stack) == 2
    assert stack.audit_verifies()
    posts = wait_until(
        lambda: (
            [c for c in stack.fake.calls_to("chat.postMessage", channel=INCIDENT) if "R1 SUCCEEDED" in str(c.body)]
            or None
        ),
        30,
        "the incident post",
    )
    time.sleep(1.0)  # anything posted twice would have arrived by now (the outbox polls far faster)
    posts = [c for c in stack.fake.calls_to("chat.postMessage", channel=INCIDENT) if "R1 SUCCEEDED" in str(c.body)]
    assert len(posts) == 1, [c.body for c in posts]
    outcome_replies = _outcome_replies(stack, 1)
    assert len(outcome_replies) == 1 and "SUCCEEDED" in outcome_replies[0], outcome_replies
    late = terminal[0].detail.get("recorded_late")
    print(
        f"\n[database outage 3s at the end] last replica switched {switched}s into the outage; outcome recorded"
        f" {recorded}s after the heal ({'late: ' + str(late) if late else 'by the finish retries'});"
        f" reply: {outcome_replies[0].splitlines()[0]}"
    )


def test_readyz_follows_the_database_and_names_it_without_secrets(
    pg_url: str, pg_proxy: TcpProxy, serve_stack: Callable[..., ServeStack]
) -> None:
    """/readyz is 503 naming the database (never its password) while connections are refused, and 200 again
    right after they are accepted."""
    stack = _start(serve_stack, pg_url, pg_proxy)
    ready = stack.bots[0].url + "/readyz"
    assert http(ready).status == 200
    pg_proxy.cut()
    cut = time.monotonic()
    down = wait_until(lambda: _answer_if(http(ready), 503), 10, "/readyz 503")
    noticed = elapsed_since(cut)
    bodies = {down.body.strip()}
    while time.monotonic() - cut < 3.0:
        answer = http(ready)
        assert answer.status == 503, answer
        bodies.add(answer.body.strip())
        time.sleep(0.2)
    pg_proxy.heal()
    healed = time.monotonic()
    wait_until(lambda: http(ready).status == 200 or None, 10, "/readyz 200 after the heal")
    back = elapsed_since(healed)
    for body in bodies:
        assert body.startswith("database:"), body
        assert f"127.0.0.1:{pg_proxy.port}" in body, body
        assert PASSWORD not in body and "postgres:" not in body, body
    assert PASSWORD not in stack.bots[0].log.read_text()
    print(f"\n[/readyz] 503 within {noticed}s of the cut ({sorted(bodies)[0]!r}); 200 within {back}s of the heal")


def test_log_volume_during_a_20s_outage_is_bounded(
    pg_url: str, pg_proxy: TcpProxy, serve_stack: Callable[..., ServeStack]
) -> None:
    """During a 20 s outage with users typing every 2 s and /readyz polled every second, the serve log grows by
    fewer than 200 lines (repeated errors are collapsed), every user is told the database is unreachable, and
    commands work again after the heal."""
    stack = _start(serve_stack, pg_url, pg_proxy)
    ready = stack.bots[0].url + "/readyz"
    assert "R1" in stack.say(f'rollback {MODEL} 2 --reason "INC-9 pending during the outage"')
    time.sleep(1.0)  # start-up and the request's own log lines are not the outage's
    log_from = _log_size(stack)
    pg_proxy.cut()
    cut = time.monotonic()
    answers: list[str] = []
    next_command = cut
    while time.monotonic() - cut < LONG_OUTAGE_S:
        if time.monotonic() >= next_command:
            answers.append(stack.say("requests", user=BOB, timeout=15))
            next_command += 2.0
        assert http(ready).status == 503
        time.sleep(1.0)
    outage_log = _log_since(stack, log_from)
    pg_proxy.heal()
    lines = outage_log.count(b"\n")
    records = RECORD.findall(outage_log.decode(errors="replace"))
    print(
        f"\n[log volume] {LONG_OUTAGE_S:.0f}s outage, {len(answers)} commands: {lines} lines / {len(outage_log)}"
        f" bytes written: {len(records)} records {records}, {outage_log.count(b'Traceback')} tracebacks"
    )
    assert len(records) < MAX_OUTAGE_LOG_RECORDS, records  # repeats of one kind are collapsed
    assert lines < MAX_OUTAGE_LOG_LINES, (
        f"{lines} log lines for {len(records)} records: the first record of each kind carries its whole chained"
        f" traceback ({outage_log.count(b'Traceback')} 'Traceback' headers)"
    )
    assert answers and all("database" in a and ("unavailable" in a or "unreachable" in a) for a in answers), answers
    assert PASSWORD.encode() not in outage_log
    wait_until(lambda: "R1" in stack.say("requests", user=BOB) or None, 15, "the pending request listed again")
    assert http(ready).status == 200
