"""The golden-request smoke test on a real 3-replica devstack fleet over mTLS: inside every rollout (before any
label moves) and as `/model smoke`, with one replica skewed by `--devstack_predict_offset`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.fleet import Outcome
from bot.core.policy import Identity
from bot.core.rollout import ChangeSpec, plan_rollout
from bot.devstack.certs import DevCerts
from bot.devstack.fleet import DevFleet
from bot.devstack.smoke_files import write_golden_files
from bot.frontends.slack.blocks import render_card
from bot.serving.config_proto import write_model_config_file
from bot.settings import parse_settings
from bot.texts import postmortem
from bot.usecases.cards import card_view
from bot.usecases.context import Context
from bot.usecases.postmortem import load_story
from bot.usecases.smoke import golden_request
from bot.wiring import Bot, build_bot
from tests.devstack_support import MODEL, config_text, model_entry, spec, wait_until
from tests.integration.serving_rig import Rig, start_rig
from tests.service_harness import ALICE, BOB, demo_policy

pytestmark = pytest.mark.timeout(180)
SKEW = f"{MODEL}:2=0.05"  # replica 1 answers v2's scores plus 0.05
WRONG = "score[0][0]=0.7182 (expected 0.6682 ± 0.0001)"


def smoke_settings(tmp_path: Path, targets: list[str], certs: DevCerts, base_path: Path) -> Any:
    request, expect = write_golden_files(tmp_path / "smoke")
    raw = {
        "serving": {
            "targets": targets,
            "tls": {
                "ca_cert": str(certs.ca),
                "client_cert": str(certs.bot_cert),
                "client_key": str(certs.bot_key),
                "server_name": "tf-serving",
            },
            "model_config_file": str(tmp_path / "models.config"),
            "rpc_timeout_s": 5,
            "converge_timeout_s": 30,
            "status_poll_interval_s": 0.02,
        },
        "models": {
            MODEL: {
                "base_path": str(base_path),
                "keep_warm": 1,
                "smoke_test": {"request": str(request), "expect": str(expect), "tolerance": 1e-4, "timeout_s": 2},
            }
        },
    }
    return parse_settings(raw, tmp_path / "modelbot.yaml")


@pytest.fixture
def smoke_bot(
    fleet: Any, devstack_certs: DevCerts, demo_models: Path, tmp_path: Path, db_url: str, tfs: Any
) -> Iterator[Callable[..., tuple[Bot, DevFleet]]]:
    """Factory: 3 replicas serving {2, 3} with stable=3 (replica 1 skewed on v2 when asked) and the whole bot."""
    bots: list[Bot] = []

    def start(skewed: bool = True) -> tuple[Bot, DevFleet]:
        per_replica = {1: {"devstack_predict_offset": [SKEW]}} if skewed else {}
        entry = model_entry(versions=[2, 3], labels={"stable": 3})
        dev = fleet(config_text(entry), 3, allow_version_labels_for_unavailable_models=True, per_replica=per_replica)
        for target in dev.targets:
            stubs = tfs(target)
            wait_until(lambda s=stubs: {s.status().get(v) for v in (2, 3)} == {"AVAILABLE"}, 30, "initial load")
        settings = smoke_settings(tmp_path, dev.targets, devstack_certs, demo_models)
        state = ModelState(MODEL, str(demo_models), policy=VersionPolicy.specific([2, 3]), labels=(("stable", 3),))
        write_model_config_file(settings.serving.model_config_file, FleetConfig((state,)))
        bot = build_bot(settings, demo_policy(), db_url, clock=lambda: datetime.now(UTC))
        bots.append(bot)
        return bot, dev

    yield start
    for bot in bots:
        bot.close()


def stable_everywhere(dev: DevFleet, tfs: Any) -> list[int]:
    """What `stable` resolves to, read from each replica directly (not through the bot)."""
    return [int(tfs(t).metadata(spec(label="stable")).model_spec.version.value) for t in dev.targets]


def test_skewed_replica_fails_the_rollout_and_no_label_moves(
    smoke_bot: Callable[..., tuple[Bot, DevFleet]], tfs: Any
) -> None:
    """One replica answering v2 differently: FAILED, stable stays on 3 on every replica, the record names it."""
    bot, dev = smoke_bot()
    ctx = bot.service
    alice, bob = Context(Identity(ALICE), channel="C0OPS"), Context(Identity(BOB), channel="C0OPS")
    assert ctx.handle_text(alice, 'rollback fraud_detector 2 --reason "INC-7 smoke"').ok
    reply = ctx.handle_text(bob, "approve R1")
    skewed = dev.targets[1]
    assert not reply.ok and "R1 FAILED" in reply.text, reply.text
    assert f"FAIL {skewed}: smoke test: answered {WRONG}" in reply.text
    assert stable_everywhere(dev, tfs) == [3, 3, 3]

    card = card_view(ctx.deps, 1)
    by_replica = {r["replica"]: r for r in card.replicas}
    assert by_replica[skewed]["phase"] == "smoke" and WRONG in by_replica[skewed]["detail"]
    for other in (dev.targets[0], dev.targets[2]):
        assert "smoke test: answered as expected (score[0][0]=0.6682" in by_replica[other]["detail"]
    rendered = str(render_card(card, datetime.now(UTC)).blocks)
    assert skewed in rendered and WRONG in rendered

    story = load_story(ctx.deps.db, 1, bot.policy)
    assert story is not None
    assert f"`{skewed}`: FAILED at smoke: smoke test: answered {WRONG}" in postmortem.markdown(story)


def test_rollout_passes_the_smoke_test_on_a_healthy_fleet(
    smoke_bot: Callable[..., tuple[Bot, DevFleet]], tfs: Any
) -> None:
    """Every replica answers v2's expected scores: the label moves and each record keeps the answer."""
    bot, dev = smoke_bot(skewed=False)
    bot.service.handle_text(Context(Identity(ALICE)), 'rollback fraud_detector 2 --reason "INC-8"')
    reply = bot.service.handle_text(Context(Identity(BOB)), "approve R1")
    assert reply.ok and "R1 SUCCEEDED" in reply.text, reply.text
    assert reply.text.count("smoke test: answered as expected (score[0][0]=0.6682") == 3
    assert stable_everywhere(dev, tfs) == [2, 2, 2]


def test_smoke_command_reports_each_replica(smoke_bot: Callable[..., tuple[Bot, DevFleet]], tfs: Any) -> None:
    """`/model smoke` answers per replica, passes on v3, names the skewed replica on v2, and loads nothing."""
    bot, dev = smoke_bot()
    viewer = Context(Identity(BOB))
    good = bot.service.handle_text(viewer, "smoke fraud_detector 3")
    assert good.ok and "PASSED on all 3 replicas" in good.text, good.text
    bad = bot.service.handle_text(viewer, "smoke fraud_detector 2")
    assert not bad.ok and "FAILED on 1 of 3 replicas" in bad.text
    assert f"FAIL {dev.targets[1]}: answered {WRONG}" in bad.text
    absent = bot.service.handle_text(viewer, "smoke fraud_detector 1")
    assert not absent.ok and "NOT RUN" in absent.text and absent.text.count("v1 is not loaded here") == 3
    assert all(1 not in tfs(t).status() for t in dev.targets)  # nothing was loaded


@pytest.fixture
def skewed_rig(fleet: Any, devstack_certs: DevCerts, demo_models: Path, tmp_path: Path) -> Iterator[Rig]:
    per_replica = {1: {"devstack_predict_offset": [f"{MODEL}:1=-0.2"]}}
    rig = start_rig(fleet, devstack_certs, demo_models, per_replica=per_replica)
    yield rig
    rig.fleet.close()


def test_cold_rollout_failing_the_smoke_test_sends_the_previous_config_back(
    skewed_rig: Rig, tmp_path: Path, demo_models: Path, devstack_certs: DevCerts
) -> None:
    """A loaded target that answers wrongly is never switched to, and the config without it is sent back."""
    settings = smoke_settings(tmp_path, skewed_rig.dev.targets, devstack_certs, demo_models)
    golden = golden_request(SimpleNamespace(settings=settings), MODEL)  # type: ignore[arg-type]
    plan = plan_rollout(skewed_rig.state, ChangeSpec(MODEL, 1, smoke=golden))
    result = skewed_rig.fleet.rollout(plan, skewed_rig.base, skewed_rig.persisted.append, skewed_rig.events.append)
    assert result.outcome is Outcome.FAILED and result.phases_run == ("load",), result.message
    assert "the smoke test failed on 1 of 3 replicas" in result.message
    assert set(skewed_rig.resolved().values()) == {3}
    reverted = skewed_rig.persisted[-1].model(MODEL)
    assert reverted is not None and reverted.policy.versions == (2, 3)  # v1 is unloaded again
    smoke_events = [e for e in skewed_rig.events if e.phase == "smoke"]
    started, answered = smoke_events[:3], smoke_events[3:]  # each replica: sending first, then its verdict
    assert [e.state for e in started] == ["sending the golden request"] * 3
    assert sorted(e.state for e in answered) == ["failed", "passed", "passed"]
