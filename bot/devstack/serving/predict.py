"""Predict against a loaded version: TF Serving's request checks, then a deterministic stand-in for the model.

The output is not the SavedModel's real computation (the emulator never runs TensorFlow). Every output alias of the
signature gets a float32 tensor of shape [batch, 1] whose row value is sigmoid(mean(row) + version / 10): the same
inputs on two versions give different, reproducible answers, so a test can tell which version served it, and a
golden-request smoke test can expect exact values per version. `--devstack_predict_offset MODEL:VERSION=OFFSET`
adds OFFSET to every answered value of that version on one replica (a replica that answers wrongly).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping

from bot.devstack.serving.loading import LoadedServable
from bot.devstack.serving.status import Code, TfError
from bot.serving.protos import tf_framework_pb2, tfs_apis_pb2

DataType = tf_framework_pb2.DataType
DEFAULT_SIGNATURE = "serving_default"

# dtype -> (repeated value field, struct format of one element in tensor_content)
_NUMERIC = {
    DataType.DT_FLOAT: ("float_val", "f"),
    DataType.DT_DOUBLE: ("double_val", "d"),
    DataType.DT_INT32: ("int_val", "i"),
    DataType.DT_INT64: ("int64_val", "q"),
    DataType.DT_BOOL: ("bool_val", "?"),
}


def _dtype_name(dtype: int) -> str:
    """DataTypeString(): "float", "int64", ..."""
    name: str = DataType.Name(dtype) if dtype in DataType.values() else "unknown"
    return name.removeprefix("DT_").lower()


def _decode(alias: str, tensor: tf_framework_pb2.TensorProto) -> tuple[list[int], list[float]]:
    """Tensor::FromProto for numeric tensors: shape and flat values (a short value list repeats its last value)."""
    dims = [d.size for d in tensor.tensor_shape.dim]
    if any(size < 0 for size in dims) or tensor.dtype not in _NUMERIC:
        raise TfError(Code.INVALID_ARGUMENT, f"tensor parsing error: {alias}")
    count = math.prod(dims)
    field, fmt = _NUMERIC[tensor.dtype]
    if tensor.tensor_content:
        if len(tensor.tensor_content) != count * struct.calcsize(fmt):
            raise TfError(Code.INVALID_ARGUMENT, f"tensor parsing error: {alias}")
        return dims, [float(v) for v in struct.unpack(f"<{count}{fmt}", tensor.tensor_content)]
    given = [float(v) for v in getattr(tensor, field)]
    if len(given) > count:
        raise TfError(Code.INVALID_ARGUMENT, f"tensor parsing error: {alias}")
    padding = [given[-1] if given else 0.0] * (count - len(given))
    return dims, given + padding


def _check_against_signature(
    alias: str, index: int, dims: list[int], tensor: tf_framework_pb2.TensorProto, info: tf_framework_pb2.TensorInfo
) -> None:
    if tensor.dtype != info.dtype:
        raise TfError(
            Code.INVALID_ARGUMENT,
            f"Expects arg[{index}] to be {_dtype_name(info.dtype)} but {_dtype_name(tensor.dtype)} is provided",
        )
    shape = info.tensor_shape
    if shape.unknown_rank:
        return
    expected = [d.size for d in shape.dim]
    if len(expected) != len(dims) or any(e not in (-1, got) for e, got in zip(expected, dims, strict=True)):
        # Emulator wording: TensorFlow's own message depends on the first op that trips over the shape.
        raise TfError(
            Code.INVALID_ARGUMENT,
            f"input tensor {alias} has shape [{','.join(map(str, dims))}] but the signature expects "
            f"[{','.join(map(str, expected))}]",
        )


def _check_inputs(signature: tf_framework_pb2.SignatureDef, inputs: Mapping[str, tf_framework_pb2.TensorProto]) -> None:
    """VerifyRequestInputsSize, then every alias known to the signature (predict_util.cc messages)."""
    sent, wanted = sorted(inputs), sorted(signature.inputs)
    if len(sent) > len(wanted) or (len(sent) < len(wanted) and not signature.defaults):
        extra = sorted(set(sent) - set(wanted))
        missing = sorted(set(wanted) - set(sent))
        raise TfError(
            Code.INVALID_ARGUMENT,
            f"input size does not match signature: {len(sent)}!={len(wanted)} len({{{','.join(sent)}}}) != "
            f"len({{{','.join(wanted)}}}). Sent extra: {{{','.join(extra)}}}. "
            f"Missing but required: {{{','.join(missing)}}}.",
        )
    for alias in sent:
        if alias not in signature.inputs:
            raise TfError(
                Code.INVALID_ARGUMENT,
                f"input tensor alias not found in signature: {alias}. "
                f"Inputs expected to be in the set {{{','.join(wanted)}}}.",
            )


def _output_aliases(signature: tf_framework_pb2.SignatureDef, output_filter: list[str]) -> list[str]:
    seen: list[str] = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise TfError(
                Code.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {alias} "
                f"Outputs expected to be in the set {{{','.join(sorted(signature.outputs))}}}.",
            )
        if alias in seen:
            raise TfError(Code.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}")
        seen.append(alias)
    return seen or sorted(signature.outputs)


def score(row: list[float], version: int) -> float:
    """The emulator's model: deterministic in the inputs and the version."""
    mean = sum(row) / len(row) if row else 0.0
    return 1.0 / (1.0 + math.exp(-(mean + version / 10)))


def predict(
    servable: LoadedServable, request: tfs_apis_pb2.PredictRequest, offset: float = 0.0
) -> tfs_apis_pb2.PredictResponse:
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(signature_name)
    if signature is None:
        raise TfError(Code.FAILED_PRECONDITION, f'Serving signature key "{signature_name}" not found.')
    _check_inputs(signature, request.inputs)
    decoded = {}
    for index, alias in enumerate(sorted(request.inputs)):
        dims, values = _decode(alias, request.inputs[alias])
        _check_against_signature(alias, index, dims, request.inputs[alias], signature.inputs[alias])
        decoded[alias] = (dims, values)
    aliases = _output_aliases(signature, list(request.output_filter))

    response = tfs_apis_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.signature_name = signature_name
    response.model_spec.version.value = servable.version
    dims, values = decoded[min(decoded)] if decoded else ([1], [])
    batch = dims[0] if dims else 1
    width = len(values) // batch if batch else 0
    scores = [score(values[i * width : (i + 1) * width], servable.version) + offset for i in range(batch)]
    for alias in aliases:
        out = response.outputs[alias]
        out.dtype = DataType.DT_FLOAT
        out.tensor_shape.dim.add(size=batch)
        out.tensor_shape.dim.add(size=1)
        out.float_val.extend(scores)
    return response
