"""Socket Mode: the same listeners answer envelopes that carry no signature; HTTP mode insists on one."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_bolt.request import BoltRequest

from bot.core.errors import ConfigError
from bot.frontends.slack.app import SlackEnv, build_app, slack_env
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.stack import ALICE
from tests.service_harness import make_harness


def test_socket_mode_dispatch_answers_a_command(tmp_path: Path, fake_slack: FakeSlack) -> None:
    """A slash command delivered as a Socket Mode envelope is acked and answered on its response_url."""
    harness = make_harness(tmp_path, f"sqlite:///{tmp_path / 'socket.db'}")
    fake_slack.add_user(ALICE)
    env = SlackEnv(bot_token="xoxb-test", signing_secret="", app_token="xapp-1-test", api_url=fake_slack.api_url)
    frontend = build_app(harness.bot.service, env)
    try:
        body = {
            "command": "/model",
            "text": "whoami",
            "user_id": ALICE,
            "channel_id": "C0OPS",
            "team_id": "T0FAKE",
            "response_url": fake_slack.response_url(),
            "trigger_id": "1.2.3",
            "api_app_id": "A0MODELBOT",
        }
        response = frontend.app.dispatch(BoltRequest(body=body, mode="socket_mode"))
        assert response.status == 200
        answer = fake_slack.wait_for("hooks", 1)[0].body
        assert "You are U01ALICE" in answer["text"] and answer["response_type"] == "ephemeral"
    finally:
        frontend.drain(5)
        harness.bot.close()


def test_http_mode_refuses_to_start_without_signing_secret() -> None:
    """Without SLACK_SIGNING_SECRET (and no app token) the settings say exactly what is missing."""
    with pytest.raises(ConfigError) as raised:
        slack_env({"SLACK_BOT_TOKEN": "xoxb-1"})
    assert any("SLACK_SIGNING_SECRET" in p for p in raised.value.problems)
    assert slack_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}).socket_mode
