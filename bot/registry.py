"""`modelbot register`: record registry metadata (metrics, note) for a model version, with an audit row."""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.errors import UsageError
from bot.wiring import build_bot


def parse_metrics(pairs: Sequence[str]) -> dict[str, float | str]:
    metrics: dict[str, float | str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--metric takes KEY=VALUE, got {pair!r}", "modelbot register MODEL VERSION --metric auc=0.91")
        try:
            metrics[key.strip()] = float(value)
        except ValueError:
            metrics[key.strip()] = value.strip()
    return metrics


def register(model: str, version: int, metric_pairs: Sequence[str], note: str, actor: str) -> int:
    metrics = parse_metrics(metric_pairs)
    bot = build_bot(start=False)
    try:
        if model not in bot.settings.models:
            raise UsageError(f"unknown model {model!r}; known: {', '.join(sorted(bot.settings.models))}")
        if version <= 0:
            raise UsageError("VERSION must be a positive number")
        now = bot.service.deps.clock()
        with bot.db.uow() as uow:
            uow.registry.record(model, version, metrics, note, actor, now)
            uow.audit.append(at=now, actor=actor, action="register", outcome="recorded", request_id=None,
                             model=model, detail={"version": version, "metrics": metrics, "note": note})
            uow.commit()
        print(f"registered {model} v{version}: " + (", ".join(f"{k}={v}" for k, v in metrics.items()) or "no metrics"))
        return 0
    finally:
        bot.close()
