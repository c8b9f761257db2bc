"""Rate-limit identical log records: an outage must not write thousands of copies of one error.

The first record of a kind (logger, level, message template, exception type) goes through, traceback
and all; identical records in the next `interval_s` are counted and dropped. The first one after that
goes through as one line saying how many were dropped, e.g. "outbox delivery failed (repeated 812
times in the last 30s)", without a traceback (the first line had it), and starts a new interval.
Records below WARNING are never held back: they are rarely repeated by failures, and their template
alone (say "R%d approved") does not make them the same event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL_S = 30.0
MAX_KINDS = 1000  # distinct kinds remembered; beyond this, finished intervals are forgotten
_DECISION = "_modelbot_repeat_decision"  # set on a record once decided, so every handler agrees

Key = tuple[str, int, str, type[BaseException] | None]


@dataclass
class _Interval:
    started: float
    dropped: int = 0


class RepeatFilter(logging.Filter):
    """A handler filter (one instance may serve several handlers). `clock` is monotonic seconds (tests pass
    their own); `min_level`: records below it always pass."""

    def __init__(
        self,
        interval_s: float = INTERVAL_S,
        *,
        min_level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.min_level = min_level
        self._clock = clock
        self._intervals: dict[Key, _Interval] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        decided = record.__dict__.get(_DECISION)
        if decided is not None:  # a second handler of the same logger: same answer, counted once
            return bool(decided)
        passes = record.levelno < self.min_level or self._admit(record)
        record.__dict__[_DECISION] = passes
        return passes

    def _admit(self, record: logging.LogRecord) -> bool:
        exc_type = record.exc_info[0] if record.exc_info else None
        key: Key = (record.name, record.levelno, str(record.msg), exc_type)
        now = self._clock()
        with self._lock:
            current = self._intervals.get(key)
            if current is not None and now - current.started < self.interval_s:
                current.dropped += 1
                return False
            if current is None and len(self._intervals) >= MAX_KINDS:
                self._forget_finished(now)
            self._intervals[key] = _Interval(started=now)
        if current is not None and current.dropped:
            _summarise(record, current.dropped, now - current.started)
        return True

    def _forget_finished(self, now: float) -> None:
        """Drop kinds whose interval is over (their count is lost; a kind seen again starts afresh)."""
        for key in [k for k, v in self._intervals.items() if now - v.started >= self.interval_s]:
            del self._intervals[key]
        if len(self._intervals) >= MAX_KINDS:  # all still active: keep the newer half
            newest = sorted(self._intervals.items(), key=lambda kv: kv[1].started)[MAX_KINDS // 2 :]
            self._intervals = dict(newest)


def _summarise(record: logging.LogRecord, dropped: int, seconds: float) -> None:
    """Turn the record into the one line that stands for the dropped ones (no traceback: the first had it)."""
    record.msg = f"{record.msg} (repeated {dropped} times in the last {seconds:.0f}s)"
    record.exc_info = None
    record.exc_text = None
    record.stack_info = None


def install(handlers: list[logging.Handler], interval_s: float = INTERVAL_S) -> RepeatFilter:
    """Add one RepeatFilter to each of `handlers` (e.g. the root handlers logging.basicConfig created)."""
    repeat = RepeatFilter(interval_s)
    for handler in handlers:
        handler.addFilter(repeat)
    return repeat
