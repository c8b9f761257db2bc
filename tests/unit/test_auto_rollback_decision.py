"""The pure auto-rollback decision (bot/core/auto_rollback.py): each guardrail, in order, and last-known-good."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.auto_rollback import Facts, Hold, StableChange, Verdict, decide, last_known_good

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def facts(**overrides: object) -> Facts:
    """Facts where every guardrail passes: firing for 5 minutes, last change 2 hours ago, v2 is last-known-good."""
    base = Facts(
        now=T0,
        firing_since=T0 - 5 * MIN,
        min_firing=2 * MIN,
        cooldown=15 * MIN,
        max_per_hour=1,
        last_change_at=T0 - timedelta(hours=2),
        acted_last_hour=0,
        frozen=False,
        busy=False,
        current=3,
        last_known_good=2,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_acts_when_every_guardrail_passes() -> None:
    """Firing past min_firing, outside the cooldown, under budget, with a target: roll back to it."""
    decision = decide(facts())
    assert (decision.verdict, decision.target, decision.hold) == (Verdict.ACT, 2, None)


def test_waits_until_min_firing_is_over() -> None:
    """An alert firing for less than min_firing waits, and says until when; exactly at the limit it acts."""
    decision = decide(facts(firing_since=T0 - MIN))
    assert (decision.verdict, decision.until) == (Verdict.WAIT, T0 + MIN)
    assert decide(facts(firing_since=T0 - 2 * MIN)).verdict is Verdict.ACT


@pytest.mark.parametrize(
    ("overrides", "hold"),
    [
        ({"frozen": True}, Hold.FROZEN),
        ({"busy": True}, Hold.BUSY),
        ({"last_change_at": T0 - 10 * MIN}, Hold.COOLDOWN),
        ({"acted_last_hour": 1}, Hold.BUDGET),
        ({"max_per_hour": 0}, Hold.BUDGET),
        ({"last_known_good": None}, Hold.NO_TARGET),
        ({"last_known_good": 3}, Hold.NO_TARGET),
        ({"preflight_problem": "v2 is not on disk"}, Hold.PREFLIGHT),
    ],
)
def test_each_guardrail_holds_it_back(overrides: dict[str, object], hold: Hold) -> None:
    """Frozen, busy, cooldown, budget, no target, failed pre-flight: each alone holds, naming itself."""
    decision = decide(facts(**overrides))
    assert (decision.verdict, decision.hold) == (Verdict.HOLD, hold)


def test_guardrails_apply_in_order_and_cooldown_says_when_it_ends() -> None:
    """Frozen outranks the cooldown; a cooldown hold carries the moment it ends."""
    assert decide(facts(frozen=True, last_change_at=T0)).hold is Hold.FROZEN
    held = decide(facts(last_change_at=T0 - 10 * MIN))
    assert held.until == T0 + 5 * MIN
    assert decide(facts(last_change_at=T0 - 15 * MIN)).verdict is Verdict.ACT  # the cooldown is over at its end


def test_last_known_good_is_the_most_recent_long_enough_other_version() -> None:
    """v2 held 2 h, v4 only 5 min before v3 (current): v2 is last-known-good; a shorter min_stable gives v4."""
    timeline = [
        StableChange(T0 - timedelta(hours=3), 2),
        StableChange(T0 - timedelta(hours=1), 4),
        StableChange(T0 - timedelta(minutes=55), 3),
    ]
    assert last_known_good(timeline, 3, timedelta(minutes=30), T0) == 2
    assert last_known_good(timeline, 3, timedelta(minutes=5), T0) == 4


def test_last_known_good_merges_repeats_and_never_returns_the_current_version() -> None:
    """Two records of the same version are one period; a history of only the current version gives nothing."""
    repeats = [StableChange(T0 - 40 * MIN, 2), StableChange(T0 - 20 * MIN, 2), StableChange(T0 - 5 * MIN, 3)]
    assert last_known_good(repeats, 3, timedelta(minutes=30), T0) == 2
    assert last_known_good([StableChange(T0 - timedelta(days=1), 3)], 3, timedelta(0), T0) is None
    assert last_known_good([], 3, timedelta(0), T0) is None


def test_last_known_good_never_returns_a_version_the_model_was_rolled_back_from() -> None:
    """v2 for days, v3 promoted and stable for 2 h, then rolled back to v2: when v2 misbehaves the target is not v3
    (the suspect of the last incident) however long it was stable, but the version before it; a promote away is no
    such mark."""
    timeline = [
        StableChange(T0 - timedelta(days=3), 1),
        StableChange(T0 - timedelta(days=2), 2),
        StableChange(T0 - timedelta(hours=3), 3),
        StableChange(T0 - timedelta(hours=1), 2, by_rollback=True),
    ]
    assert last_known_good(timeline, 2, timedelta(minutes=30), T0) == 1
    promoted_away = [*timeline[:3], StableChange(T0 - timedelta(hours=1), 2)]
    assert last_known_good(promoted_away, 2, timedelta(minutes=30), T0) == 3
    assert last_known_good(timeline[1:], 2, timedelta(minutes=30), T0) is None  # nothing else good: hold
