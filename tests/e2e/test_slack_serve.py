"""`modelbot serve` as a process: refuses to start unsafely, serves Slack on its port, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bot.devstack.certs import DevCerts
from tests.devstack_support import config_text, model_entry
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.slack_driver import SlackDriver, http
from tests.e2e.stack import ALICE, SECRET, USERS

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"modelbot serving on 127\.0\.0\.1:(\d+)")


def _config(tmp_path: Path, targets: list[str], certs: DevCerts, base_path: Path) -> Path:
    raw = {
        "slack": {"audit_channel": "C0AUDIT", "incident_channel": "C0INCIDENT"},
        "serving": {
            "targets": targets,
            "tls": {
                "ca_cert": str(certs.ca),
                "client_cert": str(certs.bot_cert),
                "client_key": str(certs.bot_key),
                "server_name": "tf-serving",
            },
            "model_config_file": str(tmp_path / "models.config"),
        },
        "models": {"fraud_detector": {"base_path": str(base_path)}},
    }
    path = tmp_path / "modelbot.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """`modelbot serve` on a free loopback port; its log goes to a file (a pipe nobody drains could block it)."""
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
            cwd=REPO,
            env={**os.environ, **env},
            stderr=err,
            stdout=subprocess.DEVNULL,
            text=True,
        )


def _port(proc: subprocess.Popen[str], log: Path, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_text())
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError("modelbot serve did not start:\n" + log.read_text()[-3000:])


def test_serve_without_signing_secret_refuses_to_start(tmp_path: Path) -> None:
    """HTTP mode without SLACK_SIGNING_SECRET exits 1 and says which variable is missing."""
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "",
        "SLACK_APP_TOKEN": "",
        "MODELBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "MODELBOT_CONFIG": str(REPO / "modelbot.yaml"),
        "MODELBOT_PERMISSIONS": str(REPO / "permissions.yaml"),
    }
    proc = _serve(env, tmp_path / "serve.log")
    assert proc.wait(timeout=60) == 1
    err = (tmp_path / "serve.log").read_text()
    assert "SLACK_SIGNING_SECRET" in err and "Traceback" not in err


def test_serve_answers_slack_and_stops_on_sigterm(
    tmp_path: Path, fake_slack: FakeSlack, fleet: Callable[..., Any], devstack_certs: DevCerts, demo_models: Path
) -> None:
    """The served app answers a signed command and /readyz, then exits 0 promptly on SIGTERM."""
    dev = fleet(
        config_text(model_entry(versions=[3], labels={"stable": 3})),
        1,
        allow_version_labels_for_unavailable_models=True,
    )
    for user in USERS:
        fake_slack.add_user(user)
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_APP_TOKEN": "",
        "SLACK_API_URL": fake_slack.api_url,
        "MODELBOT_ALERT_TOKEN": "t",
        "MODELBOT_LOG_LEVEL": "INFO",
        "MODELBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "MODELBOT_CONFIG": str(_config(tmp_path, dev.targets, devstack_certs, demo_models)),
        "MODELBOT_PERMISSIONS": str(REPO / "permissions.yaml"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    log = tmp_path / "serve.log"
    proc = _serve(env, log)
    try:
        port = _port(proc, log)
        base = f"http://127.0.0.1:{port}"
        assert http(base + "/readyz").status == 200
        driver = SlackDriver(base + "/slack/events", SECRET, fake_slack.response_url)
        assert driver.slash_command("whoami", ALICE).status == 200
        assert "U01ALICE" in fake_slack.wait_for("hooks", 1, timeout=30)[0].body["text"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
