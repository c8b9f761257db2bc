"""`modelbot demo` from a fresh directory: the story a new user sees, on a real 3-replica mTLS fleet."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_story_runs_end_to_end(tmp_path: Path, demo_models: Path) -> None:
    """The walkthrough shows the refusals, bob's approval, per-replica progress, verification, history, audit OK."""
    for name in ("modelbot.yaml", "permissions.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(demo_models, tmp_path / ".devstack" / "models" / "fraud_detector")  # skip the TF export
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        env={
            **os.environ,
            "MODELBOT_CONFIG": str(tmp_path / "modelbot.yaml"),
            "MODELBOT_PERMISSIONS": str(tmp_path / "permissions.yaml"),
        },
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "two-person rule" in out  # alice's own approval
    assert "U03CAROL holds no role" in out  # carol denied, rule named
    assert "[load" in out and "LOADING" in out  # per-replica progress while v2 loads
    assert "R1 SUCCEEDED" in out
    assert "Smoke test of fraud_detector v3 PASSED on all 3 replicas" in out  # `/model smoke`, read-only
    assert out.count("smoke test: answered as expected (score[0][0]=0.6682") == 3  # inside the rollout to v2
    assert "resolves to version 2 on all 3 replicas" in out
    assert out.count("  in sync") == 3  # /model status after the rollback: one line per replica
    assert "audit verify: OK" in out
    assert "Traceback" not in out + result.stderr
    db = tmp_path / ".devstack" / "demo.db"
    verify = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "verify"],
        cwd=tmp_path,
        env={**os.environ, "MODELBOT_DATABASE_URL": f"sqlite:///{db}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
