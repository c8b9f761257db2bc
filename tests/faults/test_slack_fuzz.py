"""`POST /slack/events` fuzzed, 1,000 examples per property, dispatched in-process through the server's own WSGI
app (router, guard, bolt, listeners, worker pool; only the HTTP server's socket is skipped, to stay fast).

Two properties: garbage (bodies, headers and content types no Slack request has), forged or correctly signed,
is refused with 400/401/413 and leaves no trace; and real Slack requests mutated at random (a field dropped,
retyped or replaced) are never answered 500 and, still being read-only, record nothing either way.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.frontends.slack.guard import Refusal, parse_form
from tests.dbs import fresh_database_url
from tests.e2e.abuse import FORM, all_logs, row_counts, sign_bytes, wsgi_post
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.stack import ALICE, OPS, SECRET, Stack, start_stack, stop_stack

FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
CANARY = "CANARY-51ac"  # in every garbage body: it must never reach a log
QUIET = {"outbox_options": {"poll_s": 3600.0}, "expiry_every_s": 3600.0}

LATIN1 = st.text(st.characters(max_codepoint=255), max_size=40)  # what a WSGI header value can hold
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
CONTENT_TYPES = (
    st.sampled_from(
        [FORM, f"{FORM}; charset=utf-8", FORM.upper(), "application/json", "text/plain", "", "multipart/form-data"]
    )
    | LATIN1
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One bot for all examples (SQLite; the store is not what is fuzzed here), background work idle."""
    tmp = tmp_path_factory.mktemp("slack-fuzz")
    with FakeSlack() as fake, fresh_database_url("sqlite", tmp) as url:
        started = start_stack(tmp, url, fake, **QUIET)
        try:
            yield started
        finally:
            stop_stack(started)


# --- garbage: nothing here is a request Slack sends, so nothing may get past the guard


def _garbage_form(fields: dict[str, str]) -> bytes:
    """A form that is never a complete slash command (no /model, no trigger_id) and has no `payload`."""
    fields.pop("trigger_id", None)
    fields.pop("ssl_check", None)  # ssl_check=1 alone is Slack checking the certificate: a valid request
    return urlencode({**fields, "c": CANARY}).encode()


def _garbage_payload(kind: str, extra: dict[str, Any]) -> bytes:
    """An interaction payload of a type modelbot has no listener for, or of its types without a user."""
    payload = {**extra, "type": kind, "c": CANARY}
    if kind in ("block_actions", "view_submission"):
        payload.pop("user", None)
    return urlencode({"payload": json.dumps(payload)}).encode()


FORM_KEYS = st.sampled_from(["command", "user_id", "team_id", "channel_id", "text", "response_url", "type", "token"])
PAYLOAD_KEYS = st.sampled_from(["user", "actions", "trigger_id", "view", "team", "channel", "container", "enterprise"])
GARBAGE_BODIES = st.one_of(
    st.binary(max_size=2048).map(lambda b: CANARY.encode() + b),
    st.dictionaries(FORM_KEYS | st.text(max_size=8), st.text(max_size=30), max_size=8).map(_garbage_form),
    st.builds(
        _garbage_payload,
        st.sampled_from(["block_actions", "view_submission", "view_closed", "shortcut", "block_suggestion"])
        | st.text(max_size=12),
        st.dictionaries(PAYLOAD_KEYS | st.text(max_size=8), JSON_VALUES, max_size=6),
    ),
    st.text(max_size=300).map(lambda t: (f"payload={CANARY}" + t).encode("utf-8", "surrogatepass")),
    st.builds(lambda v: json.dumps({"type": "event_callback", "c": CANARY, "event": v}).encode(), JSON_VALUES),
)


@st.composite
def signing(draw: st.DrawFn, body: bytes) -> tuple[dict[str, str], bool]:
    """Slack's two headers: correctly signed (6 in 10), or forged in one of many ways; (headers, signed)."""
    now = int(time.time())
    if draw(st.integers(0, 9)) < 6:
        timestamp = str(draw(st.sampled_from([now, now - 290, now + 290])))
        return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": sign_bytes(SECRET, timestamp, body)}, True
    timestamp = draw(
        st.sampled_from([str(now), str(now - 301), str(now + 301), "", " ", f"{now}.0", f"+{now}", f" {now}", "\xb2"])
        | LATIN1
    )
    right = sign_bytes(SECRET, timestamp, body)
    how = draw(st.sampled_from(["stale or junk timestamp", "wrong key", "upper", "junk", "missing"]))
    signature = {
        "stale or junk timestamp": right,
        "wrong key": sign_bytes("another-secret", timestamp, body),
        "upper": right.upper(),
        "junk": draw(LATIN1),
        "missing": None,
    }[how]
    if how == "stale or junk timestamp" and timestamp.isascii() and timestamp.isdigit():
        timestamp = str(now + draw(st.sampled_from([-1, 1])) * draw(st.integers(301, 10**9)))
        signature = sign_bytes(SECRET, timestamp, body)
    headers = {"X-Slack-Request-Timestamp": timestamp}
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    return headers, False


@FUZZ
@given(data=st.data(), body=GARBAGE_BODIES, content_type=CONTENT_TYPES)
def test_garbage_is_refused_and_leaves_no_trace(
    stack: Stack, data: st.DataObject, body: bytes, content_type: str
) -> None:
    """Random bodies, headers and content types, forged or signed: 400/401/413 only, no row, no Slack call, no log."""
    headers, signed = data.draw(signing(body))
    length = data.draw(st.sampled_from(["auto", "auto", None, "", "abc", "-1", str(len(body) + 10), str(10**9)]))
    router = stack.server.router()
    rows_before, calls_before = row_counts(stack.bot.db.engine), len(stack.fake.calls)
    with all_logs() as logs:
        status, _ = wsgi_post(router, body, {"Content-Type": content_type, **headers}, length=length)
    event(f"{'signed' if signed else 'forged'}: {status}")
    assert status in ({400, 401, 413} if signed else {401, 413}), status
    assert CANARY not in logs.text() and SECRET not in logs.text(), logs.lines
    assert logs.size_from(threading.get_ident()) < 300, logs.lines  # other threads: earlier tests' leftovers
    assert row_counts(stack.bot.db.engine) == rows_before
    assert stack.fake.calls[calls_before:] == []


# --- real requests mutated: never a 500, and (all being read-only) never a row


def _real_bodies(stack: Stack) -> list[dict[str, Any]]:
    """A read-only slash command, an approve click and a reject-modal submission for a request that does not exist."""
    command = dict(parse_qsl(stack.driver.slash_command_body("whoami", ALICE)))
    click = json.loads(dict(parse_qsl(stack.driver.block_action_body("approve", "999", ALICE, OPS, "1.1")))["payload"])
    meta = json.dumps({"request_id": 999, "channel": OPS})
    view = {
        "type": "view_submission",
        "user": {"id": ALICE, "team_id": "T0FAKE"},
        "team": {"id": "T0FAKE"},
        "trigger_id": "1.2.3",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": "reject_reason",
            "private_metadata": meta,
            "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": "no"}}}},
        },
    }
    return [{"form": command}, {"payload": click}, {"payload": view}]


def _mutate(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """Drop, retype or replace one field somewhere in a JSON-ish value (response URLs are only ever dropped)."""
    if not isinstance(value, dict | list) or not value or depth > 3:
        return draw(JSON_VALUES)
    keys = list(value.keys()) if isinstance(value, dict) else list(range(len(value)))
    key = draw(st.sampled_from(keys))
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    action = draw(st.sampled_from(["drop", "replace", "recurse", "recurse"]))
    if action == "drop" or key in ("response_url", "response_urls"):
        del copy[key]
    elif action == "replace":
        copy[key] = draw(JSON_VALUES)
    else:
        copy[key] = _mutate(draw, copy[key], depth + 1)
    return copy


def _form_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@FUZZ
@given(data=st.data())
def test_mutated_slack_requests_never_get_500(stack: Stack, data: st.DataObject) -> None:
    """A real command, click or modal submission with random fields dropped or replaced: never 500, no trace."""
    rows_before = row_counts(stack.bot.db.engine)
    base = data.draw(st.sampled_from(_real_bodies(stack)))
    mutations = data.draw(st.integers(min_value=1, max_value=3))
    if "form" in base:
        form = base["form"]
        for _ in range(mutations):
            form = _mutate(data.draw, form)
        body = urlencode({k: _form_value(v) for k, v in form.items()}).encode()
    else:
        payload = base["payload"]
        for _ in range(mutations):
            payload = _mutate(data.draw, payload)
        body = urlencode({"payload": json.dumps(payload)}).encode()
    headers, signed = data.draw(signing(body))
    status, answer = wsgi_post(stack.server.router(), body, {"Content-Type": FORM, **headers})
    event(f"{'signed' if signed else 'forged'}: {status}")
    assert status in ({200, 400, 404} if signed else {401, 413}), (status, answer)
    stack.settled()
    assert row_counts(stack.bot.db.engine) == rows_before


# --- the guard's form parser reads what urllib's parse_qsl reads (it only unescapes in pieces)

ESCAPE_TOKENS = st.sampled_from(["%41", "%", "%4", "%%", "A", "+", "%2B", "%2b", "%C3%A9", "%zz", "=", "%3D", "&"])


@FUZZ
@given(st.lists(ESCAPE_TOKENS, max_size=60), st.integers(1, 3000), st.text(max_size=40))
def test_form_parse_matches_urllib(tokens: list[str], repeat: int, tail: str) -> None:
    """On any form, escape-dense and up to 1 MiB (across the 32 KiB pieces), parse_form agrees with parse_qsl."""
    raw = ("c=" + "".join(tokens) * repeat + tail.replace("&", "")).encode()[: 1 << 20]
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError:  # UnicodeDecodeError included
        pairs = None
    parsed = parse_form(raw)
    if pairs is None or len(dict(pairs)) != len(pairs) or len(pairs) >= 64:
        assert isinstance(parsed, Refusal), parsed
    else:
        assert parsed == dict(pairs)
