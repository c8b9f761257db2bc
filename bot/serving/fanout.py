"""Run one call per replica in parallel on a long-lived thread pool; each replica fails on its own."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from bot.core.errors import ModelbotError

T = TypeVar("T")
MAX_WORKERS = 128  # threads start lazily; a rollout holds one per replica while it polls


class FanOut:
    """`map(fn, replicas)` -> replica -> result, or the ModelbotError that replica raised."""

    def __init__(self, max_workers: int = MAX_WORKERS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="modelbot-fleet")

    def map(self, fn: Callable[[str], T], replicas: Sequence[str]) -> dict[str, T | ModelbotError]:
        if len(replicas) == 1:  # no thread hop for a single replica
            return {replicas[0]: _guarded(fn, replicas[0])}
        # Each call runs in a copy of the caller's context, so its log lines carry the rollout's ids.
        futures: dict[str, Future[T | ModelbotError]] = {
            r: self._pool.submit(contextvars.copy_context().run, _guarded, fn, r) for r in replicas
        }
        return {r: f.result() for r, f in futures.items()}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _guarded(fn: Callable[[str], T], replica: str) -> T | ModelbotError:
    try:
        return fn(replica)
    except ModelbotError as exc:
        return exc
