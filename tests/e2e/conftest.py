"""Fixtures of the Slack e2e tests: a fake Slack Web API, and the bot running against it on loopback.

- `fake_slack`: a started FakeSlack (tests/e2e/fake_slack.py).
- `db_url`: an empty database; every test using it runs on SQLite and on PostgreSQL (skipped without
  MODELBOT_TEST_POSTGRES_URL).
- `fake_stack`: the bot (cheroot, real database, real Slack front end) with an in-memory FakeFleet.
- `devstack_stack`: factory `devstack_stack(**knobs)` - the same bot driving a 3-replica devstack fleet over mTLS
  that serves fraud_detector {2, 3} with `stable` on 3 (a rollback to 2 is warm unless knobs say otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.devstack.certs import DevCerts
from tests.dbs import BACKENDS, fresh_database_url
from tests.devstack_support import MODEL, config_text, model_entry, wait_until
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.stack import Stack, start_stack, stop_stack

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("SKIP_SLACK_SDK_WARNING", "1")


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A fake Slack Web API on an ephemeral loopback port."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL; the test runs once per backend."""
    with fresh_database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def fake_stack(tmp_path: Path, db_url: str, fake_slack: FakeSlack) -> Iterator[Stack]:
    """The bot on loopback with a FakeFleet (fast: no emulator processes)."""
    stack = start_stack(tmp_path, db_url, fake_slack)
    yield stack
    stop_stack(stack)


@pytest.fixture
def devstack_stack(
    tmp_path: Path,
    db_url: str,
    fake_slack: FakeSlack,
    fleet: Any,
    devstack_certs: DevCerts,
    demo_models: Path,
    tfs: Any,
) -> Iterator[Callable[..., Stack]]:
    """Factory: the bot on loopback driving 3 devstack replicas; `loaded` are the versions loaded at start."""
    started: list[Stack] = []

    def start(loaded: tuple[int, ...] = (2, 3), **knobs: Any) -> Stack:
        entry = model_entry(versions=list(loaded), labels={"stable": 3})
        dev = fleet(config_text(entry), 3, allow_version_labels_for_unavailable_models=True, **knobs)
        for target in dev.targets:  # the bot starts against a settled fleet
            stubs = tfs(target)
            wait_until(lambda s=stubs: all(s.status().get(v) == "AVAILABLE" for v in loaded), 30, "initial load")
        base_path = str(demo_models)
        initial = FleetConfig(
            (ModelState(MODEL, base_path, policy=VersionPolicy.specific(loaded), labels=(("stable", 3),)),)
        )
        stack = start_stack(
            tmp_path, db_url, fake_slack, dev=dev, certs=devstack_certs, base_path=base_path, initial=initial
        )
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stop_stack(stack)
