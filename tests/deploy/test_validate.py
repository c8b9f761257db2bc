"""deploy/ through generic validators, offline: kustomize renders it, the Kubernetes schemas accept every object
(strict: unknown fields are errors), yamllint finds no slip, checkov's policies pass."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.deploy.manifests import BASES, DEPLOY, REPO_ROOT, TARGETS, Rendered, run, tool, validator_module

# The oldest Kubernetes the manifests support (preStop `sleep` is on by default from 1.30) and the newest schema
# kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Custom resources have no schema in kubernetes-validate; test_invariants checks what the bot relies on in them.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
EXPECTED_KINDS = {
    "base": {"ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget", "NetworkPolicy"},
    "tf-serving": {
        "ServiceAccount",
        "Service",
        "StatefulSet",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "PodDisruptionBudget",
    },
}
EXPECTED_KINDS["overlays/prod"] = (
    EXPECTED_KINDS["base"] | EXPECTED_KINDS["tf-serving"] | {"Namespace", "ServiceMonitor"}
)


def _schema_errors(objects: list[dict[str, Any]], version: str) -> list[str]:
    kubernetes_validate = validator_module()
    errors = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if (obj.get("apiVersion"), obj.get("kind")) not in CUSTOM_KINDS:
                errors.append(f"{name}: no schema for {obj.get('apiVersion')} at Kubernetes {version}")
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name}: {exc.message} at {'.'.join(map(str, exc.path))}")
    return errors


@pytest.mark.parametrize("target", TARGETS)
def test_every_kustomization_renders_the_expected_objects(rendered: dict[str, Rendered], target: str) -> None:
    """kustomize builds each base and the prod overlay, and each holds exactly the kinds it is meant to."""
    kinds = {o["kind"] for o in rendered[target].objects}
    assert kinds == EXPECTED_KINDS[target]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_rendered_objects_validate_against_the_kubernetes_schema(
    rendered: dict[str, Rendered], target: str, version: str
) -> None:
    """Every rendered object is valid (strict: no unknown field) at the oldest and newest supported Kubernetes."""
    assert _schema_errors(rendered[target].objects, version) == []


def test_strict_schema_validation_catches_a_misspelt_field(prod: Rendered) -> None:
    """The schema check is strict: one misspelt securityContext field is reported (so the test above can fail)."""
    broken = copy.deepcopy(prod.one("Deployment", "modelbot"))
    ctx = broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    ctx["readOnlyRootFileSystem"] = ctx.pop("readOnlyRootFilesystem")
    errors = _schema_errors([broken], KUBERNETES_VERSIONS[-1])
    assert len(errors) == 1 and "readOnlyRootFileSystem" in errors[0]


def test_yaml_sources_pass_yamllint() -> None:
    """Every YAML file under deploy/ passes yamllint --strict (duplicate keys, indentation, trailing spaces)."""
    result = run([tool("yamllint"), "--strict", "-f", "parsable", "-c", DEPLOY / ".yamllint.yaml", DEPLOY])
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_passes_on_the_rendered_manifests_and_the_dockerfile(rendered: dict[str, Rendered]) -> None:
    """checkov's Kubernetes and Dockerfile policies pass; the only skips are listed, with reasons, in
    deploy/.checkov.yaml."""
    files = [arg for r in rendered.values() for arg in ("-f", r.path)]
    result = run(
        [tool("checkov"), "--config-file", DEPLOY / ".checkov.yaml", "-o", "json", *files, "-f", DEPLOY / "Dockerfile"],
        cwd=REPO_ROOT,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_type = {r["check_type"]: r for r in reports}
    assert set(by_type) == {"kubernetes", "dockerfile"}, result.stderr[-2000:]
    base_files = {rendered[b].path.name for b in BASES}
    failed = [
        f"{f['check_id']} {f['resource']} ({f['file_path']})"
        for report in reports
        for f in report["results"]["failed_checks"]
        # CKV_K8S_21 (default namespace): the bases are namespace-agnostic on purpose; an overlay sets the
        # namespace, and test_invariants asserts that prod does. Everything else applies to the bases too.
        if not (f["check_id"] == "CKV_K8S_21" and f["file_path"].rsplit("/", 1)[-1] in base_files)
    ]
    assert failed == []
    assert by_type["kubernetes"]["summary"]["parsing_errors"] == 0
    # It read every rendered object (it also counts each pod template as a Pod of its own).
    assert by_type["kubernetes"]["summary"]["resource_count"] >= sum(len(r.objects) for r in rendered.values())
    assert by_type["dockerfile"]["summary"]["resource_count"] == 1
