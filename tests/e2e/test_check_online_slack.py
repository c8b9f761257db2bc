"""`check-config --online`, Slack: the token (auth.test), its scopes (x-oauth-scopes) against the ones the bot uses,
and every channel the bot posts to (conversations.info), against the loopback fake Slack Web API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.checks import check_slack
from bot.devstack.certs import DevCerts
from bot.settings import ModelSettings, ServingSettings, Settings, SlackChannels, TlsSettings
from tests.devstack_support import MODEL, FleetFactory, config_text, model_entry
from tests.e2e.fake_slack import FakeSlack

REPO = Path(__file__).resolve().parents[2]
CHANNELS = {"C0AUDIT": "audit", "C0INCIDENT": "incidents", "C0FRAUDINC": "fraud-incidents"}


def settings() -> Settings:
    """Audit and incident channels, and a per-model incident channel override (the fleet is not used here)."""
    return Settings(
        serving=ServingSettings(targets=("127.0.0.1:1",), tls=TlsSettings(ca_cert=Path("unused.pem"))),
        models={MODEL: ModelSettings(MODEL, "/unused", incident_channel="C0FRAUDINC")},
        slack=SlackChannels(audit_channel="C0AUDIT", incident_channel="C0INCIDENT"),
    )


def environ(fake: FakeSlack, token: str = "xoxb-test") -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": token, "SLACK_SIGNING_SECRET": "secret", "SLACK_API_URL": fake.api_url}


@pytest.fixture
def slack(fake_slack: FakeSlack) -> FakeSlack:
    """The fake Slack, with every configured channel existing and the bot a member of each."""
    for channel, name in CHANNELS.items():
        fake_slack.add_channel(channel, name)
    return fake_slack


def test_all_fine_is_one_ok_line(slack: FakeSlack) -> None:
    """A valid token with every scope, in every channel: no problem, one OK line naming the bot and the channels."""
    found = check_slack(settings(), environ(slack))
    assert found.problems == []
    assert found.ok == [
        "Slack OK: token of @modelbot (U0MODELBOT) in Fake, scopes chat:write, commands, im:write, usergroups:read,"
        " users:read,"
        " channels C0AUDIT, C0FRAUDINC, C0INCIDENT"
    ]
    assert sorted(c.body["channel"] for c in slack.calls_to("conversations.info")) == sorted(CHANNELS)


def test_missing_scopes_are_each_named(slack: FakeSlack) -> None:
    """A token without users:read and usergroups:read gets one line per missing scope, saying what it is for."""
    slack.scopes = ["commands", "chat:write"]
    found = check_slack(settings(), environ(slack))
    assert found.problems == [
        "SLACK_BOT_TOKEN: the scope im:write is missing (needed for DMs to approvers and to requesters whose card"
        " could not be posted): add it under OAuth & Permissions and reinstall the app",
        "SLACK_BOT_TOKEN: the scope usergroups:read is missing (needed for user-group members in permissions.yaml):"
        " add it under OAuth & Permissions and reinstall the app",
        "SLACK_BOT_TOKEN: the scope users:read is missing (needed for users.info (deleted and bot users cannot"
        " approve)): add it under OAuth & Permissions and reinstall the app",
    ]


def test_private_channel_the_bot_is_not_in(slack: FakeSlack) -> None:
    """The per-model incident channel, private and without the bot, is named by its setting with the fix."""
    slack.add_channel("C0FRAUDINC", "fraud-incidents", member=False, private=True)
    assert check_slack(settings(), environ(slack)).problems == [
        "models.fraud_detector.incident_channel: the bot is not a member of #fraud-incidents (C0FRAUDINC), so it"
        " cannot post there: /invite @modelbot in that channel"
    ]


def test_public_channel_needs_membership_or_chat_write_public(slack: FakeSlack) -> None:
    """A public channel without the bot is a problem unless the token may post to public channels without joining."""
    slack.add_channel("C0AUDIT", "audit", member=False)
    without = check_slack(settings(), environ(slack)).problems
    assert without == [
        "slack.audit_channel: the bot is not a member of #audit (C0AUDIT), so it cannot post there: /invite"
        " @modelbot in that channel, or add the chat:write.public scope"
    ]
    slack.scopes = [*slack.scopes, "chat:write.public"]
    assert check_slack(settings(), environ(slack)).problems == []


def test_unknown_and_archived_channels_are_named(slack: FakeSlack) -> None:
    """A channel id Slack does not know and an archived channel each get a line naming their setting."""
    del slack.channels["C0INCIDENT"]
    slack.add_channel("C0AUDIT", "audit", archived=True)
    assert check_slack(settings(), environ(slack)).problems == [
        "slack.audit_channel: channel #audit (C0AUDIT) is archived: the bot cannot post there",
        "slack.incident_channel: channel C0INCIDENT does not exist, or is private and the bot is not in it: check"
        " the id",
    ]


def test_channels_cannot_be_checked_without_read_scopes(slack: FakeSlack) -> None:
    """When conversations.info answers missing_scope, the line says which scope the check needs."""
    slack.fail_next("conversations.info", error="missing_scope", channel="C0AUDIT")
    assert check_slack(settings(), environ(slack)).problems == [
        "slack.audit_channel: cannot check channel C0AUDIT: conversations.info needs channels:read (groups:read if"
        " private)"
    ]


@pytest.mark.parametrize(("token", "error"), [("not-a-slack-token", "not_authed"), ("xoxb-revoked", "invalid_auth")])
def test_bad_token_is_named(slack: FakeSlack, token: str, error: str) -> None:
    """A token Slack refuses is named with Slack's error, and nothing else is checked with it."""
    if error == "invalid_auth":
        slack.fail_next("auth.test", error="invalid_auth")
    found = check_slack(settings(), environ(slack, token))
    assert found.problems == [f"SLACK_BOT_TOKEN: Slack refused it at {slack.api_url} (auth.test: {error})"]
    assert slack.calls_to("conversations.info", ok_only=False) == []


def test_unreachable_slack_names_the_url() -> None:
    """An SLACK_API_URL where nothing listens is named as unreachable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/"
        found = check_slack(
            settings(), {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": url}
        )
    assert len(found.problems) == 1 and found.problems[0].startswith(f"SLACK_API_URL: cannot reach Slack at {url}: ")


def test_missing_signing_secret_is_what_serve_would_refuse(slack: FakeSlack) -> None:
    """Without SLACK_SIGNING_SECRET (HTTP mode) `serve` would not start: the check says so too."""
    env = environ(slack)
    del env["SLACK_SIGNING_SECRET"]
    problems = check_slack(settings(), env).problems
    assert len(problems) == 1 and problems[0].startswith("environment: SLACK_SIGNING_SECRET is not set")


def test_without_a_token_slack_is_not_checked(slack: FakeSlack) -> None:
    """No SLACK_BOT_TOKEN (a console-only set-up): no problem, a line saying Slack was not checked, no call made."""
    found = check_slack(settings(), {"SLACK_API_URL": slack.api_url})
    assert found.problems == [] and found.ok == ["Slack not checked: SLACK_BOT_TOKEN is not set"]
    assert slack.calls == []


def test_cli_proves_the_whole_set_up(
    slack: FakeSlack, fleet: FleetFactory, devstack_certs: DevCerts, demo_models: Path, tmp_path: Path
) -> None:
    """`modelbot check-config --online` against a devstack replica and the fake Slack: exit 0 with an OK line per
    area; then, the bot removed from the audit channel, exit 1 with that one line."""
    target = fleet(config_text(model_entry(versions=[1]))).targets[0]
    tls = {
        "ca_cert": str(devstack_certs.ca),
        "client_cert": str(devstack_certs.bot_cert),
        "client_key": str(devstack_certs.bot_key),
        "server_name": "tf-serving",
    }
    config = {
        "slack": {"audit_channel": "C0AUDIT", "incident_channel": "C0INCIDENT"},
        "serving": {"targets": [target], "tls": tls},
        "models": {MODEL: {"base_path": str(demo_models), "incident_channel": "C0FRAUDINC"}},
    }
    (tmp_path / "modelbot.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")} | environ(slack)
    env |= {"MODELBOT_CONFIG": str(tmp_path / "modelbot.yaml"), "MODELBOT_PERMISSIONS": str(REPO / "permissions.yaml")}

    def run() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bot", "check-config", "--online"]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)

    fine = run()
    assert fine.returncode == 0, fine.stderr
    lines = fine.stdout.splitlines()
    areas = [line.split(":")[0] for line in lines]
    assert areas == [
        "fleet OK",
        "models OK",
        "Slack OK",
        "configuration OK (and every online check above)",
    ]
    slack.add_channel("C0AUDIT", "audit", member=False, private=True)
    broken = run()
    assert broken.returncode == 1
    assert broken.stderr.splitlines() == [
        "  - slack.audit_channel: the bot is not a member of #audit (C0AUDIT), so it cannot post there: /invite"
        " @modelbot in that channel",
        "1 problem(s) found.",
    ]
