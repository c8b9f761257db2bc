"""`modelbot register`: record registry metadata (metrics, note) for a model version, with an audit row."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.core.errors import UsageError
from bot.settings import load_settings
from bot.store.database import Database

USAGE = "modelbot register MODEL VERSION [--metric KEY=VALUE]... [--note TEXT]"


def parse_metrics(pairs: Sequence[str]) -> dict[str, float | str]:
    metrics: dict[str, float | str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--metric takes KEY=VALUE, got {pair!r}", USAGE)
        try:
            metrics[key.strip()] = float(value)
        except ValueError:
            metrics[key.strip()] = value.strip()
    return metrics


def register(model: str, version: int, metric_pairs: Sequence[str], *, note: str, actor: str, db_url: str) -> int:
    """Needs only the config and the database: CI/CD can run it without fleet credentials."""
    metrics = parse_metrics(metric_pairs)
    settings = load_settings()
    if model not in settings.models:
        raise UsageError(f"unknown model {model!r}; known: {', '.join(sorted(settings.models))}", USAGE)
    if version <= 0:
        raise UsageError("VERSION must be a positive number", USAGE)
    db = Database(db_url, audit_channel=settings.slack.audit_channel)
    try:
        db.upgrade()
        now = datetime.now(UTC)
        with db.uow() as uow:
            uow.registry.record(model, version, metrics, note, actor, now)
            detail = {"version": version, "metrics": metrics, "note": note}
            uow.audit.append(
                at=now, actor=actor, action="register", outcome="recorded", request_id=None, model=model, detail=detail
            )
            uow.commit()
    finally:
        db.dispose()
    print(f"registered {model} v{version}: " + (", ".join(f"{k}={v}" for k, v in metrics.items()) or "no metrics"))
    return 0
