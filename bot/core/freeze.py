"""Freezes (DESIGN §2-3): while a model is frozen, promote and rollback are refused with who froze it, why and
until when; an emergency rollback still runs and says it overrode the freeze. Two sources: ad-hoc freezes
(`/model freeze MODEL|all --reason ... [--for 2h]`, stored) and scheduled windows in permissions.yaml. Pure:
the caller passes the wall-clock time in each window's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

ALL_MODELS = "*"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class FreezeWindow:
    """A scheduled freeze: on these weekdays, from `start` to `end` (wall time in `tz`; an end before the start
    runs past midnight), for these models ("*": all)."""

    models: tuple[str, ...]
    weekdays: tuple[str, ...]
    start: time
    end: time
    tz: str = "UTC"
    reason: str = ""

    def covers(self, model: str) -> bool:
        return ALL_MODELS in self.models or model in self.models

    def active(self, local: datetime) -> bool:
        """Is the window open at `local` (the current time in this window's `tz`)?"""
        day = WEEKDAYS[local.weekday()]
        now = local.time()
        if self.start <= self.end:
            return day in self.weekdays and self.start <= now <= self.end
        # Past midnight: the evening part belongs to the listed day, the morning part to the day after it.
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
        return (day in self.weekdays and now >= self.start) or (yesterday in self.weekdays and now <= self.end)


@dataclass(frozen=True)
class Freeze:
    """Why a model cannot be changed now: an ad-hoc freeze (`actor`, `until` may be None: until unfrozen) or a
    scheduled window (`actor` is None)."""

    model: str
    reason: str
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    window: FreezeWindow | None = None


def scheduled(windows: tuple[FreezeWindow, ...], model: str, local_now: dict[str, datetime]) -> Freeze | None:
    """The first window that covers `model` and is open; `local_now` maps each window's tz to the time there."""
    for window in windows:
        if window.covers(model) and window.active(local_now[window.tz]):
            return Freeze(model, window.reason or "scheduled freeze window", window=window)
    return None
