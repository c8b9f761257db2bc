"""Golden-request smoke test (DESIGN.md §4 phase 1), on domain values: the request and expected outputs as TF
Serving REST users write them, and the comparison of an answer with them. No I/O: bot/usecases/smoke.py reads the
files, bot/serving/smoke.py encodes the request with the signature's dtypes and decodes the answer.

Request JSON: `{"inputs": {alias: nested list}}` (columnar; `{"inputs": nested list}` for a single input) or
`{"instances": [row, ...]}` (row format: each row a `{alias: value}` object, or a bare value for a single input);
optional `"signature_name"` (default serving_default). Expected JSON: `{"outputs": {alias: nested list}}` (the REST
predict response; `{"predictions": [...]}` in row format works too), for every version, and/or per version:
`{"versions": {"2": {"outputs": ...}}}`. A version without expected outputs is checked for the signature's output
keys, dtypes and shapes only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from bot.core.signatures import SERVING_DEFAULT, TensorSpec, shapes_compatible

Scalar = float | int | bool | str
ONLY = ""  # the alias of an unnamed input or output: the signature's only one
MAX_DIFFERENCES = 3  # differences named per replica; the rest are counted


class GoldenFileError(ValueError):
    """A golden request or expectation that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Array:
    """A rectangular nested list, flattened row-major."""

    shape: tuple[int, ...]
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Tensor:
    """An output tensor as a replica answered it (dtype name like "DT_FLOAT")."""

    dtype: str
    shape: tuple[int, ...]
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class GoldenRequest:
    """What the smoke test sends and expects; `expect` None means: check keys, dtypes and shapes only."""

    inputs: Mapping[str, Array]
    expect: Mapping[str, Mapping[str, Array]] | None = None  # version ("*" = any) -> alias -> expected array
    tolerance: float = 1e-4
    timeout_s: float = 2.0
    signature_name: str = SERVING_DEFAULT
    source: str = ""  # the request file, for messages

    def expected_for(self, version: int) -> Mapping[str, Array] | None:
        if self.expect is None:
            return None
        return self.expect.get(str(version), self.expect.get("*"))

    def batch(self) -> int | None:
        """The batch size the answers should have (the first dimension of the inputs), if they agree."""
        firsts = {a.shape[0] for a in self.inputs.values() if a.shape}
        return firsts.pop() if len(firsts) == 1 else None


@dataclass(frozen=True)
class SmokeVerdict:
    """How one replica answered the golden request. `loaded` False: the version is not loaded there."""

    replica: str
    ok: bool
    detail: str
    loaded: bool = True
    differences: tuple[str, ...] = field(default=())


# --- reading the JSON files (already parsed by the caller)


def parse_request(data: object) -> tuple[dict[str, Array], str]:
    """The inputs (alias -> array; ONLY for an unnamed single input) and the signature name of a request file."""
    if not isinstance(data, Mapping):
        raise GoldenFileError('expected a JSON object with "inputs" or "instances"')
    unknown = sorted(set(data) - {"inputs", "instances", "signature_name"})
    if unknown:
        raise GoldenFileError(f"unknown key {unknown[0]!r} (expected inputs, instances, signature_name)")
    signature = data.get("signature_name", SERVING_DEFAULT)
    if not isinstance(signature, str) or not signature:
        raise GoldenFileError("signature_name must be a non-empty string")
    if ("inputs" in data) == ("instances" in data):
        raise GoldenFileError('give exactly one of "inputs" (columnar) or "instances" (row format)')
    inputs = _columns(data["inputs"], "inputs") if "inputs" in data else _rows(data["instances"], "instances")
    if not inputs:
        raise GoldenFileError("the request has no inputs")
    return inputs, signature


def parse_expect(data: object) -> dict[str, dict[str, Array]]:
    """Expected outputs: version ("*" for any version) -> alias -> array."""
    if not isinstance(data, Mapping):
        raise GoldenFileError('expected a JSON object with "outputs", "predictions" or "versions"')
    unknown = sorted(set(data) - {"outputs", "predictions", "versions"})
    if unknown:
        raise GoldenFileError(f"unknown key {unknown[0]!r} (expected outputs, predictions, versions)")
    expect: dict[str, dict[str, Array]] = {}
    if "outputs" in data or "predictions" in data:
        expect["*"] = _outputs(data, "")
    versions = data.get("versions", {})
    if not isinstance(versions, Mapping):
        raise GoldenFileError('"versions" must map version numbers to {"outputs": ...}')
    for version, entry in versions.items():
        if not str(version).isdigit():
            raise GoldenFileError(f"versions: {version!r} is not a version number")
        if not isinstance(entry, Mapping) or not ({"outputs", "predictions"} & set(entry)):
            raise GoldenFileError(f'versions.{version}: expected {{"outputs": ...}}')
        expect[str(int(version))] = _outputs(entry, f"versions.{version}.")
    if not expect:
        raise GoldenFileError('no expected outputs: give "outputs", "predictions" or "versions"')
    return expect


def _outputs(data: Mapping[str, object], where: str) -> dict[str, Array]:
    if "outputs" in data and "predictions" in data:
        raise GoldenFileError(f'{where}: give "outputs" or "predictions", not both')
    if "outputs" in data:
        return _columns(data["outputs"], f"{where}outputs")
    return _rows(data["predictions"], f"{where}predictions")


def _columns(value: object, where: str) -> dict[str, Array]:
    if isinstance(value, Mapping):
        return {str(alias): to_array(v, f"{where}.{alias}") for alias, v in value.items()}
    return {ONLY: to_array(value, where)}


def _rows(value: object, where: str) -> dict[str, Array]:
    if not isinstance(value, list) or not value:
        raise GoldenFileError(f"{where} must be a non-empty list of rows")
    if all(isinstance(row, Mapping) for row in value):
        aliases = set(value[0])
        if any(set(row) != aliases for row in value):
            raise GoldenFileError(f"{where}: every row must name the same inputs")
        return {str(a): _stack([row[a] for row in value], f"{where}[*].{a}") for a in sorted(aliases)}
    if any(isinstance(row, Mapping) for row in value):
        raise GoldenFileError(f"{where}: mix of named and unnamed rows")
    return {ONLY: _stack(value, where)}


def _stack(rows: Sequence[object], where: str) -> Array:
    arrays = [to_array(row, f"{where}[{i}]") for i, row in enumerate(rows)]
    if len({a.shape for a in arrays}) != 1:
        raise GoldenFileError(f"{where}: the rows have different shapes")
    return Array((len(arrays), *arrays[0].shape), tuple(v for a in arrays for v in a.values))


def to_array(value: object, where: str) -> Array:
    """A nested list (or a scalar) as an Array; ragged lists and non-scalars are refused."""
    shape = _shape(value, where)
    return Array(shape, tuple(_flatten(value)))


def _shape(value: object, where: str) -> tuple[int, ...]:
    if isinstance(value, list):
        if not value:
            return (0,)
        inner = {_shape(v, where) for v in value}
        if len(inner) != 1:
            raise GoldenFileError(f"{where}: the nested lists are not rectangular")
        return (len(value), *inner.pop())
    if isinstance(value, bool | int | float | str):
        return ()
    raise GoldenFileError(f"{where}: {type(value).__name__} is not a number, boolean or string")


def _flatten(value: object) -> Iterator[Scalar]:
    if isinstance(value, list):
        for v in value:
            yield from _flatten(v)
    elif isinstance(value, bool | int | float | str):
        yield value


# --- comparing an answer


def structure_problems(
    outputs: Mapping[str, TensorSpec], got: Mapping[str, Tensor], batch: int | None = None
) -> list[str]:
    """Why the answer does not have the signature's output keys, dtypes and shapes (empty: it has them)."""
    problems = [f"no output {alias!r}" for alias in sorted(set(outputs) - set(got))]
    problems += [f"an output {alias!r} the signature does not declare" for alias in sorted(set(got) - set(outputs))]
    for alias in sorted(set(outputs) & set(got)):
        spec, tensor = outputs[alias], got[alias]
        if tensor.dtype != spec.dtype:
            problems.append(f"{alias} is {_dtype(tensor.dtype)} (the signature says {_dtype(spec.dtype)})")
        if not shapes_compatible(spec.shape, tensor.shape):
            problems.append(f"{alias} has shape {_dims(tensor.shape)} (the signature says {spec.describe()})")
        elif batch is not None and tensor.shape and tensor.shape[0] != batch:
            problems.append(f"{alias} has {tensor.shape[0]} rows for a batch of {batch}")
    return problems


def value_differences(expected: Mapping[str, Array], got: Mapping[str, Tensor], tolerance: float) -> list[str]:
    """Where the answer differs from the expected outputs: numbers beyond ± tolerance, anything else exactly."""
    differences: list[str] = []
    for alias in sorted(expected):
        name = alias
        if alias == ONLY and len(got) == 1:
            name = next(iter(got))
        if name not in got:
            answered = ", ".join(sorted(got)) or "nothing"
            differences.append(f"no output {alias or '(unnamed)'!r} (it answered {answered})")
            continue
        want, tensor = expected[alias], got[name]
        if want.shape != tensor.shape:
            differences.append(f"{name} has shape {_dims(tensor.shape)} (expected {_dims(want.shape)})")
            continue
        for index, (g, e) in enumerate(zip(tensor.values, want.values, strict=True)):
            if not _close(g, e, tolerance):
                at = name + "".join(f"[{i}]" for i in _unravel(index, tensor.shape))
                differences.append(f"{at}={_show(g, tolerance)} (expected {_show(e, tolerance)}{_pm(e, tolerance)})")
    return differences


def first_value(got: Mapping[str, Tensor], tolerance: float) -> str:
    """A short sample of an answer for the record: the first value of the first output."""
    for alias in sorted(got):
        tensor = got[alias]
        if tensor.values:
            at = alias + "".join("[0]" for _ in tensor.shape)
            more = ", …" if len(tensor.values) > 1 else ""
            return f"{at}={_show(tensor.values[0], tolerance)}{more}"
    return "no values"


def limited(differences: Sequence[str]) -> str:
    """The first few differences, then how many more."""
    shown = "; ".join(differences[:MAX_DIFFERENCES])
    rest = len(differences) - MAX_DIFFERENCES
    return f"{shown}; and {rest} more" if rest > 0 else shown


def _close(got: Scalar, want: Scalar, tolerance: float) -> bool:
    numeric = (int, float)
    if isinstance(got, bool) or isinstance(want, bool) or not (isinstance(got, numeric) and isinstance(want, numeric)):
        return got == want
    if math.isnan(got) or math.isnan(want):
        return math.isnan(got) and math.isnan(want)
    return abs(got - want) <= tolerance


def _unravel(index: int, shape: tuple[int, ...]) -> list[int]:
    out = []
    for size in reversed(shape):
        out.append(index % size if size else 0)
        index = index // size if size else 0
    return list(reversed(out))


def _decimals(tolerance: float) -> int:
    if tolerance <= 0:
        return 6
    return min(max(4, math.ceil(-math.log10(tolerance) - 1e-9)), 12)  # enough digits to see the tolerance


def _show(value: Scalar, tolerance: float) -> str:
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:.{_decimals(tolerance)}f}"
    return repr(value) if isinstance(value, str) else str(value)


def _pm(expected: Scalar, tolerance: float) -> str:
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        return ""
    return f" ± {tolerance:g}"


def _dims(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _dtype(name: str) -> str:
    return name.removeprefix("DT_").lower()
