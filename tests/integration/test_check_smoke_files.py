"""`check-config --online`, smoke tests: each model's golden files against the signatures read from the demo
SavedModels on disk (v1-v3 take float[None, 20], v4 float[None, 32]) - what a rollout would fail on, found first."""

from __future__ import annotations

import json
from pathlib import Path

from bot.checks import check_smoke_tests
from bot.devstack.smoke_files import write_golden_files
from bot.settings import ModelSettings, SmokeTest


def _models(base_path: Path, request: Path, expect: Path | None) -> dict[str, ModelSettings]:
    smoke = SmokeTest(request=request, expect=expect)
    return {"fraud_detector": ModelSettings("fraud_detector", str(base_path), smoke_test=smoke)}


def test_the_demo_golden_files_fit_v1_to_v3_and_v4_is_named(demo_models: Path, tmp_path: Path) -> None:
    """The demo files pass; v4 (32 features, no expectation in the file) is named on the OK line with its shape."""
    request, expect = write_golden_files(tmp_path)
    found = check_smoke_tests(_models(demo_models, request, expect))
    assert found.problems == []
    assert found.ok == [
        "smoke test OK: fraud_detector: the golden request fits v3, v2, v1; a rollout to these would fail it:"
        " v4 (the golden request's input 'features' has shape [2, 20]; v4 takes float[None, 32])"
    ]


def test_an_expectation_for_a_version_that_cannot_take_the_request_is_a_problem(
    demo_models: Path, tmp_path: Path
) -> None:
    """The expect file names v4 (the file's author means to roll out to it) and an output v2 does not have: both
    are problems, with the version and the reason."""
    request, expect = write_golden_files(tmp_path)
    data = json.loads(expect.read_text())
    data["versions"]["4"] = data["versions"]["3"]
    data["versions"]["2"] = {"outputs": {"probability": [[0.5], [0.5]]}}
    expect.write_text(json.dumps(data))
    found = check_smoke_tests(_models(demo_models, request, expect))
    assert found.problems == [
        "models.fraud_detector.smoke_test: v4: the golden request's input 'features' has shape [2, 20];"
        " v4 takes float[None, 32]",
        "models.fraud_detector.smoke_test: v2: the expected output 'probability' is not one of v2's outputs (score)",
    ]
    assert found.ok == ["smoke test OK: fraud_detector: the golden request fits v3, v1"]


def test_a_request_that_fits_no_version_is_a_problem(demo_models: Path, tmp_path: Path) -> None:
    """A request for an input the model does not have fits nothing on disk: one problem naming each version's reason."""
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"inputs": {"amount": [[1.0]]}}))
    found = check_smoke_tests(_models(demo_models, request, None))
    (problem,) = found.problems
    assert problem.startswith("models.fraud_detector.smoke_test: the golden request fits no version on disk: v4 (")
    assert "v1 (the golden request's input 'amount' is not one of v1's inputs (features))" in problem
    assert found.ok == []
