"""`modelbot check-config` (and every command that loads the configuration) refuses misspelt keys, as a user runs it:
a separate process, MODELBOT_CONFIG / MODELBOT_PERMISSIONS pointing at real files, exit codes and stderr."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# The seven typos issue 8 found passing as "configuration OK": (section, right key, wrong key, did-you-mean).
TYPOS = [
    (("slack",), "audit_channel", "audit_chanel"),
    (("slack",), "incident_channel", "incident_chanel"),
    (("serving",), "converge_timeout_s", "converge_timeout"),
    (("serving",), "model_config_file", "model_config_fle"),
    (("serving", "tls"), "server_name", "server_nme"),
    (("serving", "tls"), "client_cert", "client_crt"),
    (("serving", "tls"), "client_key", "client_ky"),
]


def modelbot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _valid_config(tmp_path: Path) -> dict[str, Any]:
    """A modelbot.yaml whose files all exist, so check-config passes until a test breaks it."""
    for name in ("ca.pem", "bot.pem", "bot.key"):
        (tmp_path / "certs").mkdir(exist_ok=True)
        (tmp_path / "certs" / name).write_text("PEM")
    (tmp_path / "models" / "fraud_detector").mkdir(parents=True)
    (tmp_path / "serving").mkdir()
    return {
        "slack": {"audit_channel": "C0AUDIT", "incident_channel": "C0INCIDENT"},
        "serving": {
            "targets": ["localhost:8500"],
            "tls": {
                "ca_cert": "certs/ca.pem",
                "client_cert": "certs/bot.pem",
                "client_key": "certs/bot.key",
                "server_name": "tf-serving",
            },
            "model_config_file": "serving/models.config",
            "converge_timeout_s": 120,
        },
        "models": {"fraud_detector": {"base_path": "models/fraud_detector"}},
    }


def _env(tmp_path: Path, config: dict[str, Any], permissions: str | None = None) -> dict[str, str]:
    (tmp_path / "modelbot.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "permissions.yaml").write_text(permissions or (REPO / "permissions.yaml").read_text())
    return {
        "MODELBOT_CONFIG": str(tmp_path / "modelbot.yaml"),
        "MODELBOT_PERMISSIONS": str(tmp_path / "permissions.yaml"),
        "MODELBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
    }


def test_a_valid_configuration_passes(tmp_path: Path) -> None:
    """The baseline the other tests break is itself accepted (so their failures are the typo's doing)."""
    result = modelbot("check-config", env=_env(tmp_path, _valid_config(tmp_path)))
    assert result.returncode == 0 and "configuration OK" in result.stdout, result.stderr


def test_audit_channel_typo_is_named_with_a_did_you_mean(tmp_path: Path) -> None:
    """`slack: {audit_chanel: C1}` exits 1 naming the key's path and the key that was meant, without a traceback."""
    config = _valid_config(tmp_path)
    config["slack"] = {"audit_chanel": "C1"}
    result = modelbot("check-config", env=_env(tmp_path, config))
    assert result.returncode == 1
    assert "slack.audit_chanel: unknown key (did you mean 'audit_channel'?)" in result.stderr
    assert "1 problem(s) found." in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("section", "right", "wrong"), TYPOS, ids=[t[2] for t in TYPOS])
def test_each_typo_found_in_issue_8_is_rejected(
    tmp_path: Path, section: tuple[str, ...], right: str, wrong: str
) -> None:
    """Each of the seven misspelt keys that used to pass as "configuration OK" is now an error naming it."""
    config = _valid_config(tmp_path)
    mapping = config
    for key in section:
        mapping = mapping[key]
    mapping[wrong] = mapping.pop(right)
    result = modelbot("check-config", env=_env(tmp_path, config))
    assert result.returncode == 1, result.stdout
    expected = f"{'.'.join(section)}.{wrong}: unknown key (did you mean {right!r}?)"
    assert expected in result.stderr, result.stderr


def test_a_rule_for_an_unknown_model_is_an_error(tmp_path: Path) -> None:
    """A misspelt model in permissions.yaml no longer falls back to the "*" rule silently: it is named."""
    permissions = (REPO / "permissions.yaml").read_text().replace("  fraud_detector:\n", "  fraud_detecter:\n")
    result = modelbot("check-config", env=_env(tmp_path, _valid_config(tmp_path), permissions))
    assert result.returncode == 1
    assert (
        "permissions.yaml: models.fraud_detecter: not a model in modelbot.yaml, so this rule would never apply"
        " (did you mean 'fraud_detector'?)"
    ) in result.stderr


@pytest.mark.parametrize("command", [["console"], ["serve", "--port", "0"]])
def test_console_and_serve_refuse_the_same_mistakes(tmp_path: Path, command: list[str]) -> None:
    """`console` and `serve` load the files through the same functions: a typo and an unknown model stop them."""
    slack = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret"}
    config = _valid_config(tmp_path)
    config["serving"]["tls"]["server_nme"] = config["serving"]["tls"].pop("server_name")
    typo = modelbot(*command, env={**_env(tmp_path, config), **slack})
    assert typo.returncode == 1 and "Configuration problems in" in typo.stderr
    assert "serving.tls.server_nme: unknown key (did you mean 'server_name'?)" in typo.stderr
    config["serving"]["tls"]["server_name"] = config["serving"]["tls"].pop("server_nme")
    permissions = (REPO / "permissions.yaml").read_text().replace("  fraud_detector:\n", "  fraud_detecter:\n")
    unknown = modelbot(*command, env={**_env(tmp_path, config, permissions), **slack})
    assert unknown.returncode == 1, unknown.stderr
    assert "models.fraud_detecter: not a model in modelbot.yaml" in unknown.stderr
    assert "Traceback" not in typo.stderr + unknown.stderr


def test_demo_configuration_files_pass(tmp_path: Path) -> None:
    """The repository's modelbot.yaml and permissions.yaml pass once the demo's files exist next to them."""
    for name in ("modelbot.yaml", "permissions.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    settings = yaml.safe_load((tmp_path / "modelbot.yaml").read_text())
    for key in ("ca_cert", "client_cert", "client_key"):
        (tmp_path / settings["serving"]["tls"][key]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / settings["serving"]["tls"][key]).write_text("PEM")
    (tmp_path / settings["serving"]["model_config_file"]).parent.mkdir(parents=True)
    (tmp_path / settings["models"]["fraud_detector"]["base_path"]).mkdir(parents=True)
    env = {
        "MODELBOT_CONFIG": str(tmp_path / "modelbot.yaml"),
        "MODELBOT_PERMISSIONS": str(tmp_path / "permissions.yaml"),
    }
    result = modelbot("check-config", env=env)
    assert result.returncode == 0 and "configuration OK" in result.stdout, result.stderr


def test_schema_prints_a_json_schema_of_modelbot_yaml(tmp_path: Path) -> None:
    """`check-config --schema` prints valid JSON naming the known sections, even with no config file present."""
    result = modelbot("check-config", "--schema", env={"MODELBOT_CONFIG": str(tmp_path / "missing.yaml")})
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert set(schema["properties"]) == {"slack", "serving", "models", "alerts"}
    assert schema["additionalProperties"] is False
    serving = schema["$defs"]["ServingSection"]["properties"]
    assert {"targets", "tls", "model_config_file", "converge_timeout_s", "drift_check_interval_s"} <= set(serving)


def test_a_broken_smoke_test_file_is_named_offline(tmp_path: Path) -> None:
    """A golden request that is not JSON, and an expect file that is missing, are problems of `check-config` itself
    (no fleet needed), each naming the model, the file and what is wrong - not a FAILED rollout later."""
    config = _valid_config(tmp_path)
    (tmp_path / "request.json").write_text("{'inputs': ")
    config["models"]["fraud_detector"]["smoke_test"] = {"request": "request.json", "expect": "missing.json"}
    result = modelbot("check-config", env=_env(tmp_path, config))
    assert result.returncode == 1, result.stdout
    request = tmp_path / "request.json"
    assert f"models.fraud_detector.smoke_test: the smoke test file {request} is not usable: not JSON" in result.stderr
    (tmp_path / "request.json").write_text('{"inputs": {"features": [[0.5]]}}')
    result = modelbot("check-config", env=_env(tmp_path, config))
    missing = tmp_path / "missing.json"
    assert f"models.fraud_detector.smoke_test: the smoke test file {missing} cannot be read" in result.stderr
    assert result.returncode == 1 and "Traceback" not in result.stderr
