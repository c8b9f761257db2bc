"""Golden files for the demo model's smoke test, with expected outputs that follow from the emulator's formula.

The emulator answers Predict with sigmoid(mean(row) + version / 10) for every output (bot/devstack/serving/predict.py),
so the expected `score` of each demo version is known exactly; `modelbot demo`, the tests and the benchmark write
these files and point the model's `smoke_test` at them.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.devstack.savedmodels import DEMO_VERSIONS, INPUT_ALIAS, OUTPUT_ALIAS
from bot.devstack.serving.predict import score

# Two transactions of 20 features each: a quiet one and a busy one.
GOLDEN_ROWS = ([0.5] * 20, [0.1 * i for i in range(20)])
REQUEST_FILE, EXPECT_FILE = "fraud_request.json", "fraud_expect.json"


def expected_scores(version: int) -> list[list[float]]:
    """What the emulator answers version `version` for GOLDEN_ROWS: one [score] per row."""
    return [[round(score(list(row), version), 6)] for row in GOLDEN_ROWS]


def write_golden_files(directory: Path) -> tuple[Path, Path]:
    """Write the request (row format) and the expected outputs of every compatible demo version; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    request = {"instances": [{INPUT_ALIAS: list(row)} for row in GOLDEN_ROWS]}
    versions = {
        str(v.version): {"outputs": {OUTPUT_ALIAS: expected_scores(v.version)}}
        for v in DEMO_VERSIONS
        if v.features == len(GOLDEN_ROWS[0])  # v4 takes 32 features: no expectation, its rollout is refused anyway
    }
    request_path, expect_path = directory / REQUEST_FILE, directory / EXPECT_FILE
    request_path.write_text(json.dumps(request, indent=1) + "\n")
    expect_path.write_text(json.dumps({"versions": versions}, indent=1) + "\n")
    return request_path, expect_path
