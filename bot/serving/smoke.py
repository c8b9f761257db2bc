"""The golden-request smoke test on TF Serving: Predict *by version* on every replica at once, each call with its
own deadline, and each answer judged by bot/core/smoke.py. Read-only: it loads, reloads and moves nothing.

Inputs are encoded with the dtypes of the version's serving_default (the one the rollout already read, or from
disk, else GetModelMetadata by version); an answer is judged on its output keys, dtypes and shapes, then on the
expected values (± tolerance) when the model's golden file has them for this version.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from bot.core.errors import ModelbotError, ServingError
from bot.core.signatures import Signature, shapes_compatible
from bot.core.smoke import (
    ONLY,
    Array,
    GoldenRequest,
    Scalar,
    SmokeVerdict,
    Tensor,
    first_value,
    limited,
    structure_problems,
    value_differences,
)
from bot.serving.channel import ReplicaClient
from bot.serving.convert import dtype_name, served_signature
from bot.serving.errors import describe
from bot.serving.fanout import FanOut
from bot.serving.protos import tf_framework_pb2 as framework
from bot.serving.protos import tfs_apis_pb2 as apis

DataType = framework.DataType
_INTS = frozenset({"DT_INT8", "DT_INT16", "DT_INT32", "DT_UINT8", "DT_UINT16"})
# dtype name -> (repeated value field, struct format of one element in tensor_content)
_FIELDS: Mapping[str, tuple[str, str]] = {
    "DT_FLOAT": ("float_val", "f"),
    "DT_DOUBLE": ("double_val", "d"),
    "DT_INT32": ("int_val", "i"),
    "DT_INT16": ("int_val", "h"),
    "DT_INT8": ("int_val", "b"),
    "DT_UINT8": ("int_val", "B"),
    "DT_UINT16": ("int_val", "H"),
    "DT_INT64": ("int64_val", "q"),
    "DT_BOOL": ("bool_val", "?"),
    "DT_STRING": ("string_val", ""),
}


class _Unusable(ModelbotError):
    """The golden request does not fit the version's signature (a file problem, the same on every replica)."""


def run_smoke(
    clients: Mapping[str, ReplicaClient],
    model: str,
    version: int,
    golden: GoldenRequest,
    *,
    signatures: Mapping[str, Signature | None],
    fanout: FanOut,
) -> dict[str, SmokeVerdict]:
    """Every replica's verdict. `signatures[r]` is the version's serving_default when already known (no call)."""
    verdicts: dict[str, SmokeVerdict] = {}
    known = {r: signatures.get(r) for r in clients}
    missing = [r for r, s in known.items() if s is None]
    if missing:  # rare: neither the rollout nor the disk had it; ask the replicas that lack it
        fetched = fanout.map(lambda r: _served(clients[r], model, version), missing)
        for replica, found in fetched.items():
            if isinstance(found, ServingError):
                verdicts[replica] = _call_failed(replica, version, found)
            elif isinstance(found, Signature):
                known[replica] = found
            else:
                verdicts[replica] = SmokeVerdict(replica, False, f"v{version} has no {golden.signature_name}")
    pending: dict[str, tuple[Signature, Callable[[], apis.PredictResponse]]] = {}
    requests: dict[int, apis.PredictRequest] = {}  # one request per distinct signature object
    for replica, signature in known.items():
        if replica in verdicts or signature is None:
            continue
        request = requests.get(id(signature))
        if request is None:
            try:
                request = requests[id(signature)] = _request(model, version, golden, signature)
            except _Unusable as exc:
                verdicts[replica] = SmokeVerdict(replica, False, str(exc))
                continue
        pending[replica] = (signature, clients[replica].predict_later(request, golden.timeout_s))
    for replica, (signature, result) in pending.items():
        verdicts[replica] = _judge(replica, version, golden, signature, result)
    return {r: verdicts[r] for r in clients}


def _served(client: ReplicaClient, model: str, version: int) -> Signature | None:
    return served_signature(client.metadata(model, version=version))


def _judge(
    replica: str,
    version: int,
    golden: GoldenRequest,
    signature: Signature,
    result: Callable[[], apis.PredictResponse],
) -> SmokeVerdict:
    try:
        response = result()
    except ServingError as exc:
        return _call_failed(replica, version, exc, golden.timeout_s)
    answered = response.model_spec.version.value
    if response.model_spec.HasField("version") and answered != version:
        return SmokeVerdict(replica, False, f"answered from v{answered}, not v{version}")
    try:
        got = {alias: decode(tensor) for alias, tensor in response.outputs.items()}
    except ValueError as exc:
        return SmokeVerdict(replica, False, f"answered a tensor the bot cannot read: {exc}")
    differences = structure_problems(signature.outputs, got, golden.batch())
    expected = golden.expected_for(version)
    if expected is not None:
        differences += value_differences(expected, got, golden.tolerance)
    if differences:
        return SmokeVerdict(replica, False, f"answered {limited(differences)}", differences=tuple(differences))
    sample = first_value(got, golden.tolerance)
    if expected is None:
        return SmokeVerdict(replica, True, f"answered with the signature's outputs ({sample}; no expected values)")
    return SmokeVerdict(replica, True, f"answered as expected ({sample})")


def _call_failed(replica: str, version: int, error: ServingError, timeout_s: float | None = None) -> SmokeVerdict:
    if error.code == "NOT_FOUND":
        return SmokeVerdict(replica, False, f"v{version} is not loaded here", loaded=False)
    if error.code == "DEADLINE_EXCEEDED" and timeout_s is not None:
        return SmokeVerdict(replica, False, f"no answer within {timeout_s:g}s")
    return SmokeVerdict(replica, False, f"failed: {describe(error)}")


# --- golden arrays <-> TensorProto


def _request(model: str, version: int, golden: GoldenRequest, signature: Signature) -> apis.PredictRequest:
    request = apis.PredictRequest()
    request.model_spec.name = model
    request.model_spec.version.value = version
    request.model_spec.signature_name = golden.signature_name
    for alias, array in golden.inputs.items():
        name = alias
        if alias == ONLY:
            if len(signature.inputs) != 1:
                wanted = ", ".join(sorted(signature.inputs))
                raise _Unusable(f"the golden request has one unnamed input, but v{version} takes {wanted}")
            name = next(iter(signature.inputs))
        spec = signature.inputs.get(name)
        if spec is None:
            wanted = ", ".join(sorted(signature.inputs))
            raise _Unusable(f"the golden request's input {name!r} is not one of v{version}'s inputs ({wanted})")
        if not shapes_compatible(spec.shape, array.shape):
            shape = "[" + ", ".join(map(str, array.shape)) + "]"
            raise _Unusable(
                f"the golden request's input {name!r} has shape {shape}; v{version} takes {spec.describe()}"
            )
        encode(array, spec.dtype, name, request.inputs[name])
    return request


def request_problems(golden: GoldenRequest, signature: Signature, version: int) -> list[str]:
    """Why the golden request cannot be sent to `version` as it is, or why its expectation for `version` cannot be
    met (empty: both fit) - what a rollout to `version` would fail on, found from the signature alone (check-config)."""
    try:
        _request("", version, golden, signature)
    except _Unusable as exc:
        return [str(exc)]
    expected = golden.expected_for(version) or {}
    return [
        f"the expected output {alias!r} is not one of v{version}'s outputs ({', '.join(sorted(signature.outputs))})"
        for alias in sorted(set(expected) - set(signature.outputs))
    ]


def encode(array: Array, dtype: str, alias: str, tensor: framework.TensorProto) -> None:
    """Fill `tensor` with `array` as `dtype` (the signature's); a value of the wrong kind is refused."""
    if dtype not in _FIELDS:
        raise _Unusable(f"input {alias!r} is {dtype}, which smoke tests do not support")
    tensor.dtype = DataType.Value(dtype)
    for size in array.shape:
        tensor.tensor_shape.dim.add(size=size)
    field = _FIELDS[dtype][0]
    try:
        values = [_cast(v, dtype) for v in array.values]
    except TypeError:
        raise _Unusable(f"input {alias!r} must hold {_kind(dtype)} for {dtype}") from None
    getattr(tensor, field).extend(values)


def _cast(value: Scalar, dtype: str) -> Any:
    if dtype == "DT_STRING":
        if not isinstance(value, str):
            raise TypeError
        return value.encode()
    if dtype == "DT_BOOL":
        if not isinstance(value, bool):
            raise TypeError
        return value
    if isinstance(value, bool | str):
        raise TypeError
    if dtype in ("DT_FLOAT", "DT_DOUBLE"):
        return float(value)
    if not isinstance(value, int):
        raise TypeError
    return value


def _kind(dtype: str) -> str:
    return {"DT_STRING": "strings", "DT_BOOL": "booleans", "DT_FLOAT": "numbers", "DT_DOUBLE": "numbers"}.get(
        dtype, "whole numbers"
    )


def decode(tensor: framework.TensorProto) -> Tensor:
    """Tensor::FromProto for the dtypes above: tensor_content, or the value field (a short list repeats its last
    value, as TensorFlow does); raises ValueError for anything else."""
    dtype = dtype_name(tensor.dtype)
    shape = tuple(d.size for d in tensor.tensor_shape.dim)
    if dtype not in _FIELDS or any(size < 0 for size in shape):
        raise ValueError(f"{dtype} {list(shape)}")
    count = 1
    for size in shape:
        count *= size
    field, fmt = _FIELDS[dtype]
    if tensor.tensor_content and fmt:
        if len(tensor.tensor_content) != count * struct.calcsize(fmt):
            raise ValueError(f"tensor_content of {len(tensor.tensor_content)} bytes for {dtype} {list(shape)}")
        values: list[Scalar] = list(struct.unpack(f"<{count}{fmt}", tensor.tensor_content))
    else:
        given = list(getattr(tensor, field))
        if len(given) > count:
            raise ValueError(f"{len(given)} values for shape {list(shape)}")
        values = given + [given[-1] if given else _zero(dtype)] * (count - len(given))
    if dtype == "DT_STRING":
        values = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in values]
    elif dtype in _INTS or dtype == "DT_INT64":
        values = [int(v) for v in values]
    return Tensor(dtype, shape, tuple(values))


def _zero(dtype: str) -> Scalar:
    return {"DT_STRING": b"", "DT_BOOL": False}.get(dtype, 0)  # type: ignore[return-value]
