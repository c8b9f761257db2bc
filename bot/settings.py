"""Runtime settings from modelbot.yaml, validated once at start with every problem listed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config_schema import ModelbotFile, ModelSection, read_yaml, schema_problems
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
    drift_check_interval_s: float = 60.0  # serve compares every replica with the desired state this often


@dataclass(frozen=True)
class SmokeTest:
    """A model's golden request (DESIGN §4), sent to the target before any label moves (bot/core/smoke.py)."""

    request: Path
    expect: Path | None = None  # None: check only the signature's output keys, dtypes and shapes
    tolerance: float = 1e-4
    timeout_s: float = 2.0


@dataclass(frozen=True)
class AutoRollback:
    """Roll back on these alerts without a human (DESIGN §2; bot/usecases/auto_rollback.py)."""

    on_alerts: tuple[str, ...]
    to: str = "last_known_good"
    min_firing: timedelta = timedelta(0)
    cooldown: timedelta = timedelta(minutes=15)
    max_per_hour: int = 1
    min_stable: timedelta = timedelta(minutes=30)  # last_known_good: stable at least this long (bot's records)


@dataclass(frozen=True)
class ModelSettings:
    name: str
    base_path: str
    routing: Routing = Routing.LABELS
    keep_warm: int = 1
    incident_channel: str | None = None
    label: str = "stable"  # the label a rollback moves (routing: labels)
    approval_channel: str | None = None  # where its approval cards go (bot/usecases/approval_routing.py)
    notify_approvers: str | None = None  # "dm": each approver gets a DM with the card; "none"; None: the default
    smoke_test: SmokeTest | None = None
    auto_rollback: AutoRollback | None = None


@dataclass(frozen=True)
class SlackChannels:
    audit_channel: str | None = None
    incident_channel: str | None = None
    approval_channel: str | None = None  # the default for models without their own
    notify_approvers: str | None = None  # the default for models without their own ("dm" or "none")


@dataclass(frozen=True)
class PagerDutySettings:
    """PagerDuty V3 webhooks (POST /pagerduty): which field of the incident names the model."""

    model_field: str = "service.summary"  # dotted path in event.data
    models: Mapping[str, str] = field(default_factory=dict)  # that field's value -> model, when they differ


@dataclass(frozen=True)
class AlertSettings:
    pagerduty: PagerDutySettings = field(default_factory=PagerDutySettings)


@dataclass(frozen=True)
class Settings:
    serving: ServingSettings
    models: Mapping[str, ModelSettings]
    slack: SlackChannels = field(default_factory=SlackChannels)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    source: Path = Path(DEFAULT_CONFIG)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate modelbot.yaml; relative paths are relative to the file's own directory."""
    source = Path(path or os.environ.get("MODELBOT_CONFIG", DEFAULT_CONFIG))
    raw, duplicates = read_yaml(source)
    return parse_settings(raw, source, duplicates)


def parse_settings(raw: Any, source: Path, duplicates: Sequence[str] = ()) -> Settings:
    """Validate the parsed file against the strict schema (bot/config_schema.py); ConfigError lists every problem."""
    if raw is None:
        raise ConfigError(str(source), [*duplicates, "the file is empty: give serving: and models: at least"])
    try:
        checked = ModelbotFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(str(source), [*duplicates, *schema_problems(exc, ModelbotFile)]) from None
    if duplicates:
        raise ConfigError(str(source), list(duplicates))
    base_dir = source.parent
    serving, tls = checked.serving, checked.serving.tls
    return Settings(
        serving=ServingSettings(
            targets=tuple(serving.targets),
            tls=TlsSettings(
                ca_cert=_path(base_dir, tls.ca_cert),
                client_cert=_path(base_dir, tls.client_cert) if tls.client_cert else None,
                client_key=_path(base_dir, tls.client_key) if tls.client_key else None,
                server_name=tls.server_name,
            ),
            model_config_file=_path(base_dir, serving.model_config_file) if serving.model_config_file else None,
            rpc_timeout_s=float(serving.rpc_timeout_s),
            converge_timeout_s=float(serving.converge_timeout_s),
            status_poll_interval_s=float(serving.status_poll_interval_s),
            drift_check_interval_s=float(serving.drift_check_interval_s),
        ),
        models={name: _model(name, spec, base_dir) for name, spec in checked.models.items()},
        slack=SlackChannels(**checked.slack.model_dump()) if checked.slack else SlackChannels(),
        alerts=_alerts(checked, source),
        source=source,
    )


def _alerts(checked: ModelbotFile, source: Path) -> AlertSettings:
    pagerduty = checked.alerts.pagerduty if checked.alerts else None
    if pagerduty is None:
        return AlertSettings()
    unknown = [
        f"alerts.pagerduty.models.{key}: {model!r} is not a model in models:"
        for key, model in pagerduty.models.items()
        if model not in checked.models
    ]
    if unknown:
        raise ConfigError(str(source), unknown)
    return AlertSettings(PagerDutySettings(pagerduty.model_field, dict(pagerduty.models)))


def _path(base_dir: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base_dir / p


def _model(name: str, spec: ModelSection, base_dir: Path) -> ModelSettings:
    base_path = spec.base_path
    if "://" not in base_path:
        # TF Serving rejects relative base paths (tfserving.md §1.4 step 4): resolve them here.
        base_path = str(_path(base_dir, base_path).resolve())
    smoke, auto = spec.smoke_test, spec.auto_rollback
    return ModelSettings(
        name=name,
        base_path=base_path,
        routing=Routing(spec.routing),
        keep_warm=spec.keep_warm,
        incident_channel=spec.incident_channel,
        label=spec.label,
        approval_channel=spec.approval_channel,
        notify_approvers=spec.notify_approvers,
        smoke_test=SmokeTest(
            _path(base_dir, smoke.request),
            _path(base_dir, smoke.expect) if smoke.expect else None,
            smoke.tolerance,
            float(smoke.timeout_s),
        )
        if smoke
        else None,
        auto_rollback=AutoRollback(
            tuple(auto.on_alerts), auto.to, auto.min_firing, auto.cooldown, auto.max_per_hour, auto.min_stable
        )
        if auto
        else None,
    )
