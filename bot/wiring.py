"""Builds the bot from settings and the environment. Nothing happens at import time."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.freeze import FreezeWindow
from bot.core.policy import Policy
from bot.core.ports import Fleet, VersionCatalog
from bot.policy_file import load_policy_file
from bot.service import Service
from bot.serving.config_proto import read_model_config_file
from bot.serving.discovery import LocalCatalog
from bot.serving.fleet import GrpcFleet
from bot.settings import DEFAULT_DATABASE_URL, DEFAULT_PERMISSIONS, Settings, load_settings
from bot.store.database import Database
from bot.usecases.context import Deps


@dataclass
class Bot:
    """Everything a front end needs, built once."""

    settings: Settings
    policy: Policy
    db: Database
    fleet: Fleet
    service: Service

    def close(self) -> None:
        close = getattr(self.fleet, "close", None)
        if callable(close):
            close()
        self.db.dispose()


def utc_now() -> datetime:
    return datetime.now(UTC)


def process_holder() -> str:
    """This process's name in the fleet lock: host and pid for people, plus a nonce, because a restarted
    container is the same host with the same pid (1) and must never be taken for the process that died."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def database_url() -> str:
    return os.environ.get("MODELBOT_DATABASE_URL", DEFAULT_DATABASE_URL)


def build_bot(
    settings: Settings | None = None,
    policy: Policy | None = None,
    db_url: str | None = None,
    *,
    fleet: Fleet | None = None,
    catalog: VersionCatalog | None = None,
    clock: Callable[[], datetime] = utc_now,
    upgrade: bool = True,
    start: bool = True,
) -> Bot:
    """Load and validate settings, open the database (migrating it), connect the fleet, start the service."""
    settings = settings or load_settings()
    retro_review_within: timedelta = timedelta(hours=24)
    freeze_windows: tuple[FreezeWindow, ...] = ()
    if policy is None:
        policy_file = load_policy_file(
            Path(os.environ.get("MODELBOT_PERMISSIONS", DEFAULT_PERMISSIONS)), settings.models
        )
        policy, retro_review_within = policy_file.policy, policy_file.retro_review_within
        freeze_windows = policy_file.freeze_windows
    db = Database(db_url or database_url(), audit_channel=settings.slack.audit_channel)
    if upgrade:
        db.upgrade()
    catalog = catalog or LocalCatalog()
    fleet = fleet or GrpcFleet(settings.serving, catalog)
    holder = process_holder()
    deps = Deps(
        settings=settings,
        policy=policy,
        db=db,
        fleet=fleet,
        catalog=catalog,
        clock=clock,
        holder=holder,
        read_model_config=read_model_config_file,
        retro_review_within=retro_review_within,
        freeze_windows=freeze_windows,
    )
    service = Service(deps)
    if start:
        service.start()
    return Bot(settings=settings, policy=policy, db=db, fleet=fleet, service=service)
