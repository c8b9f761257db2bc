"""Runtime settings from modelbot.yaml, validated once at start with every problem listed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.core.errors import ConfigError
from bot.core.rollout import Routing

DEFAULT_CONFIG = "modelbot.yaml"
DEFAULT_PERMISSIONS = "permissions.yaml"
DEFAULT_DATABASE_URL = "sqlite:///modelbot.db"


@dataclass(frozen=True)
class TlsSettings:
    ca_cert: Path
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None  # TLS name override when targets are IPs or pod addresses


@dataclass(frozen=True)
class ServingSettings:
    targets: tuple[str, ...]  # "host:port" or "dns:///name:port" (every resolved address is a replica)
    tls: TlsSettings
    model_config_file: Path | None = None
    rpc_timeout_s: float = 10.0
    converge_timeout_s: float = 300.0
    status_poll_interval_s: float = 0.05


@dataclass(frozen=True)
class ModelSettings:
    name: str
    base_path: str
    routing: Routing = Routing.LABELS
    keep_warm: int = 1
    incident_channel: str | None = None
    label: str = "stable"  # the label a rollback moves (routing: labels)


@dataclass(frozen=True)
class SlackChannels:
    audit_channel: str | None = None
    incident_channel: str | None = None


@dataclass(frozen=True)
class Settings:
    serving: ServingSettings
    models: Mapping[str, ModelSettings]
    slack: SlackChannels = field(default_factory=SlackChannels)
    source: Path = Path(DEFAULT_CONFIG)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate modelbot.yaml; relative paths are relative to the file's own directory."""
    source = Path(path or os.environ.get("MODELBOT_CONFIG", DEFAULT_CONFIG))
    try:
        raw = yaml.safe_load(source.read_text())
    except FileNotFoundError:
        raise ConfigError(str(source), ["file not found"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(source), [f"not valid YAML: {exc}"]) from None
    return parse_settings(raw, source)


def parse_settings(raw: Any, source: Path) -> Settings:
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise ConfigError(str(source), ["top level must be a mapping"])
    unknown = set(raw) - {"slack", "serving", "models"}
    problems += [f"unknown section {k!r}" for k in sorted(unknown)]
    base_dir = source.parent
    serving = _serving(raw.get("serving"), base_dir, problems)
    models = _models(raw.get("models"), base_dir, problems)
    slack_raw = raw.get("slack") or {}
    if not isinstance(slack_raw, Mapping):
        problems.append("slack: must be a mapping")
        slack_raw = {}
    slack = SlackChannels(slack_raw.get("audit_channel"), slack_raw.get("incident_channel"))
    if problems or serving is None:
        raise ConfigError(str(source), problems or ["serving: missing"])
    return Settings(serving=serving, models=models, slack=slack, source=source)


def _path(base_dir: Path, value: Any) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base_dir / p


def _serving(raw: Any, base_dir: Path, problems: list[str]) -> ServingSettings | None:
    if not isinstance(raw, Mapping):
        problems.append("serving: missing or not a mapping")
        return None
    targets = raw.get("targets")
    if isinstance(targets, str):
        targets = [targets]
    if not targets or not all(isinstance(t, str) and t for t in targets):
        problems.append("serving.targets: give a list of host:port or dns:///name:port")
        targets = []
    tls_raw = raw.get("tls")
    tls = None
    if not isinstance(tls_raw, Mapping) or not tls_raw.get("ca_cert"):
        problems.append("serving.tls: ca_cert is required (the admin channel is always TLS)")
    else:
        cert, key = tls_raw.get("client_cert"), tls_raw.get("client_key")
        if bool(cert) != bool(key):
            problems.append("serving.tls: client_cert and client_key go together")
        tls = TlsSettings(
            ca_cert=_path(base_dir, tls_raw["ca_cert"]),
            client_cert=_path(base_dir, cert) if cert else None,
            client_key=_path(base_dir, key) if key else None,
            server_name=tls_raw.get("server_name"),
        )
    numbers = {}
    for key_name, default in (("rpc_timeout_s", 10.0), ("converge_timeout_s", 300.0), ("status_poll_interval_s", 0.05)):
        value = raw.get(key_name, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            problems.append(f"serving.{key_name}: must be a positive number of seconds")
            value = default
        numbers[key_name] = float(value)
    mcf = raw.get("model_config_file")
    if tls is None:
        return None
    return ServingSettings(
        targets=tuple(targets),
        tls=tls,
        model_config_file=_path(base_dir, mcf) if mcf else None,
        **numbers,
    )


def _models(raw: Any, base_dir: Path, problems: list[str]) -> dict[str, ModelSettings]:
    if not isinstance(raw, Mapping) or not raw:
        problems.append("models: list at least one model")
        return {}
    models = {}
    for name, spec in raw.items():
        where = f"models.{name}"
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        base_path = str(spec.get("base_path") or "")
        if not base_path:
            problems.append(f"{where}.base_path: required")
        elif "://" not in base_path:
            # TF Serving rejects relative base paths (tfserving.md §1.4 step 4): resolve them here.
            base_path = str(_path(base_dir, base_path).resolve())
        try:
            routing = Routing(spec.get("routing", "labels"))
        except ValueError:
            problems.append(f"{where}.routing: must be 'labels' or 'latest'")
            routing = Routing.LABELS
        keep_warm = spec.get("keep_warm", 1)
        if not isinstance(keep_warm, int) or isinstance(keep_warm, bool) or keep_warm < 0:
            problems.append(f"{where}.keep_warm: must be a whole number >= 0")
            keep_warm = 1
        unknown = set(spec) - {"base_path", "routing", "keep_warm", "incident_channel", "label"}
        problems += [f"{where}: unknown key {k!r}" for k in sorted(unknown)]
        models[str(name)] = ModelSettings(
            name=str(name),
            base_path=base_path,
            routing=routing,
            keep_warm=keep_warm,
            incident_channel=spec.get("incident_channel"),
            label=str(spec.get("label", "stable")),
        )
    return models
