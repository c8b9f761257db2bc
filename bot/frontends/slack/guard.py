"""The door of `POST /slack/events`: size, then signature, then a strict parse; only then bolt.

Every step refuses before the next one looks at more of the request:

1. A Content-Length above MAX_BODY_BYTES (1 MiB; Slack's payloads are a few KiB) -> 413, nothing read. A body
   without one (chunked) is read to at most MAX_BODY_BYTES + 1 bytes. cheroot refuses a larger declared body
   itself before reading it (Server sets its max_request_body_size); this check holds under any WSGI server.
2. X-Slack-Request-Timestamp must be digits within Slack's 5-minute window and X-Slack-Signature `v0=` and
   64 hex digits, then HMAC-SHA256(secret, b"v0:" + ts + b":" + raw body) must match. Anything unsigned ->
   401, and nothing of it is parsed. The HMAC is computed here over the raw bytes because slack_sdk's
   SignatureVerifier decodes the body as UTF-8 first (it raises on other bytes), int()s the timestamp (it
   raises on "abc") and compares with hmac.compare_digest (TypeError on a non-ASCII header): each of those
   was a 500.
3. Signed but malformed -> 400: not form-encoded (or JSON: the Events API, where modelbot takes only
   `url_verification` and an `event_callback` of the events it subscribes to, EVENT_TYPES), not
   UTF-8, not a strict form, not exactly one of `command` / `payload`, a payload that is not a JSON object
   of a type modelbot handles, or without the fields its listeners read.
4. bolt gets a BoltRequest built from the form parsed here. bolt's own parser decides "interactivity" when
   the word `payload` appears anywhere in the body, so a command like `/model rollback payload_scorer 1`
   reached no listener (404): here a `command` field makes a slash command, a `payload` field an interaction.

bolt's own signature check stays on (defence in depth: it sees the same raw text, checked against the same
secret); the two can only disagree if the 5-minute window closes between them, and then bolt answers 401
like this guard. Neither logs a body: a refusal logs one fixed reason, and bolt's loggers are built from
`bolt_logger()`, which drops bolt's DEBUG/INFO lines (verification failures and its default error handler
log whole request bodies there) and cuts its warnings to their first clause.

Memory per request (bench endpoint_abuse, tracemalloc): the server buffers no body (the guard reads at most
1 MiB + 1 byte of it); a forged request costs the 1 MiB read and nothing more; a signed one also its text and parsed
form: 3 MiB for a 1 MiB form, 5 MiB for 1 MiB of percent-escapes (urllib alone took 75 MiB,
hence `_unquote_plus`), 26 MiB at worst for a 1 MiB JSON payload of empty objects. Slack's are < 0.1 MiB.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from slack_bolt import App, BoltRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse

from bot.frontends.http.router import MAX_BODY_BYTES, Environ, StartResponse, read_body
from bot.texts import slack as texts

log = logging.getLogger(__name__)

Dispatch = Callable[[Any], Any]  # BoltRequest -> BoltResponse (bolt is untyped)
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
REPLAY_WINDOW_S = 300  # Slack's: a request signed longer ago (or further ahead) than this is refused
MAX_FORM_FIELDS = 64  # Slack sends about 15
UNQUOTE_PIECE = 1 << 15
MAX_METADATA_CHARS = 3000  # Slack's limit on a view's private_metadata
COMMAND_FIELDS = ("command", "user_id", "team_id", "channel_id", "response_url", "trigger_id")
PAYLOAD_TYPES = frozenset({"block_actions", "view_submission"})  # what modelbot registers listeners for
EVENT_TYPES = frozenset({"app_home_opened", "member_joined_channel"})  # its subscriptions (deploy/slack manifests)
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_PASSED_HEADERS = ("x-slack-request-timestamp", "x-slack-signature", "x-slack-retry-num", "x-slack-retry-reason")
_OBJECTS = ("team", "enterprise", "channel", "container", "message", "view", "state", "event", "function_data")


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str  # a fixed word or two for the log; never anything from the request


TOO_LARGE = Refusal(413, "body too large")
UNSIGNED = Refusal(401, "missing or malformed signature headers")
STALE = Refusal(401, "timestamp outside the 5-minute window")
FORGED = Refusal(401, "signature does not match")
NOT_FORM = Refusal(400, "not form-encoded")
NOT_UTF8 = Refusal(400, "body is not UTF-8")
BAD_FORM = Refusal(400, "not a well-formed form")
BAD_PAYLOAD = Refusal(400, "payload is not a JSON object")
UNHANDLED_TYPE = Refusal(400, "payload type modelbot does not handle")
MISSING_FIELDS = Refusal(400, "required fields missing or of the wrong type")
NEITHER = Refusal(400, "neither a command nor an interaction")

_ERRORS = {401: texts.SLACK_REQUEST_INVALID, 400: texts.SLACK_REQUEST_MALFORMED, 413: texts.SLACK_REQUEST_TOO_LARGE}


class SlackGuard:
    """WSGI application for POST /slack/events: refuses what Slack did not sign or could not have sent.

    `dispatch` runs a checked BoltRequest (default `app.dispatch`; Server wraps it to time the ack).
    """

    def __init__(
        self,
        app: App,
        signing_secret: str,
        *,
        dispatch: Dispatch | None = None,
        clock: Callable[[], float] = time.time,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if not signing_secret.strip():
            raise ValueError("the Slack signing secret is empty")
        self._secret = signing_secret.encode()
        self._dispatch = dispatch or app.dispatch
        self._clock = clock
        self._limit = max_body_bytes

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        checked = self.check(environ)
        if isinstance(checked, Refusal):
            log.info("refused a Slack request: %d %s", checked.status, checked.reason)
            body = json.dumps({"error": _ERRORS[checked.status]})
            return _respond(start_response, WsgiHttpResponse(checked.status, {"content-type": [JSON]}, body))
        answer = self._dispatch(checked)
        return _respond(start_response, WsgiHttpResponse(answer.status, answer.headers, answer.body))

    def check(self, environ: Environ) -> Refusal | BoltRequest:
        """The BoltRequest to dispatch, or why the request is refused (401 before anything is parsed)."""
        timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""))
        signature = str(environ.get("HTTP_X_SLACK_SIGNATURE", ""))
        if _declared_length(environ) > self._limit:
            return TOO_LARGE
        if not (_TIMESTAMP.fullmatch(timestamp) and _SIGNATURE.fullmatch(signature)):
            return UNSIGNED
        if abs(self._clock() - int(timestamp)) > REPLAY_WINDOW_S:
            return STALE
        raw = read_body(environ, self._limit)
        if raw is None:
            return TOO_LARGE
        mac = hmac.new(self._secret, b"v0:" + timestamp.encode() + b":", hashlib.sha256)
        mac.update(raw)  # not concatenated: a forged 1 MiB body costs its bytes once
        if not hmac.compare_digest(f"v0={mac.hexdigest()}".encode(), signature.encode()):
            return FORGED
        return signed_request(raw, str(environ.get("CONTENT_TYPE", "")), _headers(environ))


def signed_request(raw: bytes, content_type: str, headers: Mapping[str, str]) -> Refusal | BoltRequest:
    """A BoltRequest for a body whose signature is already checked, or why it is malformed (400)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in {FORM, JSON}:
        return NOT_FORM
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return NOT_UTF8
    if media == JSON:
        body: Refusal | dict[str, Any] = _event(text)
    else:
        form = parse_form(raw)
        body = form if isinstance(form, Refusal) else _body(form)
    if isinstance(body, Refusal):
        return body
    try:
        request = BoltRequest(body=body, headers=dict(headers), mode="socket_mode")  # a dict body is kept as is
    except Exception:  # bolt reading ids out of a shape Slack never sends
        return MISSING_FIELDS
    request.raw_body, request.mode = text, "http"  # so bolt verifies the signature again, on the same text
    return request


def parse_form(raw: bytes) -> Refusal | dict[str, str]:
    """A strict form parse: what urllib's parse_qsl(strict_parsing=True) reads, but every field `name=value`,
    no repeats, UTF-8 after unescaping, and unescaped in 32 KiB pieces (see `_unquote_plus`)."""
    if not raw:
        return {}
    if raw.count(b"&") >= MAX_FORM_FIELDS:
        return BAD_FORM
    form: dict[str, str] = {}
    for field in raw.split(b"&"):
        name, eq, value = field.partition(b"=")
        try:
            key, text = _unquote_plus(name).decode("utf-8"), _unquote_plus(value).decode("utf-8")
        except UnicodeDecodeError:
            return BAD_FORM
        if not eq or key in form:
            return BAD_FORM  # a field without "=", or a repeated one: which one would count?
        form[key] = text
    return form


def _unquote_plus(data: bytes) -> bytes:
    """urllib's unquote_plus, a piece at a time: its unquote splits at every "%", so 1 MiB of escapes held
    ~75 MiB at once; in pieces it holds ~0.5 MiB beyond the result. A piece never ends inside an escape."""
    data = data.replace(b"+", b" ")
    if b"%" not in data:
        return data
    pieces, start = [], 0
    while start < len(data):
        end = min(start + UNQUOTE_PIECE, len(data))
        if end < len(data):
            cut = data.rfind(b"%", end - 2, end)
            end = cut if cut != -1 else end
        pieces.append(unquote_to_bytes(data[start:end]))
        start = end
    return b"".join(pieces)


def _body(form: Mapping[str, str]) -> Refusal | dict[str, Any]:
    """What bolt's listeners see: the form of a slash command, or the JSON object of an interaction."""
    if "command" in form and "payload" not in form:
        ok = all(form.get(name) for name in COMMAND_FIELDS)
        return dict(form) if ok else MISSING_FIELDS
    if "payload" in form and len(form) == 1:
        try:
            payload = json.loads(form["payload"])
        except (ValueError, RecursionError):
            return BAD_PAYLOAD
        if not isinstance(payload, dict):
            return BAD_PAYLOAD
        return _interaction(payload)
    if form.get("ssl_check") == "1" and "command" not in form and "payload" not in form:
        return dict(form)  # Slack checking the certificate; bolt answers it with an empty 200
    return NEITHER


def _event(text: str) -> Refusal | dict[str, Any]:
    """An Events API body modelbot handles: Slack checking the URL, or an event of EVENT_TYPES with its user."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return BAD_PAYLOAD
    if not isinstance(body, dict):
        return BAD_PAYLOAD
    if body.get("type") == "url_verification":
        return body if _text(body.get("challenge")) else MISSING_FIELDS
    event = body.get("event")
    if body.get("type") != "event_callback" or not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return UNHANDLED_TYPE
    ok = _text(event.get("user")) and _text(body.get("team_id")) and _text(body.get("event_id"))
    ok = ok and _list_of_objects(body.get("authorizations"), required=False)
    return body if ok else MISSING_FIELDS


def _interaction(payload: dict[str, Any]) -> Refusal | dict[str, Any]:
    kind = payload.get("type")
    if not isinstance(kind, str) or kind not in PAYLOAD_TYPES:
        return UNHANDLED_TYPE
    user = payload.get("user")
    shapes_ok = (
        isinstance(user, dict)
        and _text(user.get("id"))
        and all(payload.get(key) is None or isinstance(payload.get(key), dict) for key in _OBJECTS)
        and _list_of_objects(payload.get("authorizations"), required=False)
    )
    if not shapes_ok:
        return MISSING_FIELDS
    ok = _block_actions_ok(payload) if kind == "block_actions" else _view_submission_ok(payload)
    return payload if ok else MISSING_FIELDS


def _block_actions_ok(payload: Mapping[str, Any]) -> bool:
    actions = payload.get("actions")
    return (
        _text(payload.get("trigger_id"))
        and isinstance(actions, list)
        and _list_of_objects(actions, required=True)
        and all(_text(action.get("action_id")) for action in actions)
    )


def _view_submission_ok(payload: Mapping[str, Any]) -> bool:
    """A modal's callback_id, input values nested as Slack nests them, and private_metadata as a string."""
    view = payload.get("view")
    if not isinstance(view, dict) or view.get("type") != "modal" or not _text(view.get("callback_id")):
        return False  # bolt reads view.type (a "workflow_step" view makes it look for more)
    state = view.get("state", {})
    values = state.get("values", {}) if isinstance(state, dict) else None
    if not isinstance(values, dict) or not all(
        isinstance(block, dict) and all(isinstance(element, dict) for element in block.values())
        for block in values.values()
    ):
        return False
    meta = view.get("private_metadata", "")
    if not isinstance(meta, str) or len(meta) > MAX_METADATA_CHARS:
        return False
    try:
        json.loads(meta or "{}")
    except ValueError:
        pass  # the listener reads unparsable metadata as none
    except RecursionError:
        return False
    return True


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _list_of_objects(value: object, *, required: bool) -> bool:
    if value is None:
        return not required
    return isinstance(value, list) and (bool(value) or not required) and all(isinstance(v, dict) for v in value)


def _declared_length(environ: Environ) -> int:
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    return int(declared) if declared.isascii() and declared.isdigit() else 0


def _headers(environ: Environ) -> dict[str, str]:
    """The headers bolt reads; not its internal x-slack-bolt-* ones, which no caller may set from outside."""
    headers = {"content-type": str(environ.get("CONTENT_TYPE", ""))}
    for name in _PASSED_HEADERS:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        if value is not None:
            headers[name] = str(value)
    return headers


def _respond(start_response: StartResponse, response: WsgiHttpResponse) -> Iterable[bytes]:
    start_response(response.status, response.get_headers())
    body: Iterable[bytes] = response.get_body()
    return body


class _BoltLogFilter(logging.Filter):
    """Keeps bolt's warnings and errors (with their traceback) but only the text before the first " (" or
    newline: bolt appends request bodies there ("Unhandled request ({...})", "Failed to run listener (...)")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        first = record.getMessage().split("\n", 1)[0].split(" (", 1)[0]
        record.msg, record.args = first[:200], None
        return True


BOLT_LOGGER = "slack_bolt.App"  # the name bolt gives its framework logger when none is passed


def bolt_logger() -> logging.Logger:
    """The base logger for bolt's App: bolt copies its level and filters to every logger it makes."""
    logger = logging.getLogger(BOLT_LOGGER)
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _BoltLogFilter) for f in logger.filters):
        logger.addFilter(_BoltLogFilter())
    return logger
