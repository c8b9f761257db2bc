"""bot/logging_setup.py: JSON lines with bound context (across the fan-out threads), secrets redacted in both
formats, the repeat filter still collapsing identical errors, and per-phase timing from progress events."""

from __future__ import annotations

import io
import json
import logging
from itertools import count
from typing import Any

from bot.core.fleet import ProgressEvent
from bot.frontends.http.metrics import Metrics, PhaseClock
from bot.logfilter import RepeatFilter
from bot.logging_setup import REDACTED, Redactor, _TextFormatter, bound_context, json_formatter, slack_trigger
from bot.serving.fanout import FanOut

_names = count()
BOT_TOKEN = "xoxb-123456789012-abcdefABCDEF"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
ALERT = "alert-token-value"


def _logger(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(RepeatFilter(30.0, clock=lambda: 0.0))
    logger = logging.getLogger(f"tests.logging_setup.{next(_names)}")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    return logger, out


def _records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_the_bound_context_and_only_inside_the_with() -> None:
    """A stdlib record becomes one JSON object with timestamp, level, logger, event and the bound keys."""
    logger, out = _logger(json_formatter(Redactor()))
    with bound_context(correlation_id="c1", request_id="R7", model=None):
        logger.info("approved %s", "R7")
    logger.info("after")
    inside, after = _records(out)
    assert inside["event"] == "approved R7" and inside["level"] == "info" and inside["logger"] == logger.name
    assert inside["correlation_id"] == "c1" and inside["request_id"] == "R7" and "model" not in inside
    assert inside["timestamp"].endswith("Z") and "correlation_id" not in after


def test_fanout_threads_carry_the_callers_context() -> None:
    """Lines logged inside FanOut.map's pool threads carry the context bound by the caller."""
    logger, out = _logger(json_formatter(Redactor()))
    fanout = FanOut(max_workers=4)
    try:
        with bound_context(request_id="R3", operation_id=9):
            fanout.map(lambda replica: logger.info("reached %s", replica), ["a", "b", "c"])
    finally:
        fanout.close()
    records = _records(out)
    assert len(records) == 3 and {(r["request_id"], r["operation_id"]) for r in records} == {("R3", 9)}


def test_secrets_are_redacted_in_json_and_text() -> None:
    """Slack tokens, the signing secret, the alert token, password= and URL credentials never reach the output."""
    redactor = Redactor((BOT_TOKEN, SIGNING, ALERT, "t"))
    message = (
        f"token {BOT_TOKEN} xapp-1-A0-99 xoxp-55-66 secret {SIGNING} auth Bearer {ALERT} "
        "url postgresql://bot:hunter2@db:5432/x password=swordfish"
    )
    for formatter in (json_formatter(redactor), _TextFormatter(redactor)):
        logger, out = _logger(formatter)
        try:
            raise ValueError(f"boom {BOT_TOKEN}")
        except ValueError:
            logger.exception("failed: %s", message)
        text = out.getvalue()
        for secret in (BOT_TOKEN, "xapp-1-A0-99", "xoxp-55-66", SIGNING, ALERT, "hunter2", "swordfish"):
            assert secret not in text, (secret, text)
        assert REDACTED in text and "ValueError" in text and "test_logging_setup" in text  # a short value stays


def test_the_repeat_filter_still_collapses_json_records() -> None:
    """Identical warnings within the interval are dropped before the JSON formatter sees them."""
    logger, out = _logger(json_formatter(Redactor()))
    for _ in range(5):
        logger.warning("outbox delivery failed")
    assert [r["event"] for r in _records(out)] == ["outbox delivery failed"]


def test_slack_trigger_names_the_team_and_the_kind_of_request() -> None:
    """A slash command and an interaction both give their team; the trigger is bounded (command or payload type)."""
    assert slack_trigger({"command": "/model", "team_id": "T1", "text": "x"}) == {
        "slack_team": "T1",
        "slack_trigger": "command",
    }
    assert slack_trigger({"type": "block_actions", "team": {"id": "T2"}}) == {
        "slack_team": "T2",
        "slack_trigger": "block_actions",
    }
    assert slack_trigger(None) == {}


def test_phase_clock_times_each_phase_from_progress_events() -> None:
    """Phases last from their first event to the next phase's; "done" ends the last; Metrics observes them."""
    now = iter([0.0, 1.0, 1.5, 4.0, 4.0])
    clock = PhaseClock(lambda: next(now))
    firsts = [clock.mark(ProgressEvent(p, "", "", 0, 1)) for p in ("load", "switch", "verify", "done")]
    assert firsts == [True, True, True, True]
    assert clock.durations() == {"load": 1.0, "switch": 0.5, "verify": 2.5}
    metrics = Metrics()
    metrics.rollout("succeeded", 4.0, clock_durations := {"load": 1.0, "bogus": 2.0})
    assert (
        metrics.registry.get_sample_value("modelbot_rollout_phase_duration_seconds_count", {"phase": "other"}) == 1
        and clock_durations
    )
    assert metrics.registry.get_sample_value("modelbot_rollouts_total", {"outcome": "succeeded"}) == 1
