"""What "loading" a version means here: read its SavedModel proto and keep the signatures of the served graph.

The checks and messages are TensorFlow's (cc/saved_model/reader.cc and loader.cc), so a broken or half-copied
version directory fails the way it would on the real server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import message, text_format  # type: ignore[import-untyped]  # protobuf ships no stubs

from bot.devstack.serving.status import Code, TfError
from bot.serving.protos import tf_framework_pb2


@dataclass(frozen=True)
class LoadedServable:
    """A loaded version: the parts of its SavedModel that Predict and GetModelMetadata need."""

    model: str
    version: int
    path: str
    signature_defs: Mapping[str, tf_framework_pb2.SignatureDef]


def _read_saved_model(export_dir: str) -> tf_framework_pb2.SavedModel:
    saved_model = tf_framework_pb2.SavedModel()
    binary = Path(export_dir) / "saved_model.pb"
    text = Path(export_dir) / "saved_model.pbtxt"
    try:
        if binary.is_file():
            try:
                saved_model.ParseFromString(binary.read_bytes())
            except message.DecodeError as error:
                raise TfError(Code.DATA_LOSS, f"Can't parse {binary} as binary proto") from error
            return saved_model
        if text.is_file():
            try:
                text_format.Parse(text.read_text(), saved_model, allow_unknown_field=True)
            except text_format.ParseError as error:
                raise TfError(Code.DATA_LOSS, f"Can't parse {text} as text proto") from error
            return saved_model
    except OSError as error:
        raise TfError(Code.PERMISSION_DENIED, f"{error.filename}; {error.strerror}") from error
    raise TfError(
        Code.NOT_FOUND,
        "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
        f"{export_dir}. Check that the directory exists and that you have the right permissions for accessing it.",
    )


def load_saved_model(model: str, version: int, export_dir: str, tags: frozenset[str]) -> LoadedServable:
    """Load one version or raise the loader's error (which becomes the version's END status)."""
    saved_model = _read_saved_model(export_dir)
    for meta_graph in saved_model.meta_graphs:
        if frozenset(meta_graph.meta_info_def.tags) == tags:
            signatures = {key: meta_graph.signature_def[key] for key in sorted(meta_graph.signature_def)}
            return LoadedServable(model, version, export_dir, signatures)
    wanted = "".join(f"{tag} " for tag in sorted(tags))
    raise TfError(
        Code.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {wanted}}}. To inspect available tag-sets "
        "in the SavedModel, please use the SavedModel CLI: `saved_model_cli`",
    )
