"""Fixtures shared by all test tiers.

Devstack (real emulator processes over real mTLS; see bot/devstack and tests/devstack_support.py):

- `devstack_certs` (session): `DevCerts` - CA, server, bot and rogue client certificates in a session temp dir.
- `demo_models` (session): base path of the demo `fraud_detector` (versions 1-3 float32[None,20] -> score[None,1],
  4 with a [None,32] input). Exported with TensorFlow once and cached in `.devstack/test-cache/models`
  (delete that directory to re-export). Treat it as read-only.
- `models_copy` (function): a private writable copy of the demo models; returns its `fraud_detector` base path
  (its parent is the models root). For tests that add, delete or break version directories.
- `fleet` (function): factory `fleet(config_text, n=1, *, models_root=None, certs=..., per_replica=None, **knobs)`
  returning a started `DevFleet`; "{models_root}" in config_text means the demo models root unless models_root is
  given. Uses `FAST_KNOBS` (0.05 s polls and loads, one 50 ms load retry) unless overridden. Stopped at teardown.
- `tfs` (function): factory `tfs(target, client="bot", server_name=None, models_root=None) -> TfsStubs` (channel +
  ModelService and PredictionService stubs and helpers); client is "bot", "rogue", "none" (no client certificate)
  or "insecure". `TfsStubs.reload(text)` replaces "{models_root}" like the fleet does. Closed at teardown.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.devstack.certs import DevCerts, make_certs
from bot.devstack.fleet import DevFleet
from bot.devstack.savedmodels import DEMO_MODEL, ensure_demo_models
from tests.devstack_support import FAST_KNOBS, Client, FleetFactory, StubsFactory, TfsStubs, open_stubs

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_CACHE = REPO_ROOT / ".devstack" / "test-cache"


# The slowest tiers first: with workers (`make test` runs pytest-xdist), a long fault test that starts last holds
# the whole run up while the other workers sit idle. Within a tier, collection order is kept.
_TIER_ORDER = ("faults", "e2e", "integration", "deploy", "unit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the collected tests by tier, slowest tier first (a stable sort: order within a tier is kept)."""

    def tier(item: pytest.Item) -> int:
        parts = Path(str(item.path)).relative_to(REPO_ROOT).parts
        name = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
        return _TIER_ORDER.index(name) if name in _TIER_ORDER else len(_TIER_ORDER)

    items.sort(key=tier)


@pytest.fixture(scope="session")
def devstack_certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    """Demo certificates, made once per session."""
    return make_certs(tmp_path_factory.mktemp("devstack-certs"))


@pytest.fixture(scope="session")
def demo_models() -> Path:
    """The cached demo fraud_detector base path (exported with TensorFlow on first use)."""
    return ensure_demo_models(TEST_CACHE / "models")


@pytest.fixture
def models_copy(demo_models: Path, tmp_path: Path) -> Path:
    """A writable copy of the demo models; returns the copied fraud_detector base path."""
    target = tmp_path / "models" / DEMO_MODEL
    shutil.copytree(demo_models, target)
    return target


@pytest.fixture
def fleet(devstack_certs: DevCerts, demo_models: Path, tmp_path: Path) -> Iterator[FleetFactory]:
    """Factory starting DevFleets with fast knobs; every fleet started through it is stopped at teardown."""
    started: list[DevFleet] = []

    def start(config_text: str, n: int = 1, *, models_root: Path | None = None, **kwargs: Any) -> DevFleet:
        certs = kwargs.pop("certs", devstack_certs)
        knobs = {**FAST_KNOBS, **kwargs}
        workdir = tmp_path / f"fleet-{len(started)}"
        fleet = DevFleet(n, models_root or demo_models.parent, certs, config_text, workdir=workdir, **knobs)
        started.append(fleet)
        fleet.start()
        return fleet

    yield start
    for fleet in started:
        fleet.close()


@pytest.fixture
def tfs(devstack_certs: DevCerts, demo_models: Path) -> Iterator[StubsFactory]:
    """Factory of stubs to a replica target (mTLS as the bot by default); channels closed at teardown."""
    opened: list[TfsStubs] = []

    def connect(
        target: str, client: Client = "bot", server_name: str | None = None, models_root: Path | None = None
    ) -> TfsStubs:
        stubs = open_stubs(target, devstack_certs, client, server_name, models_root or demo_models.parent)
        opened.append(stubs)
        return stubs

    yield connect
    for stubs in opened:
        stubs.channel.close()
