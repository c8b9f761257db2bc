"""modelbot.yaml's alert options: `auto_rollback.min_stable` and `alerts.pagerduty` (model field and mapping)."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.errors import ConfigError
from bot.settings import parse_settings

BASE: dict[str, Any] = {
    "serving": {"targets": ["localhost:8500"], "tls": {"ca_cert": "ca.pem"}},
    "models": {"fraud_detector": {"base_path": "/models/fraud_detector"}},
}


def settings(**top: Any) -> Any:
    raw = copy.deepcopy(BASE)
    raw.update(top)
    return parse_settings(raw, Path("/etc/modelbot/modelbot.yaml"))


def test_defaults_without_alert_options() -> None:
    """No alerts section: PagerDuty names models by service.summary; auto_rollback's min_stable defaults to 30m."""
    plain = settings()
    assert plain.alerts.pagerduty.model_field == "service.summary" and plain.alerts.pagerduty.models == {}
    opted = settings(models={"fraud_detector": {"base_path": "/m", "auto_rollback": {"on_alerts": ["X"]}}})
    auto = opted.models["fraud_detector"].auto_rollback
    assert auto is not None and auto.min_stable == timedelta(minutes=30)


def test_pagerduty_field_and_mapping_are_read() -> None:
    """A custom dotted field and a mapping from its values to configured models."""
    loaded = settings(alerts={"pagerduty": {"model_field": "title", "models": {"Fraud API": "fraud_detector"}}})
    assert loaded.alerts.pagerduty.model_field == "title"
    assert loaded.alerts.pagerduty.models == {"Fraud API": "fraud_detector"}


@pytest.mark.parametrize(
    ("alerts", "problem"),
    [
        ({"pagerduty": {"models": {"Fraud API": "fraud_detectr"}}}, "'fraud_detectr' is not a model"),
        ({"pagerduty": {"model_field": "service..summary"}}, "alerts.pagerduty.model_field"),
        ({"pagerduty": {"model_feild": "title"}}, "did you mean 'model_field'"),
    ],
)
def test_bad_pagerduty_options_are_refused(alerts: dict[str, Any], problem: str) -> None:
    """A mapping to an unknown model, a malformed field path or a misspelt key is a config error naming it."""
    with pytest.raises(ConfigError) as caught:
        settings(alerts=alerts)
    assert problem in str(caught.value)
