"""Freezes on a real database (SQLite and PostgreSQL) with a fake fleet: a frozen model refuses changes with who
froze it, why and until when; an emergency still runs and says it overrode the freeze; all of it audited."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from bot.core.change_request import RequestState
from bot.core.freeze import FreezeWindow
from tests.service_harness import ALICE, BOB, DAVE, Harness, make_harness

ROLLBACK = 'rollback fraud_detector 2 --reason "INC-481 false positives"'


@pytest.fixture
def h(tmp_path: Path, db_url: str) -> Harness:
    harness = make_harness(tmp_path, db_url, versions=(1, 2, 3))
    yield harness
    harness.bot.close()


def _trail(h: Harness) -> list[tuple[str, str, str]]:
    with h.bot.db.uow() as uow:
        return [(e.actor, e.action, e.outcome) for e in uow.audit.iter_all()]


def test_a_frozen_model_refuses_a_rollback_naming_who_why_and_until(h: Harness) -> None:
    """dave freezes fraud_detector for 2h; alice's rollback is refused with his name, reason and the end time."""
    frozen = h.say(DAVE, 'freeze fraud_detector --reason "INC-9 investigating" --for 2h')
    assert frozen.ok and "frozen by U04DAVE" in frozen.text
    refused = h.say(ALICE, ROLLBACK)
    assert not refused.ok
    assert "frozen by U04DAVE" in refused.text and "INC-9 investigating" in refused.text and "until" in refused.text
    assert ("U04DAVE", "freeze", "frozen") in _trail(h)
    assert not h.say(ALICE, 'freeze fraud_detector --reason "me"').ok  # alice lacks the freeze permission


def test_an_emergency_overrides_a_freeze_and_says_so(h: Harness) -> None:
    """An --emergency rollback of a frozen model runs and its reply and audit row say it overrode the freeze."""
    assert h.say(DAVE, 'freeze all --reason "INC-9 change freeze"').ok
    done = h.say(DAVE, 'rollback fraud_detector 1 --reason "INC-10 fraud spike" --emergency')
    assert done.ok and "SUCCEEDED" in done.text and "overrode U04DAVE's freeze" in done.text, done.text
    with h.bot.db.uow() as uow:
        requested = [e for e in uow.audit.for_request(1) if e.outcome == "requested"]
    assert "overrode" in requested[0].detail["overrode_freeze"]


def test_unfreeze_lifts_it_and_an_approved_request_waits_meanwhile(h: Harness) -> None:
    """A request approved while a freeze was set later stays APPROVED and executes after the unfreeze."""
    assert h.say(ALICE, ROLLBACK).ok
    assert h.say(DAVE, 'freeze fraud_detector --reason "INC-11 hold"').ok
    waiting = h.say(BOB, "approve R1")
    assert not waiting.ok and "frozen" in waiting.text
    with h.bot.db.uow() as uow:
        assert uow.requests.get(1).state is RequestState.APPROVED
    assert h.say(DAVE, "unfreeze fraud_detector").ok
    assert not h.say(DAVE, "unfreeze fraud_detector").ok  # nothing left to lift
    done = h.say(BOB, "approve R1")
    assert done.ok and "SUCCEEDED" in done.text, done.text


def test_a_scheduled_window_freezes_while_it_is_open(h: Harness) -> None:
    """A permissions.yaml window covering the harness clock's weekday and time refuses the rollback."""
    now = h.clock()
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[now.weekday()]
    h.bot.service.deps.freeze_windows = (
        FreezeWindow(("*",), (day,), time(0, 0), time(23, 59), "UTC", "no changes today"),
    )
    refused = h.say(ALICE, ROLLBACK)
    assert not refused.ok and "scheduled window" in refused.text and "no changes today" in refused.text
