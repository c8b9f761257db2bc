"""Protobuf messages from TF Serving (or a SavedModel) -> core domain values. Protos stay inside bot/serving."""

from __future__ import annotations

from bot.core.fleet import ReplicaStatus, VersionState, VersionStatus
from bot.core.signatures import SERVING_DEFAULT, Signature, TensorSpec
from bot.serving.protos import tf_error_codes_pb2 as codes
from bot.serving.protos import tf_framework_pb2 as framework
from bot.serving.protos import tfs_apis_pb2 as apis

SIGNATURE_DEF_MAP_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"


def replica_status(replica: str, response: apis.GetModelStatusResponse) -> ReplicaStatus:
    return ReplicaStatus(replica=replica, versions=tuple(version_status(v) for v in response.model_version_status))


def version_status(entry: apis.ModelVersionStatus) -> VersionStatus:
    return VersionStatus(
        version=entry.version,
        state=_state(entry.state),
        error_code=_code_name(entry.status.error_code),
        error_message=entry.status.error_message,
    )


def signature_of(signature_def: framework.SignatureDef) -> Signature:
    """A SignatureDef as a domain Signature; graph tensor names are dropped (they change between exports)."""
    return Signature(
        method_name=signature_def.method_name,
        inputs={k: _tensor(v) for k, v in signature_def.inputs.items()},
        outputs={k: _tensor(v) for k, v in signature_def.outputs.items()},
        defaults=frozenset(signature_def.defaults.keys()),
    )


def served_signature(response: apis.GetModelMetadataResponse) -> Signature | None:
    """`serving_default` from a GetModelMetadata response (the Any-packed SignatureDefMap of reference §7)."""
    packed = response.metadata.get("signature_def")
    if packed is None:
        return None
    sig_map = apis.SignatureDefMap()
    if not packed.Unpack(sig_map):
        return None
    if SERVING_DEFAULT not in sig_map.signature_def:
        return None
    return signature_of(sig_map.signature_def[SERVING_DEFAULT])


def resolved_version(response: apis.GetModelMetadataResponse) -> int:
    """The version TF Serving resolved the request to (the label itself is not echoed)."""
    return int(response.model_spec.version.value)


def dtype_name(value: int) -> str:
    try:
        return str(framework.DataType.Name(value))
    except ValueError:  # a newer DataType than our subset declares (e.g. DT_FLOAT8_E5M2)
        return f"DT_{value}"


def _tensor(info: framework.TensorInfo) -> TensorSpec:
    if not info.HasField("tensor_shape") or info.tensor_shape.unknown_rank:
        return TensorSpec(dtype=dtype_name(info.dtype), shape=None)
    return TensorSpec(dtype=dtype_name(info.dtype), shape=tuple(d.size for d in info.tensor_shape.dim))


def _state(value: int) -> VersionState:
    try:
        return VersionState(apis.ModelVersionStatus.State.Name(value))
    except ValueError:
        return VersionState.UNKNOWN


def _code_name(value: int) -> str:
    try:
        return str(codes.Code.Name(value))
    except ValueError:
        return str(value)
