"""House rule for tests (docs/ARCHITECTURE.md, Conventions): every test says in one sentence what it shows."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SENTENCE_ENDS = (".", ")", '"', "`", "?")


def _without_a_sentence(source: str) -> list[str]:
    """Names of the test functions in `source` whose docstring is missing or not a finished sentence."""
    return [
        node.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test")
        and not (ast.get_docstring(node) or "").strip().endswith(SENTENCE_ENDS)
    ]


def test_every_test_has_a_docstring_sentence() -> None:
    """Each test function under tests/ has a docstring that is a finished sentence."""
    offenders = {
        str(path.relative_to(TESTS.parent)): names
        for path in sorted(TESTS.rglob("test_*.py"))
        if (names := _without_a_sentence(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_the_check_flags_a_missing_or_unfinished_docstring() -> None:
    """A test without a docstring and one with half a thought are flagged; a sentence passes."""
    source = 'def test_a():\n    pass\n\ndef test_b():\n    """half a thought"""\n\ndef test_c():\n    """Done."""\n'
    assert _without_a_sentence(source) == ["test_a", "test_b"]
