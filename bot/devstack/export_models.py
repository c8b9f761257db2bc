"""`python -m bot.devstack.export_models ROOT [VERSION ...]`: export demo versions with TensorFlow.

Runs in its own process (see savedmodels.ensure_demo_models). Each version is written under a non-numeric
temporary name, which TF Serving's directory poll ignores, then renamed into place in one step.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from bot.devstack.savedmodels import DEMO_MODEL, DEMO_VERSIONS, INPUT_ALIAS, METADATA_FILE, OUTPUT_ALIAS, DemoVersion


def _scorer(tf: Any, spec: DemoVersion) -> Any:
    """A logistic scorer with per-version weights: tiny, but a real graph with variables and a signature."""
    rng = tf.random.Generator.from_seed(spec.version)
    weights = tf.Variable(rng.normal([spec.features, 1], stddev=0.3), name="weights")
    bias = tf.Variable([spec.version * 0.05 - 0.1], name="bias")

    def features_to_score(features: Any) -> Any:
        return {OUTPUT_ALIAS: tf.sigmoid(tf.matmul(features, weights) + bias)}

    # The argument name becomes the signature's input alias.
    serve = tf.function(
        features_to_score, input_signature=[tf.TensorSpec([None, spec.features], tf.float32, name=INPUT_ALIAS)]
    )
    module = tf.Module()
    module.weights, module.bias, module.serve = weights, bias, serve
    return module


def _export_version(tf: Any, model_dir: Path, spec: DemoVersion) -> None:
    target = model_dir / str(spec.version)
    staging = model_dir / f".export-{spec.version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    module = _scorer(tf, spec)
    tf.saved_model.save(module, str(staging), signatures={"serving_default": module.serve})
    metadata = {
        "model": DEMO_MODEL,
        "version": spec.version,
        "metrics": {"auc": spec.auc, "precision": spec.precision},
        "note": spec.note,
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    if target.exists():  # an incomplete leftover from an interrupted run (complete ones are never re-exported)
        shutil.rmtree(target)
    staging.rename(target)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m bot.devstack.export_models ROOT [VERSION ...]", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = importlib.import_module("tensorflow")  # imported by name: mypy need not analyse TensorFlow
    model_dir = Path(argv[0]) / DEMO_MODEL
    model_dir.mkdir(parents=True, exist_ok=True)
    wanted = {int(v) for v in argv[1:]} or {spec.version for spec in DEMO_VERSIONS}
    for spec in DEMO_VERSIONS:
        if spec.version in wanted:
            _export_version(tf, model_dir, spec)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
