"""`modelbot check-config`: validate both YAML files (and reach the fleet with --online)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bot.core.errors import ConfigError, ModelbotError
from bot.policy_file import load_policy
from bot.serving.fleet import GrpcFleet
from bot.settings import DEFAULT_PERMISSIONS, Settings, load_settings


def check_config(online: bool = False) -> int:
    """Print every problem found; exit status 1 if there is any."""
    problems: list[str] = []
    settings = _try(load_settings, problems)
    policy_path = Path(os.environ.get("MODELBOT_PERMISSIONS", DEFAULT_PERMISSIONS))
    policy = _try(lambda: load_policy(policy_path), problems)
    if isinstance(settings, Settings):
        problems += _file_problems(settings)
        if policy is not None:
            unknown = sorted(set(getattr(policy, "models", {})) - {"*"} - set(settings.models))
            problems += [f"{policy_path}: models.{name} is not a model in {settings.source}" for name in unknown]
        if online and not problems:
            problems += _online_problems(settings)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found.", file=sys.stderr)
        return 1
    print("configuration OK" + (" (fleet reachable)" if online else ""))
    return 0


def _try(load, problems: list[str]):  # type: ignore[no-untyped-def]
    try:
        return load()
    except ConfigError as exc:
        problems += [f"{exc.source}: {p}" for p in exc.problems]
        return None


def _file_problems(settings: Settings) -> list[str]:
    tls = settings.serving.tls
    problems = []
    for name, path in (("ca_cert", tls.ca_cert), ("client_cert", tls.client_cert), ("client_key", tls.client_key)):
        if path is not None and not path.is_file():
            problems.append(f"serving.tls.{name}: {path} does not exist")
    mcf = settings.serving.model_config_file
    if mcf is not None and not mcf.parent.is_dir():
        problems.append(f"serving.model_config_file: directory {mcf.parent} does not exist")
    for model in settings.models.values():
        if "://" not in model.base_path and not Path(model.base_path).is_dir():
            problems.append(f"models.{model.name}.base_path: {model.base_path} does not exist")
    return problems


def _online_problems(settings: Settings) -> list[str]:
    fleet = GrpcFleet(settings.serving)
    problems = []
    try:
        for model in settings.models:
            for status in fleet.model_status(model):
                if status.error and status.error_code != "NOT_FOUND":
                    problems.append(f"replica {status.replica}: {status.error}")
    except ModelbotError as exc:
        problems.append(str(exc))
    finally:
        fleet.close()
    return sorted(set(problems))
