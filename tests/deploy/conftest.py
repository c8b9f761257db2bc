"""Fixtures of the deploy/ tests: every kustomization rendered once per session (see tests/deploy/manifests.py)."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import TARGETS, Rendered, render


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    """deploy/base, deploy/tf-serving and deploy/overlays/prod rendered by kustomize, by target name."""
    out = tmp_path_factory.mktemp("rendered")
    return {target: render(target, out) for target in TARGETS}


@pytest.fixture
def prod(rendered: dict[str, Rendered]) -> Rendered:
    """The production overlay as rendered."""
    return rendered["overlays/prod"]
