"""bot/core is the pure domain: it may import only the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "bot" / "core"
CORE_FILES = sorted(CORE.glob("*.py"))


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
            if node.module.startswith("bot.") and not node.module.startswith("bot.core"):
                roots.add(node.module)
    return roots


def test_core_has_modules() -> None:
    """The walk below really looks at the core package (guards against a wrong path passing vacuously)."""
    assert len(CORE_FILES) >= 8


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_imports_only_stdlib(path: Path) -> None:
    """Every import in bot/core is the standard library or bot.core itself (no grpc, sqlalchemy, yaml, slack)."""
    allowed = set(sys.stdlib_module_names) | {"bot", "__future__"}
    outside = {root for root in _imported_roots(path) if root not in allowed}
    assert not outside, f"{path.name} imports {sorted(outside)}"
