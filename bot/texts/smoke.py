"""Sentences of the golden-request smoke test (`/model smoke`, and a rollout's pre-switch check)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bot.core.smoke import SmokeVerdict


def no_smoke_test(model: str) -> str:
    return (
        f"{model} has no smoke_test in modelbot.yaml; add one (request, optional expect, tolerance, timeout_s) to"
        " have every rollout check the target before any label moves"
    )


def golden_unreadable(path: Path, why: str) -> str:
    return f"the smoke test file {path} cannot be read ({why}); fix it or the model's smoke_test in modelbot.yaml"


def golden_invalid(path: Path, why: str) -> str:
    return f"the smoke test file {path} is not usable: {why}"


def smoke_report(model: str, version: int, source: Path, checks_values: bool, verdicts: Sequence[SmokeVerdict]) -> str:
    """The reply of `/model smoke MODEL VERSION`: a verdict line, then what every replica answered."""
    ran = [v for v in verdicts if v.loaded]
    failed = [v for v in ran if not v.ok]
    what = "expected outputs" if checks_values else "the signature's output keys, dtypes and shapes"
    if not ran:
        head = f"Smoke test of {model} v{version} NOT RUN: v{version} is not loaded on any replica (nothing was loaded)"
    elif failed:
        head = f"Smoke test of {model} v{version} FAILED on {len(failed)} of {len(ran)} replicas that serve it"
    else:
        head = f"Smoke test of {model} v{version} PASSED on all {len(ran)} replicas that serve it"
    lines = [f"{head} (golden request {source.name}, checked against {what}; read-only)."]
    for v in verdicts:
        mark = "ok  " if v.ok else ("--  " if not v.loaded else "FAIL")
        lines.append(f"  {mark} {v.replica}: {v.detail}")
    return "\n".join(lines)
