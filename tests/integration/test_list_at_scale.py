"""`/model list` with 1,000 models on 3 replicas (real database, fake fleet): problems first, the rest summed up,
and every page within one Slack message section's worth of text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.serving.config_proto import write_model_config_file
from bot.texts.replies import LIST_PAGE_CHARS
from bot.wiring import build_bot
from tests.fakes import FakeCatalog, FakeFleet
from tests.service_harness import ALICE, Clock, Harness, demo_policy, demo_settings

MODELS = 1000


@pytest.fixture
def h(tmp_path: Path, db_url: str) -> Harness:
    settings = demo_settings(tmp_path)
    states = [
        ModelState(f"model_{i:04d}", f"/models/model_{i:04d}", policy=VersionPolicy.specific([1, 2])).with_labels(
            {"stable": 2}
        )
        for i in range(MODELS)
    ]
    config = FleetConfig(tuple(states))
    assert settings.serving.model_config_file is not None
    write_model_config_file(settings.serving.model_config_file, config)  # adopted at bootstrap, as in a real fleet
    fleet = FakeFleet()
    fleet.sent.append(config)
    fleet.drift = {("model_0042", "r2"): 1, ("model_0777", "r3"): 1}
    bot = build_bot(settings, demo_policy(), db_url, fleet=fleet, catalog=FakeCatalog(), clock=Clock())
    harness = Harness(bot, fleet, Clock())
    yield harness
    bot.close()


def test_a_thousand_models_list_problems_first_within_slack_limits(h: Harness) -> None:
    """The default list names the two drifted models first and sums the other 998 up, in one short message."""
    reply = h.say(ALICE, "list").text
    assert len(reply) <= LIST_PAGE_CHARS
    lines = reply.splitlines()
    # the demo's fraud_detector is configured too (not served yet: nothing to be out of sync with)
    assert lines[0] == f"{MODELS + 1} models: 2 with problems, {MODELS - 1} in sync on every replica."
    # not in modelbot.yaml, so the bot compares what unversioned requests get with the desired versions
    assert lines[1].startswith("model_0042:") and "r2 resolves unversioned requests to v1" in lines[1]
    assert lines[2].startswith("model_0777:") and "r3 resolves unversioned requests to v1" in lines[2]
    assert "In sync (999)" in reply and "3/3 replicas healthy" not in lines[1]


def test_every_model_appears_exactly_once_across_the_pages_of_list_all(h: Harness) -> None:
    """`--all` pages through every model, problems first, each page within the limit, each name once."""
    first = h.say(ALICE, "list --all").text
    pages = int(re.search(r"\(page 1 of (\d+)", first).group(1))  # type: ignore[union-attr]
    seen: list[str] = []
    for page in range(1, pages + 1):
        text = h.say(ALICE, f"list --all --page {page}").text
        assert len(text) <= LIST_PAGE_CHARS
        seen += [line.split(":")[0] for line in text.splitlines()[1:] if not line.startswith("(page")]
    assert seen[:2] == ["model_0042", "model_0777"]
    assert sorted(seen) == ["fraud_detector", *(f"model_{i:04d}" for i in range(MODELS))]


def test_a_prefix_filters_the_list(h: Harness) -> None:
    """`/model list model_004` lists the ten models with that prefix, the drifted one first."""
    text = h.say(ALICE, "list model_004").text
    assert text.splitlines()[0] == "10 models matching 'model_004': 1 with problems, 9 in sync on every replica."
    assert len([line for line in text.splitlines() if line.startswith("model_004")]) == 10
