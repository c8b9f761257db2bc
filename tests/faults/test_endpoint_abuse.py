"""`POST /slack/events` under abuse (issue 7 item 4): forged, oversized and malformed requests against the real
server on loopback are refused with 401/413/400, never 500; they log a short fixed line at most, never a body,
a header or the secret; and they leave no trace in the database or at Slack.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import BoltRequest

from bot.frontends.http.router import MAX_BODY_BYTES
from bot.frontends.http.wsgi_server import WORKER_THREAD_PREFIX
from tests.dbs import BACKENDS, fresh_database_url
from tests.e2e.abuse import FORM, RESET, Answer, all_logs, row_counts, send, slack_headers, wsgi_post
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.stack import ALICE, SECRET, Stack, start_stack, stop_stack

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
CANARY = "CANARY-7f3a9c"  # in every abusive body: it must never reach a log
TEN_MB = 10 * 1024 * 1024
QUIET = {"outbox_options": {"poll_s": 3600.0}, "expiry_every_s": 3600.0}  # no background log lines in the batch
MAX_LOG_BYTES_PER_REQUEST = 300
WORKERS = WORKER_THREAD_PREFIX  # the threads requests are handled on (the body check covers every thread)


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """The bot as `modelbot serve` runs it on 127.0.0.1, with its background work idle during the batch."""
    with FakeSlack() as fake, fresh_database_url(request.param, tmp_path) as url:
        started = start_stack(tmp_path, url, fake, **QUIET)
        try:
            yield started
        finally:
            stop_stack(started)


def _command(text: str = f"whoami {CANARY}") -> bytes:
    fields = {
        "token": "x",
        "team_id": "T0FAKE",
        "channel_id": "C0OPS",
        "user_id": ALICE,
        "command": "/model",
        "text": text,
        "response_url": "http://127.0.0.1:9/hooks/1",
        "trigger_id": "1.2.3",
    }
    return urlencode(fields).encode()


def _forged_batch() -> list[tuple[str, bytes, dict[str, str], bool, set[int]]]:
    """(case, body, headers, chunked, acceptable statuses) for every way of knocking without the secret."""
    now = str(int(time.time()))
    command = _command()
    small_payload = f"payload={CANARY}{{not json".encode()
    big = (f"payload={CANARY}" + "x" * TEN_MB).encode()
    cases: list[tuple[str, bytes, dict[str, str], bool, set[int]]] = []
    for i in range(20):
        cases.append(("bad signature", command, slack_headers(None, command), False, {401}))
        cases.append(("payload not JSON", small_payload, slack_headers(None, small_payload), False, {401}))
        headers = {**slack_headers(SECRET, command), "X-Slack-Request-Timestamp": f"{CANARY}{i}"}
        cases.append(("non-numeric timestamp", command, headers, False, {401}))
        stale = str(int(now) - 301 - i)
        cases.append(("stale timestamp", command, slack_headers(SECRET, command, timestamp=stale), False, {401}))
        cases.append(("chunked, small", command, slack_headers(None, command), True, {401}))
    cases.append(("no signature headers", command, {"Content-Type": FORM}, False, {401}))
    cases.append(
        ("non-ASCII signature", command, {**slack_headers(None, command), "X-Slack-Signature": "v0=é"}, False, {401})
    )
    for _ in range(4):
        cases.append(("10 MB body", big, slack_headers(None, big), False, {413}))
        # the server stops reading at 1 MiB; a client still sending when it closes may see a reset first
        cases.append(("10 MB chunked", big, slack_headers(None, big), True, {413, RESET}))
    return cases


def test_forged_requests_are_refused_quietly_and_leave_no_trace(stack: Stack) -> None:
    """Forged, stale, garbled and 10 MB requests get 401/413 (never 500), log < 300 bytes each, record nothing."""
    stack.settled()
    rows_before, calls_before = row_counts(stack.bot.db.engine), len(stack.fake.calls)
    cases = _forged_batch()
    answers: list[tuple[str, Answer, set[int]]] = []
    with all_logs() as logs:
        for case, body, headers, chunked, acceptable in cases:
            answers.append((case, send(stack.server.port, body, headers, chunked=chunked), acceptable))

    wrong = [(case, answer.status) for case, answer, acceptable in answers if answer.status not in acceptable]
    assert not wrong, wrong
    statuses = Counter(answer.status for _, answer, _ in answers)
    assert statuses[500] == 0 and statuses[413] >= 4, statuses
    assert logs.size_from(WORKERS) <= MAX_LOG_BYTES_PER_REQUEST * len(cases), (logs.size, logs.lines[:5])
    log_text = logs.text()
    for secret in (CANARY, SECRET, "xxxxxxxxxx", "v0=", "payload="):
        assert secret not in log_text, (secret, [line for line in logs.lines if secret in line][:3])
    assert row_counts(stack.bot.db.engine) == rows_before
    assert stack.fake.calls[calls_before:] == []
    # Still serving: a signed command afterwards is answered.
    assert stack.driver.slash_command("whoami", ALICE).status == 200


def _signed(body: bytes, content_type: str = FORM) -> dict[str, str]:
    return {**slack_headers(SECRET, body), "Content-Type": content_type}


def _payload(data: Any) -> bytes:
    return urlencode({"payload": json.dumps(data)}).encode()


def _malformed() -> list[tuple[str, bytes, str]]:
    """(case, body, content type) of requests signed with the right secret that Slack could never have sent."""
    action = {
        "type": "block_actions",
        "user": {"id": ALICE},
        "trigger_id": "1.2",
        "actions": [{"action_id": "approve"}],
    }
    command_fields = dict(part.split("=", 1) for part in _command().decode().split("&"))
    return [
        ("payload not JSON", f"payload={CANARY}{{oops".encode(), FORM),
        ("payload is a JSON list", _payload([CANARY]), FORM),
        ("bogus payload type", _payload({**action, "type": f"{CANARY}_type"}), FORM),
        ("view_closed (not handled)", _payload({**action, "type": "view_closed"}), FORM),
        (
            "block_actions without user",
            _payload({k: v for k, v in action.items() if k != "user"} | {"c": CANARY}),
            FORM,
        ),
        ("block_actions with no actions", _payload({**action, "actions": [], "c": CANARY}), FORM),
        ("block_actions, action not an object", _payload({**action, "actions": [CANARY]}), FORM),
        ("team is a list", _payload({**action, "team": ["id", CANARY]}), FORM),
        (
            "view_submission without view",
            _payload({"type": "view_submission", "user": {"id": ALICE}, "c": CANARY}),
            FORM,
        ),
        ("deeply nested payload", b"payload=" + b"%5B" * 100_000, FORM),
        ("command without user_id", urlencode({**command_fields, "user_id": ""}).encode(), FORM),
        ("command and payload", _command() + b"&payload=%7B%7D", FORM),
        ("repeated field", _command() + b"&user_id=" + CANARY.encode(), FORM),
        ("neither command nor payload", f"hello={CANARY}".encode(), FORM),
        ("not a form", CANARY.encode() + b" no equals sign", FORM),
        ("JSON content type", json.dumps({"type": "event_callback", "c": CANARY}).encode(), "application/json"),
        ("text/plain", _command(), "text/plain"),
        ("multipart", _command(), "multipart/form-data; boundary=x"),
        ("no content type", _command(), ""),
        ("non-UTF-8 bytes", b"command=/model&text=" + CANARY.encode() + b"\xff\xfe", FORM),
        ("percent-escapes not UTF-8", b"command=%2Fmodel&text=%ff%fe" + CANARY.encode(), FORM),
        ("empty body", b"", FORM),
    ]


def test_signed_malformed_requests_get_400_and_record_nothing(stack: Stack) -> None:
    """Correctly signed requests with a bad payload, content type, missing fields or bad bytes get 400, no trace."""
    stack.settled()
    rows_before, calls_before = row_counts(stack.bot.db.engine), len(stack.fake.calls)
    with all_logs() as logs:
        answers = [(case, send(stack.server.port, body, _signed(body, ctype))) for case, body, ctype in _malformed()]
    assert [(case, a.status) for case, a in answers if a.status != 400] == []
    assert all(json.loads(a.body) == {"error": "malformed request"} for _, a in answers)
    assert CANARY not in logs.text() and SECRET not in logs.text()
    assert logs.size_from(WORKERS) <= MAX_LOG_BYTES_PER_REQUEST * len(answers)
    assert row_counts(stack.bot.db.engine) == rows_before
    assert stack.fake.calls[calls_before:] == []


def test_bolts_own_logs_never_carry_a_body(stack: Stack) -> None:
    """bolt's own 401 (which logs the body at INFO) and its unhandled-request warning log no body, even at DEBUG."""
    app = stack.server.slack.app
    forged = f"command=/model&text={CANARY}"
    now = str(int(time.time()))
    bad_signature = {"content-type": FORM, "x-slack-request-timestamp": now, "x-slack-signature": "v0=0"}
    click = {"type": "block_actions", "user": {"id": ALICE}, "trigger_id": "1.2", "actions": [{"action_id": CANARY}]}
    unhandled = urlencode({"payload": json.dumps(click)})
    with all_logs() as logs:
        refused = app.dispatch(BoltRequest(body=forged, headers=bad_signature))
        ignored = app.dispatch(BoltRequest(body=unhandled, headers=slack_headers(SECRET, unhandled.encode())))
    assert (refused.status, ignored.status) == (401, 404)
    assert CANARY not in logs.text() and "v0=0" not in logs.text(), logs.lines
    assert any(line.endswith("slack_bolt.App: Unhandled request") for line in logs.lines), logs.lines


class _Tripwire:
    """A wsgi.input that fails the test when read past `allowed` bytes (and counts what was read)."""

    def __init__(self, size: int, allowed: int) -> None:
        self.size, self.allowed, self.read_bytes = size, allowed, 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.read_bytes if n < 0 else min(n, self.size - self.read_bytes)
        assert self.read_bytes + n <= self.allowed, "the guard read past its limit"
        self.read_bytes += n
        return b"x" * n


def test_oversized_bodies_are_refused_without_being_read(stack: Stack) -> None:
    """Behind any WSGI server: a 10 MB Content-Length is refused unread, a chunked body after limit + 1 bytes."""
    router = stack.server.router()
    base = {"REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events", "SERVER_PROTOCOL": "HTTP/1.1"}
    headers = {
        "CONTENT_TYPE": FORM,
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": str(int(time.time())),
        "HTTP_X_SLACK_SIGNATURE": "v0=" + "0" * 64,
    }
    declared = _Tripwire(TEN_MB, allowed=0)
    chunked = _Tripwire(TEN_MB, allowed=MAX_BODY_BYTES + 1)
    statuses = []
    for environ in (
        {**base, **headers, "CONTENT_LENGTH": str(TEN_MB), "wsgi.input": declared},
        {**base, **headers, "wsgi.input": chunked, "wsgi.input_terminated": True},
    ):
        status: list[str] = []
        router(environ, lambda s, _h, _e=None, out=status: out.append(s))
        statuses.append(status[0])
    assert statuses == ["413 Request Entity Too Large"] * 2
    assert (declared.read_bytes, chunked.read_bytes) == (0, MAX_BODY_BYTES + 1)


def test_a_signed_body_of_exactly_the_limit_is_read_and_judged(stack: Stack) -> None:
    """The limit is 1 MiB inclusive: a signed form of exactly MAX_BODY_BYTES is parsed (400: not a command)."""
    body = b"a=" + b"b" * (MAX_BODY_BYTES - 2)
    router = stack.server.router()
    assert wsgi_post(router, body, _signed(body))[0] == 400
    assert wsgi_post(router, body + b"b", _signed(body + b"b"))[0] == 413
    assert send(stack.server.port, body, _signed(body)).status == 400
    assert send(stack.server.port, body + b"b", _signed(body + b"b")).status == 413


def test_signature_is_checked_on_the_raw_bytes(stack: Stack) -> None:
    """One flipped byte in a correctly signed command turns its 200 into a 401."""
    body = stack.driver.slash_command_body("whoami", ALICE).encode()
    headers = slack_headers(SECRET, body)
    assert send(stack.server.port, body.replace(b"whoami", b"whoamj"), headers).status == 401
    assert send(stack.server.port, body, headers).status == 200
    assert ALICE in stack.fake.wait_for("hooks", 1)[0].body["text"]
