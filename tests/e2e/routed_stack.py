"""The e2e stack (tests/e2e/stack.py) with approval routing configured: an approval channel, approver DMs.

`start_routed_stack(...)` is `start_stack` with `slack:` / per-model settings added to modelbot.yaml; the fake
Slack knows the channels (the bot a member of APPROVALS and OPS, not of NOT_IN). `routed_devstack` starts the
same bot against 3 devstack replicas over mTLS (fraud_detector {2, 3}, stable on 3: a rollback to 2 is warm).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.devstack.certs import DevCerts
from bot.devstack.fleet import DevFleet
from bot.frontends.server import Server
from bot.frontends.slack.app import SlackEnv
from bot.serving.config_proto import write_model_config_file
from bot.settings import Settings
from bot.wiring import build_bot
from tests.devstack_support import config_text, model_entry, wait_until
from tests.e2e import stack as base
from tests.e2e.fake_slack import BOT_USER, TEAM, FakeSlack
from tests.e2e.slack_driver import HttpResult, SlackDriver
from tests.e2e.stack import MODEL, SECRET, Stack
from tests.fakes import FakeCatalog, FakeFleet
from tests.service_harness import demo_policy

APPROVALS, NOT_IN = "C0APPROVE", "C0NOTIN"
GROUP = "S0MLONCALL"


def routed_settings(settings: Settings, slack: dict[str, Any], model: dict[str, Any]) -> Settings:
    """`settings` with `slack` fields (approval_channel, notify_approvers) and per-model ones replaced."""
    models = {name: dataclasses.replace(m, **model) for name, m in settings.models.items()}
    return dataclasses.replace(settings, slack=dataclasses.replace(settings.slack, **slack), models=models)


def start_routed_stack(
    tmp_path: Path,
    db_url: str,
    fake: FakeSlack,
    *,
    slack: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    dev: DevFleet | None = None,
    certs: DevCerts | None = None,
    base_path: str = "/models/fraud_detector",
    initial: FleetConfig | None = None,
    **server_options: Any,
) -> Stack:
    """The bot on loopback (HTTP mode) with approval routing settings; a FakeFleet unless `dev` is given."""
    for user in base.USERS:
        fake.add_user(user)
    fake.set_group(GROUP, [])
    fake.add_channel(APPROVALS, "ml-approvals")
    fake.add_channel(base.OPS, "ops")
    fake.add_channel(NOT_IN, "random", member=False)
    targets = tuple(dev.targets) if dev else ("fake:1", "fake:2", "fake:3")
    settings = routed_settings(base.settings_for(tmp_path, base_path, targets, certs), slack or {}, model or {})
    initial = initial or FleetConfig(
        (ModelState(MODEL, base_path, policy=VersionPolicy.specific([2, 3]), labels=(("stable", 3),)),)
    )
    fleet, catalog = None, None
    if dev is None:
        fake_fleet = FakeFleet()
        fake_fleet.sent.append(initial)
        fleet, catalog = fake_fleet, FakeCatalog()
    assert settings.serving.model_config_file is not None
    write_model_config_file(settings.serving.model_config_file, initial)
    bot = build_bot(settings, demo_policy(), db_url, fleet=fleet, catalog=catalog)
    env = SlackEnv(bot_token="xoxb-test", signing_secret=SECRET, app_token="", api_url=fake.api_url)
    options = {"alert_token": base.ALERT_TOKEN, "outbox_options": base.FAST_OUTBOX, **server_options}
    server = Server(bot, env, host="127.0.0.1", port=0, **options)
    server.start()
    driver = SlackDriver(f"http://127.0.0.1:{server.port}/slack/events", SECRET, fake.response_url)
    return Stack(fake=fake, server=server, bot=server.bot, driver=driver, dev=dev)


@pytest.fixture
def routed_devstack(
    tmp_path: Path,
    db_url: str,
    fake_slack: FakeSlack,
    fleet: Any,
    devstack_certs: DevCerts,
    demo_models: Path,
    tfs: Any,
) -> Iterator[Callable[..., Stack]]:
    """Factory: the routed bot driving 3 devstack replicas that serve fraud_detector {2, 3}, stable on 3."""
    started: list[Stack] = []

    def start(**routing: Any) -> Stack:
        entry = model_entry(versions=[2, 3], labels={"stable": 3})
        dev = fleet(config_text(entry), 3, allow_version_labels_for_unavailable_models=True)
        for target in dev.targets:
            stubs = tfs(target)
            wait_until(lambda s=stubs: all(s.status().get(v) == "AVAILABLE" for v in (2, 3)), 30, "initial load")
        path = str(demo_models)
        initial = FleetConfig(
            (ModelState(MODEL, path, policy=VersionPolicy.specific([2, 3]), labels=(("stable", 3),)),)
        )
        stack = start_routed_stack(
            tmp_path, db_url, fake_slack, dev=dev, certs=devstack_certs, base_path=path, initial=initial, **routing
        )
        started.append(stack)
        return stack

    yield start
    for stack in started:
        base.stop_stack(stack)


def texts_of(blocks: list[dict[str, Any]]) -> str:
    """All text of a message's or view's blocks (sections, fields, contexts, buttons)."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        for element in block.get("elements", []):
            text = element.get("text")
            parts.append(text["text"] if isinstance(text, dict) else str(text or ""))
    return "\n".join(parts)


def signed_event(driver: SlackDriver, event: dict[str, Any], event_id: str) -> HttpResult:
    """A signed Events API callback carrying `event`, as Slack sends it (JSON)."""
    body = {
        "token": "deprecated",
        "team_id": TEAM,
        "api_app_id": "A0MODELBOT",
        "event": {"event_ts": "1.2", **event},
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1700000000,
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }
    return driver.post(json.dumps(body), content_type="application/json")


def home_opened(driver: SlackDriver, user_id: str) -> HttpResult:
    """`app_home_opened` for `user_id`."""
    event = {"type": "app_home_opened", "user": user_id, "channel": "D0HOME", "tab": "home"}
    return signed_event(driver, event, f"Ev{user_id}")


def member_joined(driver: SlackDriver, channel: str, user_id: str = BOT_USER, inviter: str = "U01ALICE") -> HttpResult:
    """`member_joined_channel`: `user_id` (the bot by default) added to `channel` by `inviter`."""
    event = {"type": "member_joined_channel", "user": user_id, "channel": channel, "channel_type": "C"}
    return signed_event(driver, {**event, "team": TEAM, "inviter": inviter}, f"Ev{channel}{user_id}")


def home_click(driver: SlackDriver, action_id: str, value: str, user_id: str) -> HttpResult:
    """A signed click on a button of the Home tab (a view container: no channel, no message)."""
    action = {"type": "button", "action_id": action_id, "block_id": f"home-decide:{value}", "value": value}
    return driver.post(driver.block_actions_body(user_id, action, view_id="V0HOME"))
