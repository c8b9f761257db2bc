"""Fixtures of the fault suite: the Slack fake and database URLs of the e2e tier, and `serve_stack`, which runs
`modelbot serve` as a real process (so it can be SIGKILLed) against a devstack fleet (see serve_harness.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.devstack.certs import DevCerts
from tests.dbs import BACKENDS, fresh_database_url
from tests.e2e import conftest as e2e
from tests.e2e.fake_slack import FakeSlack
from tests.faults.serve_harness import ServeStack, start_serve_stack

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
fake_slack = e2e.fake_slack  # the fixture of the e2e tier, shared


@pytest.fixture
def started_stacks() -> list[ServeStack]:
    """The serve stacks a test started; whoever tears down first (the database or the factory) stops them."""
    return []


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, started_stacks: list[ServeStack]) -> Iterator[str]:
    """An empty database URL per backend. Tests ask for `serve_stack` before `db_url`, so pytest tears the database
    down first: the test's bots are stopped before its schema is dropped (a live bot's sweep deadlocked the DROP)."""
    with fresh_database_url(request.param, tmp_path) as url:
        try:
            yield url
        finally:
            for stack in started_stacks:
                stack.close()


@pytest.fixture
def serve_stack(
    tmp_path: Path,
    fake_slack: FakeSlack,
    devstack_certs: DevCerts,
    demo_models: Path,
    started_stacks: list[ServeStack],
) -> Iterator[Callable[..., ServeStack]]:
    """Factory: `serve_stack(db_url, **options)` starts a devstack fleet and `modelbot serve`; all stopped after."""
    started = started_stacks

    def start(url: str, **options: Any) -> ServeStack:
        stack = start_serve_stack(
            tmp_path / f"stack-{len(started)}", url, fake_slack, devstack_certs, demo_models, **options
        )
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.close()
