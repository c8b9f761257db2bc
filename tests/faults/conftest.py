"""Fixtures of the fault suite: the Slack fake and database URLs of the e2e tier, and `serve_stack`, which runs
`modelbot serve` as a real process (so it can be SIGKILLed) against a devstack fleet (see serve_harness.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.devstack.certs import DevCerts
from tests.e2e import conftest as e2e
from tests.e2e.fake_slack import FakeSlack
from tests.faults.serve_harness import ServeStack, start_serve_stack

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
fake_slack = e2e.fake_slack  # the fixtures of the e2e tier, shared
db_url = e2e.db_url


@pytest.fixture
def serve_stack(
    tmp_path: Path, fake_slack: FakeSlack, devstack_certs: DevCerts, demo_models: Path
) -> Iterator[Callable[..., ServeStack]]:
    """Factory: `serve_stack(db_url, **options)` starts a devstack fleet and `modelbot serve`; all stopped after."""
    started: list[ServeStack] = []

    def start(url: str, **options: Any) -> ServeStack:
        stack = start_serve_stack(
            tmp_path / f"stack-{len(started)}", url, fake_slack, devstack_certs, demo_models, **options
        )
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.close()
