"""`serving_default` signature compatibility (reference/tfserving.md §7), on domain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SERVING_DEFAULT = "serving_default"


@dataclass(frozen=True)
class TensorSpec:
    dtype: str  # DataType name, e.g. "DT_FLOAT"
    shape: tuple[int, ...] | None  # None = unknown rank; -1 = unknown dimension

    def describe(self) -> str:
        dims = "?" if self.shape is None else "[" + ", ".join("None" if d < 0 else str(d) for d in self.shape) + "]"
        return f"{self.dtype.removeprefix('DT_').lower()}{dims}"


@dataclass(frozen=True)
class Signature:
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]
    defaults: frozenset[str] = field(default_factory=frozenset)  # inputs that have a default

    def describe(self) -> str:
        ins = ", ".join(f"{k}: {v.describe()}" for k, v in sorted(self.inputs.items()))
        outs = ", ".join(f"{k}: {v.describe()}" for k, v in sorted(self.outputs.items()))
        return f"({ins}) -> ({outs})"


def shapes_compatible(a: tuple[int, ...] | None, b: tuple[int, ...] | None) -> bool:
    """Equal rank and every dim equal or -1; an unknown rank is compatible with anything."""
    if a is None or b is None:
        return True
    if len(a) != len(b):
        return False
    return all(x == y or x < 0 or y < 0 for x, y in zip(a, b, strict=True))


def compatibility_problems(current: Signature, target: Signature) -> list[str]:
    """Why clients of `current` would break on `target`; empty when compatible. Tensor names are ignored."""
    problems: list[str] = []
    if current.method_name != target.method_name:
        problems.append(f"method {target.method_name!r} differs from {current.method_name!r}")
    problems += _compare("input", current.inputs, target.inputs)
    problems += _compare("output", current.outputs, target.outputs)
    new_required = set(target.inputs) - set(current.inputs) - set(target.defaults)
    problems += [f"new required input {name!r}" for name in sorted(new_required)]
    return problems


def _compare(kind: str, old: Mapping[str, TensorSpec], new: Mapping[str, TensorSpec]) -> list[str]:
    problems = []
    for name, spec in sorted(old.items()):
        if name not in new:
            problems.append(f"{kind} {name!r} is missing")
            continue
        other = new[name]
        if other.dtype != spec.dtype or not shapes_compatible(spec.shape, other.shape):
            problems.append(f"{kind} {name!r} changed from {spec.describe()} to {other.describe()}")
    return problems
