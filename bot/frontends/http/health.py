"""Liveness and readiness: the process answers; the database and the fleet answer."""

from __future__ import annotations

from collections.abc import Callable

from bot.core.errors import ModelbotError

Check = tuple[str, Callable[[], None]]


def not_ready(checks: list[Check]) -> str | None:
    """None when every check passes, else why the first failing one failed (safe to show: no secrets)."""
    for name, ping in checks:
        try:
            ping()
        except ModelbotError as exc:
            return f"{name}: {exc}"
        except Exception as exc:
            return f"{name}: {type(exc).__name__}"
    return None
