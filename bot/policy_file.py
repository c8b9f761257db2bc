"""Read permissions.yaml: its strict shape here (pydantic), its meaning in bot.core.policy (standard library only).

Three layers of checks, listed together in one ConfigError:
- duplicate keys, which yaml.safe_load silently collapses (`U02BOB: [viewer]` written twice quietly loses a grant),
  read with bot/config_schema.py's reader and reported with their dotted path and lines;
- the shape: unknown keys at every depth (with a did-you-mean) and wrong types, by `PermissionsFile` below;
- the meaning: known actions and roles, Slack IDs, counts, the TTL, by `bot.core.policy.parse_policy`, which builds
  the Policy as before. Where both layers flag the same path, the core's more specific sentence is kept.
Given the models modelbot.yaml configures, a rule for any other model is an error too: a misspelt model name would
otherwise drop its rule silently and fall back to the "*" rule.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError

from bot.config_schema import (
    PositiveDuration,
    StrictSection,
    Text,
    did_you_mean,
    path_of,
    read_yaml,
    schema_problems,
)
from bot.core.errors import ConfigError
from bot.core.freeze import FreezeWindow
from bot.core.policy import ANY_MODEL, Policy, parse_policy

CONFIG_NAME = "modelbot.yaml"
_DESIGN_ONLY = ("retro_review_within", "freeze_windows")  # DESIGN §2 keys the core policy does not read yet
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class PolicyFile:
    """Everything permissions.yaml says: the enforced Policy and the DESIGN §2 settings not used yet."""

    policy: Policy
    retro_review_within: timedelta = timedelta(hours=24)
    freeze_windows: tuple[FreezeWindow, ...] = ()


# --- the shape


def _time_of_day(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):  # YAML 1.1 reads an unquoted 16:00 as 960
        raise ValueError(f'write the time in quotes, like "16:00" (unquoted, YAML reads it as the number {value})')
    if isinstance(value, str):
        try:
            return time.fromisoformat(value) if len(value) == 5 else value
        except ValueError:
            pass
    return value


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name != "UTC":  # UTC needs no tz database
            raise ValueError(f"unknown time zone {name!r}; use an IANA name like UTC or Europe/Paris") from None
    return name


class RuleSection(StrictSection):
    approvals: int = 1
    approver_roles: list[Any] | None = None  # role names: checked by bot.core.policy


class FreezeWindowSection(StrictSection):
    models: list[Text] = Field(default_factory=lambda: [ANY_MODEL], min_length=1)
    weekdays: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    start: Annotated[time, BeforeValidator(_time_of_day)] = Field(alias="from")
    end: Annotated[time, BeforeValidator(_time_of_day)] = Field(alias="to")
    tz: Annotated[str, AfterValidator(_time_zone)] = "UTC"
    reason: str = ""


class PermissionsFile(StrictSection):
    """permissions.yaml (DESIGN §2). Names inside roles/members/deny/models are checked by bot.core.policy."""

    roles: dict[Any, Any] | None = None
    members: dict[Any, Any] | None = None
    deny: dict[Any, Any] | None = None
    models: dict[Any, dict[Any, RuleSection]] | None = None
    approval_ttl: str | None = None
    retro_review_within: PositiveDuration = timedelta(hours=24)
    freeze_windows: list[FreezeWindowSection] = Field(default_factory=list)


# --- loading


def load_policy(path: str | os.PathLike[str], models: Collection[str] | None = None) -> Policy:
    """Read, check and build the policy; ConfigError(path, every problem) on any mistake.

    `models`: the models modelbot.yaml configures; a rule or freeze window naming another one is a problem."""
    return load_policy_file(path, models).policy


def load_policy_file(path: str | os.PathLike[str], models: Collection[str] | None = None) -> PolicyFile:
    """load_policy, plus the DESIGN §2 settings the bot does not use yet."""
    source = str(path)
    original, problems = read_yaml(Path(path))
    raw = {} if original is None else original
    shape: PermissionsFile | None = None
    shape_problems: list[str] = []
    if isinstance(raw, Mapping):  # otherwise the core's "top level must be a mapping" says it all
        try:
            shape = PermissionsFile.model_validate(raw)
        except ValidationError as exc:
            shape_problems = schema_problems(exc, PermissionsFile)
            raw = _without(raw, [tuple(e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"])
        raw = {key: value for key, value in raw.items() if key not in _DESIGN_ONLY}
    core_problems: list[str] = []
    try:
        policy = parse_policy(raw, source)
    except ConfigError as exc:
        core_problems = list(exc.problems)
    said = {path_of(p) for p in core_problems}
    problems += [p for p in shape_problems if path_of(p) not in said]
    problems += core_problems
    if models is not None:
        problems += unknown_models(original, models)
    if problems:
        raise ConfigError(source, problems)
    assert shape is not None  # no problem means the shape validated
    return PolicyFile(policy, shape.retro_review_within, tuple(_window(w) for w in shape.freeze_windows))


def unknown_models(raw: Any, models: Collection[str]) -> list[str]:
    """Rules and freeze windows of the parsed file naming a model modelbot.yaml does not configure (nor "*")."""
    known = sorted(str(m) for m in models)
    section = _get(raw, "models")
    problems = [
        f"models.{name}: not a model in {CONFIG_NAME}, so this rule would never apply{did_you_mean(name, known)}"
        for name in (section if isinstance(section, Mapping) else ())
        if name != ANY_MODEL and name not in known
    ]
    windows = _get(raw, "freeze_windows")
    for index, window in enumerate(windows if isinstance(windows, list) else ()):
        names = _get(window, "models")
        problems += [
            f"freeze_windows[{index}].models: {name!r} is not a model in {CONFIG_NAME}{did_you_mean(name, known)}"
            for name in (names if isinstance(names, list) else ())
            if isinstance(name, str) and name != ANY_MODEL and name not in known
        ]
    return problems


def _get(mapping: object, key: str) -> object:
    return mapping.get(key) if isinstance(mapping, Mapping) else None


def _without(raw: Mapping[Any, Any], locations: Sequence[tuple[Any, ...]]) -> dict[Any, Any]:
    """A copy of the file without its unknown keys, so the core does not report them a second time."""
    clean = copy.deepcopy(dict(raw))
    for loc in locations:
        parent: Any = clean
        for part in loc[:-1]:
            parent = parent.get(part) if isinstance(parent, Mapping) else None
        if isinstance(parent, dict):
            parent.pop(loc[-1], None)
    return clean


def _window(w: FreezeWindowSection) -> FreezeWindow:
    return FreezeWindow(tuple(w.models), tuple(w.weekdays), w.start, w.end, w.tz, w.reason)
