"""Issue 8: the bot adopts a fleet it did not create and changes only what it owns.

A devstack fleet (request logger and extra platforms built in) starts from a corpus models.config; the bot, wired
as `modelbot serve` wires it (GrpcFleet over mTLS, a real database), bootstraps from that file; alice asks for a
cold rollback of fraud_detector (3 -> 2) and bob approves it. Then every replica's stored config (what it
received last, dumped by the emulator) and the models.config the bot wrote are compared, as protos and field by
field, with the adopted config: equal except fraud_detector's version policy and labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.core.policy import Identity
from bot.devstack.certs import DevCerts
from bot.devstack.fleet import DevFleet
from bot.serving.protos import tfs_apis_pb2
from bot.settings import parse_settings
from bot.usecases.context import Context, Reply
from bot.wiring import Bot, build_bot
from tests.devstack_support import FleetFactory
from tests.model_config_corpus import (
    CUSTOM_PLATFORMS,
    LARGE,
    MANAGED,
    MODELS_ROOT,
    corpus_names,
    corpus_text,
    field_diff,
    parsed,
)
from tests.service_harness import ALICE, BOB, demo_policy

ROLLBACK = f'rollback {MANAGED} 2 --reason "INC-812 adopted fleet"'
INTENDED = {
    f"model_config_list.config[{MANAGED}].model_version_policy.specific.versions",  # {3} -> {2, 3}
    f"model_config_list.config[{MANAGED}].version_labels",  # stable 3 -> 2
}
REPLICAS = 2
BotFactory = Callable[[DevFleet, Path], Bot]


@pytest.fixture
def models_root(demo_models: Path, tmp_path: Path) -> Path:
    """A models root where every corpus model's base path is the (read-only) demo model, by symlink."""
    root = tmp_path / "models"
    root.mkdir()
    for name in corpus_names():
        for model in parsed(corpus_text(name, str(root))).model_config_list.config:
            link = Path(model.base_path)
            if not link.exists():
                link.symlink_to(demo_models, target_is_directory=True)
    return root


def _start_fleet(fleet: FleetFactory, name: str, models_root: Path) -> DevFleet:
    """The replicas, started from the corpus file, as a build with a request logger and the corpus's platforms."""
    knobs: dict[str, object] = {}
    if name == LARGE:  # a thousand models: loads take no simulated time, and fewer filesystem polls
        knobs = {
            "devstack_load_seconds": 0,
            "file_system_poll_wait_seconds": 1,
            "devstack_manage_interval_seconds": 0.002,
        }
    return fleet(
        corpus_text(name, MODELS_ROOT),
        REPLICAS,
        models_root=models_root,
        allow_version_labels_for_unavailable_models=True,
        devstack_request_logger=True,
        devstack_platforms=CUSTOM_PLATFORMS,
        dump_configs=True,
        ready_timeout_s=180,
        **knobs,
    )


@pytest.fixture
def bot_for(tmp_path: Path, db_url: str, devstack_certs: DevCerts) -> Iterator[BotFactory]:
    """Factory: the bot driving `dev`, with the fleet's own models.config as its model_config_file."""
    started: list[Bot] = []

    def start(dev: DevFleet, models_root: Path) -> Bot:
        raw = {
            "slack": {"audit_channel": "C0AUDIT", "incident_channel": "C0INCIDENT"},
            "serving": {
                "targets": dev.targets,
                "tls": {
                    "ca_cert": str(devstack_certs.ca),
                    "client_cert": str(devstack_certs.bot_cert),
                    "client_key": str(devstack_certs.bot_key),
                    "server_name": "tf-serving",
                },
                "model_config_file": str(dev.config_file),
                "rpc_timeout_s": 30,
                "converge_timeout_s": 60,
                "status_poll_interval_s": 0.05,
            },
            "models": {MANAGED: {"base_path": str(models_root / MANAGED), "routing": "labels", "keep_warm": 1}},
        }
        settings = parse_settings(raw, tmp_path / "modelbot.yaml")
        bot = build_bot(settings, demo_policy(), db_url)  # GrpcFleet + LocalCatalog, bootstraps from the file
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.close()


@pytest.mark.parametrize("name", corpus_names())
def test_adopted_fleet_keeps_everything_but_the_rollback(
    name: str, fleet: FleetFactory, models_root: Path, bot_for: BotFactory
) -> None:
    """After adoption and a rollback, every replica received, and the file holds, the adopted config except the
    intended version-policy and label change of the managed model, compared field by field."""
    dev = _start_fleet(fleet, name, models_root)
    adopted = parsed(dev.config_file.read_text())
    bot = bot_for(dev, models_root)
    asked = _say(bot, ALICE, ROLLBACK)
    assert asked.ok, asked.text
    done = _say(bot, BOB, f"approve R{asked.request_id}")
    assert done.ok and "SUCCEEDED" in done.text, done.text

    received = [dev.stored_config(i) for i in range(REPLICAS)]
    written = parsed(dev.config_file.read_text())
    for config in [*received, written]:
        assert config is not None
        assert set(field_diff(adopted, config)) == INTENDED
        _assert_rolled_back(adopted, config)


def _say(bot: Bot, user: str, text: str) -> Reply:
    return bot.service.handle_text(Context(Identity(user, frozenset()), channel="C0OPS"), text)


def _assert_rolled_back(adopted: tfs_apis_pb2.ModelServerConfig, config: tfs_apis_pb2.ModelServerConfig) -> None:
    """The intended change itself: versions {2, 3}, stable on 2, every other label as adopted."""
    before = next(m for m in adopted.model_config_list.config if m.name == MANAGED)
    after = next(m for m in config.model_config_list.config if m.name == MANAGED)
    assert list(after.model_version_policy.specific.versions) == [2, 3]
    assert dict(after.version_labels) == {**before.version_labels, "stable": 2}
