"""What this process has learnt about Slack's rate limits, shared by every writer (the outbox, live progress).

Slack limits per method and per app (reference/slack.md §5), and going on after a 429 risks the app being
disabled. So a 429 met by any writer holds what that limit covers, for every writer, until its Retry-After
has passed: the outbox reschedules a message that is held without calling Slack, and live progress skips
its pushes. What one limit covers: chat.postMessage is counted per channel (about one post a second in
each), so its 429 holds posts to that channel only; any other method (chat.update is Tier 3) is held as a
whole. (A workspace-wide cap on posts shows up as a 429 in each channel, each then held in turn.)

The gate is per process: it lives in memory, so two bot replicas each learn only from their own 429s (the
other replica's next call may meet a 429 of its own, which then holds that replica too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from slack_sdk.errors import SlackApiError

RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
DEFAULT_HOLD_S = 1.0  # a 429 without Retry-After: slack_sdk's own retry handler waits 1 s (plus jitter) too
PER_CHANNEL = frozenset({"chat.postMessage"})  # limited per channel (slack.md §5, "special" tier)


class RateHeld(Exception):
    """A call was not made: a 429 holds its method (in its channel) for `wait_s` more seconds."""

    def __init__(self, method: str, wait_s: float) -> None:
        super().__init__(f"{method} held by Slack's rate limit for {wait_s:.1f}s")
        self.method = method
        self.wait_s = wait_s


class RateGate:
    """Per method (and channel, for chat.postMessage): the time before which nobody in this process calls it.
    Thread-safe. `channel` is ignored for methods Slack limits as a whole; a hold without one holds every channel."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[tuple[str, str], float] = {}

    def hold(self, method: str, seconds: float, channel: str | None = None) -> None:
        """Nobody calls `method` (in `channel`) for `seconds` from now (an earlier, longer hold stands)."""
        key = _key(method, channel)
        until = self._clock() + max(seconds, 0.0)
        with self._lock:
            self._until[key] = max(self._until.get(key, until), until)

    def wait_s(self, method: str, channel: str | None = None) -> float:
        """Seconds until `method` (in `channel`) may be called again; 0.0 when it is not held."""
        keys = {_key(method, None), _key(method, channel)}
        with self._lock:
            until = max((self._until.get(key, float("-inf")) for key in keys), default=float("-inf"))
        return max(until - self._clock(), 0.0)

    def check(self, method: str, channel: str | None = None) -> None:
        """Raise RateHeld instead of letting a call to a held method go out."""
        wait_s = self.wait_s(method, channel)
        if wait_s > 0:
            raise RateHeld(method, wait_s)

    @contextmanager
    def guard(self, method: str, channel: str | None = None) -> Iterator[None]:
        """Around one call of `method`: RateHeld instead of the call while it is held; a 429 it meets holds it."""
        self.check(method, channel)
        try:
            yield
        except SlackApiError as exc:
            self.learn(method, exc, channel)
            raise

    def learn(self, method: str, exc: BaseException, channel: str | None = None) -> None:
        """If `exc` is Slack saying "rate limited", hold `method` for its Retry-After (DEFAULT_HOLD_S without one)."""
        if isinstance(exc, SlackApiError) and is_rate_limited(exc):
            seconds = retry_after_s(exc.response.headers)
            self.hold(method, DEFAULT_HOLD_S if seconds is None else seconds, channel)


def _key(method: str, channel: str | None) -> tuple[str, str]:
    return (method, channel or "") if method in PER_CHANNEL else (method, "")


def is_rate_limited(exc: SlackApiError) -> bool:
    """HTTP 429, or an ok:false answer naming the rate limit."""
    return exc.response.status_code == 429 or exc.response.get("error") in RATE_LIMITED


def retry_after_s(headers: Mapping[str, Any]) -> float | None:
    """The Retry-After header in seconds (any capitalisation); None when absent or unreadable."""
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(float(raw), 0.0)
            except (TypeError, ValueError):
                return None
    return None
