"""Repeated identical log records are rate-limited: one line, then one line with the count per interval."""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bot import cli
from bot.logfilter import RepeatFilter

_names = itertools.count()


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Captured:
    log: logging.Logger
    out: io.StringIO
    clock: FakeClock

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def messages(self) -> list[str]:
        """The log lines proper (traceback lines start with spaces or 'Traceback' or the exception name)."""
        return [line for line in self.lines() if line.startswith(("ERROR ", "WARNING ", "INFO ", "CRITICAL "))]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """A private logger writing 'LEVEL name: message' lines to a buffer through a RepeatFilter on a fake clock."""
    clock = FakeClock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatFilter(30.0, clock=clock))
    log = logging.getLogger(f"tests.logfilter.{next(_names)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield Captured(log, out, clock)
    log.removeHandler(handler)


def _fail(log: logging.Logger, attempt: int) -> None:
    try:
        raise ConnectionRefusedError("connection refused")
    except ConnectionRefusedError:
        log.exception("outbox delivery failed (attempt %d)", attempt)


def test_a_burst_of_identical_errors_is_one_line_with_one_traceback(captured: Captured) -> None:
    """1,000 identical errors within the interval write one line, with the first one's traceback."""
    for attempt in range(1000):
        _fail(captured.log, attempt)
    assert captured.messages() == [f"ERROR {captured.log.name}: outbox delivery failed (attempt 0)"]
    assert captured.out.getvalue().count("Traceback (most recent call last)") == 1


def test_after_the_interval_one_line_carries_the_count_without_a_traceback(captured: Captured) -> None:
    """The first repeat after 30 s is written once, saying how many were dropped, and without a traceback."""
    for attempt in range(1000):
        _fail(captured.log, attempt)
        captured.clock.now += 0.01  # the burst spans 10 s
    captured.clock.now = 1030.0
    _fail(captured.log, 1000)
    _fail(captured.log, 1001)
    assert captured.messages()[1:] == [
        f"ERROR {captured.log.name}: outbox delivery failed (attempt 1000) (repeated 999 times in the last 30s)"
    ]
    assert captured.out.getvalue().count("Traceback") == 1


def test_the_count_restarts_with_each_interval(captured: Captured) -> None:
    """Each summary counts only the records dropped since the previous line of that kind."""
    for second in range(0, 95, 1):  # one failure a second for 95 s
        captured.clock.now = 1000.0 + second
        captured.log.error("database unreachable")
    assert [line.partition(": ")[2] for line in captured.messages()] == [
        "database unreachable",
        "database unreachable (repeated 29 times in the last 30s)",
        "database unreachable (repeated 29 times in the last 30s)",
        "database unreachable (repeated 29 times in the last 30s)",
    ]


def test_different_messages_levels_loggers_and_exceptions_are_not_merged(captured: Captured) -> None:
    """Records differing in template, level, logger or exception type each get their own first line."""
    other = logging.getLogger(captured.log.name + ".child")
    for _ in range(3):
        captured.log.error("outbox delivery failed")
        captured.log.error("expiry sweep failed")
        captured.log.warning("outbox delivery failed")
        other.error("outbox delivery failed")
        for exc in (TimeoutError("slow"), OSError("gone")):
            try:
                raise exc
            except OSError:
                captured.log.exception("fleet call failed")
    assert len(captured.messages()) == 6
    assert captured.out.getvalue().count("Traceback") == 2


def test_same_template_with_different_arguments_counts_as_one_kind(captured: Captured) -> None:
    """The template decides identity, so 'failed for R1', 'failed for R2', ... are one kind during an outage."""
    for request_id in range(1, 51):
        captured.log.warning("card update failed for R%d", request_id)
    assert [m.partition(": ")[2] for m in captured.messages()] == ["card update failed for R1"]


def test_info_and_debug_are_never_held_back(captured: Captured) -> None:
    """Below WARNING every record passes: routine lines are not failures repeating."""
    for _ in range(5):
        captured.log.info("delivered a message")
        captured.log.debug("polled the outbox")
    assert len(captured.lines()) == 10


def test_a_filter_shared_by_two_handlers_counts_each_record_once(captured: Captured) -> None:
    """With the filter on two handlers, both write the same lines and the count is not doubled."""
    second = io.StringIO()
    handler = logging.StreamHandler(second)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    (shared,) = captured.log.handlers[0].filters
    handler.addFilter(shared)
    captured.log.addHandler(handler)
    for _ in range(10):
        captured.log.error("database unreachable")
    captured.clock.now += 30
    captured.log.error("database unreachable")
    assert second.getvalue() == captured.out.getvalue()
    assert captured.lines()[-1].endswith("(repeated 9 times in the last 30s)")


def test_cli_logging_setup_filters_its_own_handler_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """`modelbot`'s logging setup puts a RepeatFilter on the handler basicConfig creates, and on no other."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    cli._setup_logging()
    (handler,) = root.handlers
    assert any(isinstance(f, RepeatFilter) for f in handler.filters)
    host = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(root, "handlers", [host])
    cli._setup_logging()
    assert root.handlers == [host] and host.filters == []
