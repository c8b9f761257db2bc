"""The golden-request smoke test: the model's files as a GoldenRequest (every rollout carries it in its plan, see
bot/usecases/execution.py), and `/model smoke MODEL VERSION`, which runs it read-only against any loaded version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.core import commands
from bot.core.errors import NotFound, PreflightFailed
from bot.core.smoke import GoldenFileError, GoldenRequest, parse_expect, parse_request
from bot.settings import SmokeTest
from bot.texts import smoke as texts
from bot.usecases.context import Context, Deps, Reply


def golden_request(deps: Deps, model: str) -> GoldenRequest | None:
    """The model's smoke test as configured (None when it has none); PreflightFailed names a bad file."""
    settings = deps.settings.models.get(model)
    if settings is None or settings.smoke_test is None:
        return None
    return load_golden(settings.smoke_test)


def load_golden(smoke: SmokeTest) -> GoldenRequest:
    """Read and check a smoke_test's files (also `check-config`); PreflightFailed names a bad file and why."""
    inputs, signature_name = _parsed(smoke.request, parse_request)
    expect = _parsed(smoke.expect, parse_expect) if smoke.expect is not None else None
    return GoldenRequest(
        inputs=inputs,
        expect=expect,
        tolerance=smoke.tolerance,
        timeout_s=smoke.timeout_s,
        signature_name=signature_name,
        source=str(smoke.request),
    )


def smoke(deps: Deps, ctx: Context, cmd: commands.Smoke) -> Reply:
    """Predict the golden request against `cmd.version` on every replica; loads nothing, changes nothing."""
    settings = deps.settings.models.get(cmd.model_name)
    if settings is None:
        raise NotFound(f"unknown model {cmd.model_name!r}")
    golden = golden_request(deps, cmd.model_name)
    if golden is None:
        raise NotFound(texts.no_smoke_test(cmd.model_name))
    signature = deps.catalog.signature(settings.base_path, cmd.version)  # encodes the inputs without a call
    verdicts = deps.fleet.smoke_test(cmd.model_name, cmd.version, golden, signature)
    text = texts.smoke_report(
        cmd.model_name, cmd.version, Path(golden.source), golden.expected_for(cmd.version) is not None, verdicts
    )
    ran = [v for v in verdicts if v.loaded]
    return Reply(text, ok=bool(ran) and all(v.ok for v in ran))


def _parsed(path: Path, parse: Any) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PreflightFailed(texts.golden_unreadable(path, exc.strerror or str(exc))) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PreflightFailed(texts.golden_invalid(path, f"not JSON: {exc}")) from None
    try:
        return parse(data)
    except GoldenFileError as exc:
        raise PreflightFailed(texts.golden_invalid(path, str(exc))) from None
