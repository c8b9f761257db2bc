"""Writes minimal saved_model.pb files with the bot's own proto subset (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path

from bot.serving.protos import tf_framework_pb2 as fw


def tensor_info(name: str, dtype: int = fw.DT_FLOAT, dims: tuple[int, ...] | None = (-1, 20)) -> fw.TensorInfo:
    info = fw.TensorInfo(name=name, dtype=dtype)
    if dims is None:
        info.tensor_shape.unknown_rank = True
    else:
        info.tensor_shape.SetInParent()
        for d in dims:
            info.tensor_shape.dim.add(size=d)
    return info


def signature_def(
    inputs: dict[str, fw.TensorInfo] | None = None,
    outputs: dict[str, fw.TensorInfo] | None = None,
    method: str = "tensorflow/serving/predict",
) -> fw.SignatureDef:
    sig = fw.SignatureDef(method_name=method)
    for k, v in (inputs if inputs is not None else {"x": tensor_info("serving_default_x:0")}).items():
        sig.inputs[k].CopyFrom(v)
    for k, v in (
        outputs if outputs is not None else {"y": tensor_info("StatefulPartitionedCall:0", dims=(-1, 1))}
    ).items():
        sig.outputs[k].CopyFrom(v)
    return sig


def write_saved_model(
    version_dir: Path, sig: fw.SignatureDef | None = None, tags: tuple[str, ...] = ("serve",)
) -> Path:
    """version_dir/saved_model.pb holding one meta graph with `serving_default` (and TF2's init op)."""
    saved = fw.SavedModel(saved_model_schema_version=1)
    graph = saved.meta_graphs.add()
    graph.meta_info_def.tags.extend(tags)
    graph.signature_def["serving_default"].CopyFrom(sig if sig is not None else signature_def())
    graph.signature_def["__saved_model_init_op"].CopyFrom(fw.SignatureDef())
    version_dir.mkdir(parents=True, exist_ok=True)
    path = version_dir / "saved_model.pb"
    path.write_bytes(saved.SerializeToString())
    return path
