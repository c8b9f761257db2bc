"""Scheduled freeze windows (bot/core/freeze.py): weekdays, times, and windows that run past midnight."""

from __future__ import annotations

from datetime import UTC, datetime, time

from bot.core.freeze import FreezeWindow, scheduled

FRIDAY_EVENING = FreezeWindow(("*",), ("fri",), time(16, 0), time(23, 59), "UTC", "no Friday evening changes")
OVERNIGHT = FreezeWindow(("fraud_detector",), ("fri",), time(22, 0), time(6, 0), "UTC", "batch window")


def test_a_window_is_open_only_on_its_days_between_its_times() -> None:
    """Friday 17:00 is inside the Friday-evening window; Friday 15:00 and Saturday 17:00 are not."""
    assert FRIDAY_EVENING.active(datetime(2026, 12, 4, 17, 0, tzinfo=UTC))
    assert not FRIDAY_EVENING.active(datetime(2026, 12, 4, 15, 0, tzinfo=UTC))
    assert not FRIDAY_EVENING.active(datetime(2026, 12, 5, 17, 0, tzinfo=UTC))


def test_a_window_past_midnight_covers_the_next_morning() -> None:
    """22:00-06:00 on Fridays covers Friday 23:00 and Saturday 05:00, but not Saturday 07:00 or Thursday 23:00."""
    assert OVERNIGHT.active(datetime(2026, 12, 4, 23, 0, tzinfo=UTC))
    assert OVERNIGHT.active(datetime(2026, 12, 5, 5, 0, tzinfo=UTC))
    assert not OVERNIGHT.active(datetime(2026, 12, 5, 7, 0, tzinfo=UTC))
    assert not OVERNIGHT.active(datetime(2026, 12, 3, 23, 0, tzinfo=UTC))


def test_only_windows_covering_the_model_apply() -> None:
    """The overnight window names fraud_detector only; another model is not frozen by it."""
    at = {"UTC": datetime(2026, 12, 4, 23, 0, tzinfo=UTC)}
    assert scheduled((OVERNIGHT,), "fraud_detector", at) is not None
    assert scheduled((OVERNIGHT,), "churn", at) is None
