"""A bot wired with fakes for the fleet and disk, a real database, and a controllable clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.policy import Identity, parse_policy
from bot.settings import parse_settings
from bot.usecases.context import Context, Reply
from bot.wiring import Bot, build_bot
from tests.fakes import FakeCatalog, FakeFleet

REPO = Path(__file__).resolve().parents[1]
ALICE, BOB, CAROL, DAVE = "U01ALICE", "U02BOB", "U03CAROL", "U04DAVE"


@dataclass
class Clock:
    """A clock tests move by hand; `Clock(datetime.now(UTC))` starts it at the real time."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 27, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def demo_settings(tmp_path: Path, **serving: object):  # type: ignore[no-untyped-def]
    raw = yaml.safe_load((REPO / "modelbot.yaml").read_text())
    raw["serving"].update(serving)
    raw["serving"]["model_config_file"] = str(tmp_path / "models.config")
    return parse_settings(raw, tmp_path / "modelbot.yaml")


def demo_policy():  # type: ignore[no-untyped-def]
    return parse_policy(yaml.safe_load((REPO / "permissions.yaml").read_text()))


def initial_config(base_path: str, versions: tuple[int, ...] = (3,), stable: int = 3) -> FleetConfig:
    state = ModelState("fraud_detector", base_path, policy=VersionPolicy.specific(versions))
    return FleetConfig((state.with_labels({"stable": stable}),))


@dataclass
class Harness:
    bot: Bot
    fleet: FakeFleet
    clock: Clock

    def say(self, user: str, text: str, groups: frozenset[str] = frozenset()) -> Reply:
        return self.bot.service.handle_text(Context(Identity(user, groups), channel="C0OPS"), text)


def make_harness(tmp_path: Path, db_url: str, versions: tuple[int, ...] = (3,), clock: Clock | None = None) -> Harness:
    settings = demo_settings(tmp_path)
    fleet = FakeFleet()
    fleet.sent.append(initial_config(settings.models["fraud_detector"].base_path, versions))
    clock = clock or Clock()
    bot = build_bot(settings, demo_policy(), db_url, fleet=fleet, catalog=FakeCatalog(), clock=clock)
    return Harness(bot, fleet, clock)
