"""Guarded automatic rollback (pure): should the bot roll a model back on its own because of an alert?

The use case (bot/usecases/auto_rollback.py) gathers the facts from the store and the fleet; this module only
judges them. Three verdicts: act (roll back to `target`), hold (a guardrail says no: a human decides, with the
reason shown), wait (not firing for `min_firing` yet: ask again at `until`). Guardrails, first match wins:
still within min_firing -> wait; frozen; another rollout running; within `cooldown` of the model's last change;
`max_per_hour` automatic rollbacks already; no last-known-good version; the target fails pre-flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

HOUR = timedelta(hours=1)


class Verdict(StrEnum):
    ACT = "act"
    HOLD = "hold"
    WAIT = "wait"


class Hold(StrEnum):
    """Why an automatic rollback was held back (the texts in bot/texts/alerts.py word each one)."""

    FROZEN = "frozen"
    BUSY = "busy"
    COOLDOWN = "cooldown"
    BUDGET = "budget"
    NO_TARGET = "no_target"
    PREFLIGHT = "preflight"


@dataclass(frozen=True)
class Facts:
    """Everything the decision needs, read at one moment."""

    now: datetime
    firing_since: datetime
    min_firing: timedelta
    cooldown: timedelta
    max_per_hour: int
    last_change_at: datetime | None  # the model's last rollout (any, human or automatic)
    acted_last_hour: int  # automatic rollbacks of this model within the last hour
    frozen: bool
    busy: bool  # another rollout runs (fleet lease held, or an operation not finished)
    current: int | None  # the stable version now
    last_known_good: int | None
    preflight_problem: str = ""  # set once the target was checked and failed


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    hold: Hold | None = None
    target: int | None = None
    until: datetime | None = None  # WAIT: when to ask again; HOLD COOLDOWN: when the cooldown ends


def decide(facts: Facts) -> Decision:
    """The verdict for one alert at `facts.now`."""
    due = facts.firing_since + facts.min_firing
    if facts.now < due:
        return Decision(Verdict.WAIT, until=due)
    cooldown_end = facts.last_change_at + facts.cooldown if facts.last_change_at is not None else None
    guardrails = (  # in order; the first that holds decides
        (facts.frozen, Hold.FROZEN),
        (facts.busy, Hold.BUSY),
        (cooldown_end is not None and facts.now < cooldown_end, Hold.COOLDOWN),
        (facts.acted_last_hour >= facts.max_per_hour, Hold.BUDGET),
        (facts.last_known_good is None or facts.last_known_good == facts.current, Hold.NO_TARGET),
        (bool(facts.preflight_problem), Hold.PREFLIGHT),
    )
    for holds, hold in guardrails:
        if holds:
            until = cooldown_end if hold is Hold.COOLDOWN else None
            return Decision(Verdict.HOLD, hold, target=facts.last_known_good, until=until)
    return Decision(Verdict.ACT, target=facts.last_known_good)


@dataclass(frozen=True)
class StableChange:
    """The model's stable label moved to `version` at `at` (a finished rollout, or the adoption at bootstrap);
    `by_rollback`: the move was a rollback, so the version before it is one the model was rolled back from."""

    at: datetime
    version: int
    by_rollback: bool = False


def last_known_good(
    timeline: Sequence[StableChange], current: int | None, min_stable: timedelta, now: datetime
) -> int | None:
    """The version, other than `current`, that was stable most recently for at least `min_stable` without a break,
    in a period that did not end in a rollback.

    `timeline` is in time order; each entry's period ends where the next begins (the last one at `now`). A period
    that a rollback ended does not count however long it lasted: that version is what the model was rolled back
    from, the suspect of an incident, and an automatic rollback must never roll forward to it.
    """
    ordered: list[StableChange] = []
    for change in sorted(timeline, key=lambda change: change.at):
        if not ordered or ordered[-1].version != change.version:  # a re-send of the same version is no break
            ordered.append(change)
    for index in range(len(ordered) - 1, -1, -1):
        change = ordered[index]
        following = ordered[index + 1] if index + 1 < len(ordered) else None
        end = following.at if following is not None else now
        rolled_back_from = following is not None and following.by_rollback
        if change.version != current and not rolled_back_from and end - change.at >= min_stable:
            return change.version
    return None
