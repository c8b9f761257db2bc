"""The bounded pool that does the work after Slack has been acked.

Listeners only ack (and open modals, which must happen within 3 s of the click); everything slow, a
rollout included, runs here. The pool has a fixed number of threads and a cap on queued work, so a
burst is refused politely instead of piling up, and a long rollout never delays anyone's ack.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)
WORKERS = 8
MAX_PENDING = 64
MAX_DEFER_S = 0.25  # how long a task waits for a burst of acks to be answered before it starts anyway
DEFER_POLL_S = 0.002


class Workers:
    def __init__(
        self, workers: int = WORKERS, max_pending: int = MAX_PENDING, defer_while: Callable[[], bool] | None = None
    ) -> None:
        """`defer_while`: while it is true (Slack requests are being answered), tasks wait to start (up to
        MAX_DEFER_S), so under a burst the acks get the CPU first (one interpreter, one GIL)."""
        self._defer_while = defer_while
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-work")
        self._notices = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slack-notice")
        self._max_pending = max_pending
        self._pending = 0
        self._queued: set[Future[None]] = set()
        self._idle = threading.Condition()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run fn(*args) on the pool; False (and nothing runs) when the queue is full or shutting down."""
        with self._idle:
            if self._closed or self._pending >= self._max_pending:
                return False
            self._pending += 1
        try:
            future = self._pool.submit(self._run, fn, args)
        except RuntimeError:  # the pool was shut down between our check and the submit
            self._done()
            return False
        with self._idle:
            self._queued.add(future)
        future.add_done_callback(self._forget)
        return True

    def notice(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a short notice (a refusal, "busy") on its own thread: never behind the pool's queue."""
        try:
            self._notices.submit(fn, *args)
        except RuntimeError:
            log.info("shutting down: notice dropped")

    @property
    def pending(self) -> int:
        with self._idle:
            return self._pending

    def drain(self, timeout_s: float) -> bool:
        """Refuse new work and wait up to `timeout_s` for queued and running work (rollouts) to finish;
        then drop what has not started. True if everything finished."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            self._closed = True
            while self._pending and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
            finished = self._pending == 0
            queued = list(self._queued)
        for future in queued:
            if future.cancel():  # never started: it will not run, so it no longer counts
                self._done()
        self._pool.shutdown(wait=False)
        self._notices.shutdown(wait=True)
        return finished

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self._defer_while is not None:
            deadline = time.monotonic() + MAX_DEFER_S
            while self._defer_while() and time.monotonic() < deadline:
                time.sleep(DEFER_POLL_S)
        try:
            fn(*args)
        except Exception:  # the task's own handler reports to the user; this is the last line of defence
            log.exception("background Slack task failed")
        finally:
            self._done()

    def _forget(self, future: Future[None]) -> None:
        with self._idle:
            self._queued.discard(future)

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()
