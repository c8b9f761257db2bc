"""Read permissions.yaml into a Policy, reporting duplicate keys that yaml.safe_load silently drops.

A YAML mapping with the same key twice keeps only the last one, so `U02BOB: [viewer]` written twice
quietly loses a grant (or, worse, a restriction). The loader here records every duplicate with its
line numbers, and they are listed together with every schema problem in one ConfigError.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode

from bot.core.errors import ConfigError
from bot.core.policy import Policy, parse_policy

MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKeyLoader(yaml.SafeLoader):
    """SafeLoader that notes duplicate mapping keys in `self.duplicates` instead of dropping them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[object, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                continue  # `<<:` merges are meant to be overridden
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first_line:
                self.duplicates.append(
                    f"line {line}: duplicate key {key!r} (first on line {first_line[key]});"
                    " YAML keeps only the last, so merge the two entries"
                )
            else:
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read, check and build the policy; ConfigError(path, every problem) on any mistake."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"cannot read the file: {exc}"]) from None
    loader = _DuplicateKeyLoader(text)
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {' '.join(str(exc).split())}"]) from None
    finally:
        loader.dispose()
    problems = list(loader.duplicates)
    if raw is None:
        raw = {}
    try:
        policy = parse_policy(raw, source)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(source, problems)
    return policy
