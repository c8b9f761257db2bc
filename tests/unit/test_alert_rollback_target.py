"""Which version an alert post offers to roll back to."""

from __future__ import annotations

from bot.usecases.alerts import rollback_target


def test_the_newest_older_stable_version_is_offered() -> None:
    """After v2 -> v3, the post offers v2 (the most recent stable version below the current one)."""
    assert rollback_target((2, 1), current=3) == 2


def test_a_version_the_model_was_rolled_back_from_is_never_offered() -> None:
    """After a rollback v3 -> v2 the history starts with v3: the post offers v1, not a roll forward to v3."""
    assert rollback_target((3, 1), current=2) == 1


def test_nothing_older_recorded_means_no_button() -> None:
    """With only newer versions in the history there is no target (the post then offers the versions on disk)."""
    assert rollback_target((3,), current=2) is None
    assert rollback_target((), current=2) is None
