"""Demo SavedModels: fraud_detector versions 1-3 (float32[None,20] -> score[None,1]) and an incompatible 4.

Exported with TensorFlow in a subprocess (`python -m bot.devstack.export_models ROOT`), so TensorFlow is never
imported by the calling process; finished versions are cached on disk and skipped next time.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEMO_MODEL = "fraud_detector"
INPUT_ALIAS = "features"
OUTPUT_ALIAS = "score"
METADATA_FILE = "metadata.json"
_EXPORT_TIMEOUT_S = 600


@dataclass(frozen=True)
class DemoVersion:
    """What one exported version looks like; the metrics are invented but plausible for the demo story."""

    version: int
    features: int  # width of the serving_default input
    auc: float
    precision: float
    note: str


DEMO_VERSIONS = (
    DemoVersion(1, 20, 0.912, 0.861, "baseline gradient-boosted features, retrained weekly"),
    DemoVersion(2, 20, 0.927, 0.874, "adds merchant-category embeddings"),
    DemoVersion(3, 20, 0.941, 0.802, "higher recall; more false positives on card-not-present payments"),
    DemoVersion(4, 32, 0.948, 0.851, "expects 32 features (new device signals): incompatible serving signature"),
)


class DemoModelsUnavailable(RuntimeError):
    """The demo models cannot be exported here (TensorFlow missing, or the export failed)."""


def version_is_complete(version_dir: Path) -> bool:
    """The export finished: versions are renamed into place whole, so both files exist or neither does."""
    return (version_dir / "saved_model.pb").is_file() and (version_dir / METADATA_FILE).is_file()


def _missing(model_dir: Path) -> list[int]:
    return [v.version for v in DEMO_VERSIONS if not version_is_complete(model_dir / str(v.version))]


def ensure_demo_models(root: Path) -> Path:
    """Export whatever demo versions are missing under root/fraud_detector and return that base path."""
    root = root.resolve()
    model_dir = root / DEMO_MODEL
    if not _missing(model_dir):
        return model_dir
    if importlib.util.find_spec("tensorflow") is None:
        raise DemoModelsUnavailable(
            "TensorFlow is needed to export the demo models but is not installed; "
            "install the demo-models extra: pip install -e '.[demo-models]'"
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    # Two processes preparing the same directory (tests and a demo) export once, not twice.
    with (root / ".export.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = _missing(model_dir)
        if missing:
            _export(root, missing)
    return model_dir


def _export(root: Path, versions: list[int]) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "bot.devstack.export_models", str(root), *map(str, versions)]
    try:
        done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=_EXPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise DemoModelsUnavailable(f"exporting the demo models took longer than {_EXPORT_TIMEOUT_S}s") from error
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise DemoModelsUnavailable(f"exporting the demo models failed (exit {done.returncode}):\n{tail}")
