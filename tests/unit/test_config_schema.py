"""Strict configuration: every unknown key, duplicate key and wrong type in modelbot.yaml and permissions.yaml is
listed with its dotted path and a did-you-mean, and a rule for a model modelbot.yaml does not know is an error."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config_schema import modelbot_json_schema
from bot.core.errors import ConfigError
from bot.core.rollout import Routing
from bot.policy_file import load_policy, load_policy_file
from bot.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
MODELS = ("fraud_detector",)

CONFIG: dict[str, Any] = {
    "slack": {"audit_channel": "C0AUDIT", "incident_channel": "C0INCIDENT"},
    "serving": {
        "targets": ["localhost:8500", "localhost:8501"],
        "tls": {"ca_cert": "certs/ca.pem", "client_cert": "certs/bot.pem", "client_key": "certs/bot.key"},
        "model_config_file": "serving/models.config",
        "rpc_timeout_s": 10,
    },
    "models": {
        "fraud_detector": {
            "base_path": "/models/fraud_detector",
            "keep_warm": 1,
            "smoke_test": {"request": "smoke/req.json", "expect": "smoke/expect.json"},
            "auto_rollback": {"on_alerts": ["FraudScoreDrift"]},
        }
    },
}
PERMISSIONS: dict[str, Any] = {
    "roles": {"viewer": ["list", "help"], "operator": ["rollback", "promote"], "approver": ["approve", "reject"]},
    "members": {"U01ALICE": ["viewer", "operator"], "U02BOB": ["viewer", "approver"]},
    "models": {"fraud_detector": {"rollback": {"approvals": 1, "approver_roles": ["approver"]}}, "*": {}},
    "approval_ttl": "30m",
    "freeze_windows": [{"models": ["*"], "weekdays": ["fri"], "from": "16:00", "to": "23:59"}],
}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to a parsed file: put `value` at the dotted `path` ("a.b.0.c"; numbers index lists)."""

    def change(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return change


def _problems(load: Callable[[Path], object], base: dict[str, Any], changes: list[Any], tmp_path: Path) -> list[str]:
    """Write `base` with `changes` applied to a file, load it, and return the problems it was refused with."""
    raw = copy.deepcopy(base)
    for change in changes:
        change(raw)
    path = tmp_path / "file.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.source == str(path)
    return list(caught.value.problems)


def _config_problems(tmp_path: Path, *changes: Any) -> list[str]:
    return _problems(load_settings, CONFIG, list(changes), tmp_path)


def _permission_problems(tmp_path: Path, *changes: Any) -> list[str]:
    return _problems(lambda path: load_policy(path, MODELS), PERMISSIONS, list(changes), tmp_path)


def case(path: str, value: Any, problem: str, at: str | None = None) -> Any:
    """A table row: put `value` at `path`; expect `problem` after the dotted path (`at` when it is another one)."""
    where = at or path
    return pytest.param(_set(path, value), f"{where}: {problem}", id=where)


FD = "models.fraud_detector"
AS_DURATION = "must be a duration like 30m, 2h, 90s or 1h30m"
MODELBOT_CASES = [
    # unknown keys at every depth
    case("modles", {}, "unknown key (did you mean 'models'?)"),
    case("slack.audit_chanel", "C1", "unknown key (did you mean 'audit_channel'?)"),
    case("slack.incident_chanel", "C1", "unknown key (did you mean 'incident_channel'?)"),
    case("serving.tagets", ["a:1"], "unknown key (did you mean 'targets'?)"),
    case("serving.converge_timeout", 5, "unknown key (did you mean 'converge_timeout_s'?)"),
    case("serving.model_config_fle", "x", "unknown key (did you mean 'model_config_file'?)"),
    case("serving.tls.server_nme", "tfs", "unknown key (did you mean 'server_name'?)"),
    case("serving.tls.ca_certs", "ca.pem", "unknown key (did you mean 'ca_cert'?)"),
    case(f"{FD}.keep_wram", 2, "unknown key (did you mean 'keep_warm'?)"),
    case(f"{FD}.smoke_test.tolerence", 0.1, "unknown key (did you mean 'tolerance'?)"),
    case(f"{FD}.auto_rollback.cooldwn", "5m", "unknown key (did you mean 'cooldown'?)"),
    case(
        "serving.flavour",
        1,
        "unknown key (expected targets, tls, model_config_file, rpc_timeout_s, converge_timeout_s,"
        " status_poll_interval_s, drift_check_interval_s)",
    ),
    # wrong types and values
    case(f"{FD}.keep_warm", "two", "must be a whole number >= 0, not 'two'"),
    case(f"{FD}.keep_warm", -1, "must be a whole number >= 0, not -1"),
    case(
        "serving.targets",
        "localhost:8500",
        "give a list of host:port or dns:///name:port, not 'localhost:8500' (one entry is written [localhost:8500])",
    ),
    case("serving.targets", [], "give a list of host:port or dns:///name:port, not []"),
    case("serving.targets.1", 8501, "must be a string, not 8501", at="serving.targets[1]"),
    case("serving.rpc_timeout_s", "10", "must be a positive number of seconds, not '10'"),
    case("serving.converge_timeout_s", 0, "must be a positive number of seconds, not 0"),
    case("serving.tls", "certs/ca.pem", "must be a mapping, not 'certs/ca.pem'"),
    case("serving.tls.client_key", None, "client_cert and client_key go together", at="serving.tls"),
    case("slack.audit_channel", 5, "must be a string, not 5"),
    case(f"{FD}.routing", "lables", "must be 'labels' or 'latest', not 'lables' (did you mean 'labels'?)"),
    case(f"{FD}.base_path", "", "must not be empty, not ''"),
    case(f"{FD}.auto_rollback.min_firing", "2 minutes", f"{AS_DURATION}, not '2 minutes'"),
    case(f"{FD}.smoke_test", True, "must be a mapping, not True"),
    case("models", {}, "list at least one model, not {}"),
    case("models", {"fraud_detector": {}}, "required", at=f"{FD}.base_path"),
    case(
        "serving",
        {"targets": ["a:1"]},
        "required (a mapping with ca_cert at least: the admin channel is always TLS)",
        at="serving.tls",
    ),
]


@pytest.mark.parametrize(("change", "problem"), MODELBOT_CASES)
def test_modelbot_yaml_mistake_is_named_with_its_path(tmp_path: Path, change: Any, problem: str) -> None:
    """A mistake at any depth of modelbot.yaml is the one problem reported, with its dotted path and hint."""
    assert _config_problems(tmp_path, change) == [problem]


NOT_A_MODEL = "not a model in modelbot.yaml"
PERMISSION_CASES = [
    case("approval_tl", "30m", "unknown key (did you mean 'approval_ttl'?)"),
    case("roles.viewer", ["list", "lisst"], "unknown action 'lisst' (did you mean 'list'?)"),
    case("roles.viewer", "list", "must be a list of actions, e.g. [approve, freeze]"),
    case("members.U02BOB", ["veiwer"], "unknown role 'veiwer' (did you mean 'viewer'?)"),
    case("deny", {"U03CAROL": ["rollbak"]}, "unknown action 'rollbak' (did you mean 'rollback'?)", at="deny.U03CAROL"),
    case(
        "models.fraud_detecter",
        {},
        f"{NOT_A_MODEL}, so this rule would never apply (did you mean 'fraud_detector'?)",
    ),
    case(f"{FD}.rollbak", {}, "unknown action (did you mean 'rollback'?)"),
    case(f"{FD}.rollback.aprovals", 2, "unknown key (did you mean 'approvals'?)"),
    case(f"{FD}.rollback.approver_role", ["approver"], "unknown key (did you mean 'approver_roles'?)"),
    case(f"{FD}.rollback.approvals", "one", "must be a whole number >= 0, not 'one'"),
    case(f"{FD}.rollback", 1, "must be a mapping like {approvals: 1, approver_roles: [approver]}"),
    case("approval_ttl", 30, "30 is not a duration like 30m, 2h, 90s or 1h30m"),
    case("retro_review_within", "1 day", f"{AS_DURATION}, not '1 day'"),
    case("retro_review_within", "0m", "must be longer than zero"),
    case("freeze_windows.0.reasn", "x", "unknown key (did you mean 'reason'?)", at="freeze_windows[0].reasn"),
    case(
        "freeze_windows.0.weekdays",
        ["frii"],
        "must be 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' or 'sun', not 'frii' (did you mean 'fri'?)",
        at="freeze_windows[0].weekdays[0]",
    ),
    case(
        "freeze_windows.0.from",
        960,
        'write the time in quotes, like "16:00" (unquoted, YAML reads it as the number 960)',
        at="freeze_windows[0].from",
    ),
    case(
        "freeze_windows.0.tz",
        "Mars/Olympus",
        "unknown time zone 'Mars/Olympus'; use an IANA name like UTC or Europe/Paris",
        at="freeze_windows[0].tz",
    ),
    case(
        "freeze_windows.0.models",
        ["fraud_detecter"],
        f"'fraud_detecter' is {NOT_A_MODEL} (did you mean 'fraud_detector'?)",
        at="freeze_windows[0].models",
    ),
]


@pytest.mark.parametrize(("change", "problem"), PERMISSION_CASES)
def test_permissions_yaml_mistake_is_named_with_its_path(tmp_path: Path, change: Any, problem: str) -> None:
    """A mistake at any depth of permissions.yaml is the one problem reported, with its dotted path and hint."""
    assert _permission_problems(tmp_path, change) == [problem]


def test_every_modelbot_yaml_problem_is_listed_at_once(tmp_path: Path) -> None:
    """Typos and wrong types in several sections are all reported together, none hiding another."""
    problems = _config_problems(
        tmp_path,
        _set("slack.audit_chanel", "C1"),
        _set("serving.tls.server_nme", "tfs"),
        _set("serving.rpc_timeout_s", -1),
        _set("models.fraud_detector.keep_warm", "two"),
        _set("models.fraud_detector.keep_wram", 2),
    )
    assert sorted(problems) == [
        "models.fraud_detector.keep_warm: must be a whole number >= 0, not 'two'",
        "models.fraud_detector.keep_wram: unknown key (did you mean 'keep_warm'?)",
        "serving.rpc_timeout_s: must be a positive number of seconds, not -1",
        "serving.tls.server_nme: unknown key (did you mean 'server_name'?)",
        "slack.audit_chanel: unknown key (did you mean 'audit_channel'?)",
    ]


def test_every_permissions_yaml_problem_is_listed_once(tmp_path: Path) -> None:
    """Shape and meaning problems of permissions.yaml are listed together, a wrong type only once."""
    problems = _permission_problems(
        tmp_path,
        _set("admins", ["U01ALICE"]),
        _set("members.U02BOB", "viewer"),
        _set("models.fraud_detector.rollback.quorum", 2),
        _set("models.fraud_detecter", {"promote": {"approvals": 1}}),
        _set("approval_ttl", "soon"),
    )
    assert problems == [
        "models.fraud_detector.rollback.quorum: unknown key (expected approvals, approver_roles)",
        "admins: unknown key (expected roles, members, deny, models, approval_ttl, retro_review_within,"
        " freeze_windows)",
        "members.U02BOB: must be a list of roles, e.g. [approver, operator]",
        "approval_ttl: 'soon' is not a duration like 30m, 2h, 90s or 1h30m",
        "models.fraud_detecter: not a model in modelbot.yaml, so this rule would never apply"
        " (did you mean 'fraud_detector'?)",
    ]


def test_duplicate_keys_at_depth_are_listed_with_schema_problems(tmp_path: Path) -> None:
    """A key written twice deep inside modelbot.yaml is reported with its path and lines, next to a typo."""
    path = tmp_path / "modelbot.yaml"
    path.write_text(
        "serving:\n"
        "  targets: [localhost:8500]\n"
        "  tls:\n"
        "    ca_cert: ca.pem\n"
        "    ca_cert: other.pem\n"
        "models:\n"
        "  fraud_detector:\n"
        "    base_path: /m\n"
        "    keep_warm: 1\n"
        "    keep_warm: 2\n"
        "slack: {audit_chanel: C1}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems == (
        "serving.tls.ca_cert: duplicate key on line 5 (first on line 4); YAML keeps only the last,"
        " so merge the two entries",
        "models.fraud_detector.keep_warm: duplicate key on line 10 (first on line 9); YAML keeps only the last,"
        " so merge the two entries",
        "slack.audit_chanel: unknown key (did you mean 'audit_channel'?)",
    )


def test_duplicate_keys_alone_refuse_an_otherwise_valid_file(tmp_path: Path) -> None:
    """Duplicates are problems on their own (in both files), even when the last value would be valid."""
    config = tmp_path / "modelbot.yaml"
    config.write_text("serving: {targets: [a:1], tls: {ca_cert: ca.pem}}\nmodels: {m: {base_path: /m}}\nmodels: {}\n")
    with pytest.raises(ConfigError, match=r"^.*: models: duplicate key on line 3 \(first on line 2\)"):
        load_settings(config)
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text(
        "roles: {approver: [approve]}\nmembers: {U02BOB: [approver]}\n"
        "models:\n  m:\n    rollback:\n      approvals: 1\n      approvals: 2\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_policy(permissions, ["m"])
    assert caught.value.problems == (
        "models.m.rollback.approvals: duplicate key on line 7 (first on line 6); YAML keeps only the last,"
        " so merge the two entries",
    )


def test_demo_files_in_the_repository_pass() -> None:
    """The repository's demo modelbot.yaml and permissions.yaml load, including the cross-check of model names."""
    settings = load_settings(REPO / "modelbot.yaml")
    policy = load_policy(REPO / "permissions.yaml", settings.models)
    assert set(settings.models) == {"fraud_detector"} and "fraud_detector" in policy.rules


def test_design_examples_are_accepted_and_kept(tmp_path: Path) -> None:
    """Files written from DESIGN.md §2 (approval channels, drift checks, smoke tests, auto-rollback, freeze windows)
    load, and their values are kept even though the bot does not act on them yet."""
    config = tmp_path / "modelbot.yaml"
    config.write_text(
        "slack: {audit_channel: C0AUDIT, incident_channel: C0INCIDENT, approval_channel: C0APPROVE}\n"
        "serving:\n"
        "  targets: [localhost:8500, localhost:8501]\n"
        "  tls: {ca_cert: certs/ca.pem, client_cert: certs/bot.pem, client_key: certs/bot.key, server_name: tfs}\n"
        "  model_config_file: serving/models.config\n"
        "  rpc_timeout_s: 10\n"
        "  converge_timeout_s: 300\n"
        "  drift_check_interval_s: 60\n"
        "models:\n"
        "  fraud_detector:\n"
        "    base_path: /models/fraud_detector\n"
        "    routing: labels\n"
        "    keep_warm: 1\n"
        "    incident_channel: C0FRAUDINC\n"
        "    approval_channel: C0FRAUDAPP\n"
        "    smoke_test: {request: smoke/fraud_request.json, expect: smoke/fraud_expect.json, tolerance: 1e-4}\n"
        "    auto_rollback: {on_alerts: [FraudScoreDrift], to: last_known_good, min_firing: 2m, cooldown: 15m,"
        " max_per_hour: 1}\n"
    )
    settings = load_settings(config)
    model = settings.models["fraud_detector"]
    assert settings.slack.approval_channel == "C0APPROVE" and settings.serving.drift_check_interval_s == 60.0
    assert model.approval_channel == "C0FRAUDAPP" and model.routing is Routing.LABELS
    assert model.smoke_test is not None and model.smoke_test.tolerance == 1e-4
    assert model.smoke_test.request == tmp_path / "smoke" / "fraud_request.json"
    assert model.auto_rollback is not None and model.auto_rollback.min_firing == timedelta(minutes=2)
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text(
        (REPO / "permissions.yaml").read_text() + "retro_review_within: 24h\n"
        "freeze_windows:\n"
        '  - {models: ["*"], weekdays: [fri], from: "16:00", to: "23:59", tz: UTC, reason: "no Friday evenings"}\n'
    )
    policy_file = load_policy_file(permissions, settings.models)
    assert policy_file.retro_review_within == timedelta(hours=24)
    (window,) = policy_file.freeze_windows
    assert (window.weekdays, window.start, window.end, window.reason) == (
        ("fri",),
        time(16, 0),
        time(23, 59),
        "no Friday evenings",
    )


def test_existing_semantics_are_kept(tmp_path: Path) -> None:
    """Defaults and relative paths (resolved against the file's own directory) are what they were before."""
    config = tmp_path / "conf" / "modelbot.yaml"
    config.parent.mkdir()
    config.write_text("serving: {targets: [a:1], tls: {ca_cert: ca.pem}}\nmodels: {m: {base_path: models/m}}\n")
    settings = load_settings(config)
    serving, model = settings.serving, settings.models["m"]
    assert serving.tls.ca_cert == config.parent / "ca.pem" and serving.tls.client_cert is None
    assert (serving.rpc_timeout_s, serving.converge_timeout_s, serving.status_poll_interval_s) == (10.0, 300.0, 0.05)
    assert model.base_path == str((config.parent / "models" / "m").resolve())
    assert (model.routing, model.keep_warm, model.label, model.incident_channel) == (Routing.LABELS, 1, "stable", None)
    assert settings.slack.audit_channel is None and model.smoke_test is None


def test_cross_check_runs_only_when_the_models_are_known(tmp_path: Path) -> None:
    """Without the models of modelbot.yaml, a rule for any model name is accepted (only the caller can tell)."""
    path = tmp_path / "permissions.yaml"
    path.write_text(yaml.safe_dump({**PERMISSIONS, "models": {"other_model": {"rollback": {"approvals": 1}}}}))
    assert "other_model" in load_policy(path).rules
    with pytest.raises(ConfigError, match=r"models\.other_model: not a model in modelbot\.yaml"):
        load_policy(path, MODELS)


def test_json_schema_describes_modelbot_yaml() -> None:
    """The JSON Schema is plain JSON naming the four sections and forbidding unknown keys at every level."""
    schema = json.loads(json.dumps(modelbot_json_schema()))
    assert set(schema["properties"]) == {"slack", "serving", "models", "alerts"}
    assert schema["required"] == ["serving", "models"]
    sections = [schema, *schema["$defs"].values()]
    assert {"SlackSection", "ServingSection", "TlsSection", "ModelSection"} <= set(schema["$defs"])
    assert all(section["additionalProperties"] is False for section in sections)
