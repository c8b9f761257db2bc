"""Log output: JSON lines (structlog rendering stdlib records) or the classic text line; context and redaction.

Our modules keep calling stdlib `logging`; `configure` puts one handler on the root logger whose formatter is
either structlog's `ProcessorFormatter` (every record, ours and the libraries', as one JSON object per line, with
the context bound by `bound_context` merged in) or a text formatter. Both redact secrets (`Redactor`). Context is
per thread of work (contextvars): `bound_context` binds keys for the duration of a `with`, and work handed to
another thread takes it along with `contextvars.copy_context().run`.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO
from urllib.parse import urlsplit

import structlog
from structlog.typing import EventDict, WrappedLogger

from bot import logfilter

FORMAT_ENV = "MODELBOT_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[REDACTED]"
# Environment variables whose values are secrets; values shorter than MIN_SECRET_CHARS are not searched for
# (a one-letter test token would blank every "t"), the patterns below still catch the token shapes.
SECRET_ENV = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_CLIENT_SECRET",
    "MODELBOT_ALERT_TOKEN",
)
MIN_SECRET_CHARS = 6
_PATTERNS = (
    (re.compile(r"\b(xox[abposer]|xapp)-[A-Za-z0-9-]+"), r"\1-" + REDACTED),  # Slack bot/user/app tokens
    (re.compile(r"(?i)(password\s*[=:]\s*)[^\s&;,'\"]+"), r"\1" + REDACTED),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1" + REDACTED + "@"),  # URL credentials: scheme://user:pw@host
    (re.compile(r"(?i)(bearer\s+)[^\s'\"]+"), r"\1" + REDACTED),  # Authorization header values
)
EXTRA_KEYS = ("outcome", "elapsed_s", "phases_s", "verb")  # `extra={...}` keys lifted into the JSON object


class Redactor:
    """Blanks Slack tokens, `password=...`, URL credentials, bearer tokens and the known secret values."""

    def __init__(self, secrets_: tuple[str, ...] = ()) -> None:
        self._secrets = tuple(sorted({s for s in secrets_ if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Redactor:
        password = urlsplit(environ.get("MODELBOT_DATABASE_URL", "")).password or ""
        return cls((*(environ.get(name, "") for name in SECRET_ENV), password))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        """As a structlog processor: every string value (and the strings inside lists and dicts)."""
        return {key: self._value(value) for key, value in event.items()}

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self._value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(v) for v in value]
        return value


class _TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.redact(super().format(record))


def configure(
    fmt: str = "text", level: str = "WARNING", *, stream: TextIO | None = None, redactor: Redactor | None = None
) -> logging.Handler | None:
    """One stderr handler on the root logger ("json" or "text"), with the repeat filter; returns it. Like
    logging.basicConfig, does nothing (None) when the root logger has handlers already: a host's (pytest's)."""
    root = logging.getLogger()
    if root.handlers:
        return None
    redactor = redactor or Redactor.from_env(os.environ)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter(redactor) if fmt == "json" else _TextFormatter(redactor))
    logfilter.install([handler])
    root.addHandler(handler)
    root.setLevel(level)
    if fmt == "json":
        logging.captureWarnings(True)  # Python warnings too, else they are plain text lines in the JSON stream
    structlog.configure(
        processors=[*_shared(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return handler


def json_formatter(redactor: Redactor) -> structlog.stdlib.ProcessorFormatter:
    """A logging.Formatter rendering each record as one JSON object: timestamp, level, logger, event, context."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared(), structlog.stdlib.ExtraAdder(allow=EXTRA_KEYS)],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # the traceback as one string value, after the first line
            redactor,
            structlog.processors.JSONRenderer(),
        ],
    )


def _shared() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


@contextmanager
def bound_context(**values: object) -> Iterator[None]:
    """Bind these keys (None values skipped) to every log line of this thread of work until the `with` ends."""
    with structlog.contextvars.bound_contextvars(**{k: v for k, v in values.items() if v is not None}):
        yield


def new_correlation_id() -> str:
    return secrets.token_hex(6)


def correlation_id() -> str | None:
    """The correlation id bound to the current work, if any."""
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return None if value is None else str(value)


def slack_trigger(body: object) -> dict[str, object]:
    """The context of one Slack request: its team and what triggered it (a slash command, block_actions,
    view_submission...). Both are bounded, never user input."""
    if not isinstance(body, Mapping):
        return {}
    team = body.get("team")
    team_id = body.get("team_id") or (team.get("id") if isinstance(team, Mapping) else None)
    trigger = "command" if body.get("command") else body.get("type")
    return {"slack_team": team_id, "slack_trigger": trigger}
