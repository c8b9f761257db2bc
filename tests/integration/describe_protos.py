"""Dump protobuf descriptors (messages, fields, enums, services) of some modules as JSON.

Run as a script in a subprocess for the real tensorflow/tensorflow_serving modules: they define the same
full names as bot/serving/protos, and one process's descriptor pool cannot hold both.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

OURS = [
    "bot.serving.protos.tf_error_codes_pb2",
    "bot.serving.protos.tf_framework_pb2",
    "bot.serving.protos.tfs_apis_pb2",
]
REAL = [
    "tensorflow.compiler.xla.tsl.protobuf.error_codes_pb2",
    "tensorflow.core.framework.types_pb2",
    "tensorflow.core.framework.tensor_pb2",
    "tensorflow.core.framework.tensor_shape_pb2",
    "tensorflow.core.protobuf.meta_graph_pb2",
    "tensorflow.core.protobuf.saved_model_pb2",
    "tensorflow_serving.apis.model_pb2",
    "tensorflow_serving.apis.status_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving.apis.model_management_pb2",
    "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.model_service_pb2",
    "tensorflow_serving.apis.prediction_service_pb2",
    "tensorflow_serving.config.model_server_config_pb2",
    "tensorflow_serving.config.file_system_storage_path_source_pb2",
    "tensorflow_serving.config.logging_config_pb2",
    "tensorflow_serving.config.log_collector_config_pb2",
]


def field(f: Any) -> dict[str, Any]:
    label = "repeated" if f.is_repeated else ("required" if f.is_required else "optional")
    target = f.message_type or f.enum_type
    return {
        "number": f.number,
        "type": f.type,
        "label": label,
        "type_name": target.full_name if target else "",
        "oneof": f.containing_oneof.name if f.containing_oneof else "",
        "json_name": f.json_name,
        "packed": bool(f.is_packed) if f.is_repeated and not target else False,
    }


def walk_message(m: Any, out: dict[str, Any]) -> None:
    out["messages"][m.full_name] = {f.name: field(f) for f in m.fields}
    for e in m.enum_types:
        out["enums"][e.full_name] = {v.name: v.number for v in e.values}
    for nested in m.nested_types:
        walk_message(nested, out)


def dump(module_names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"messages": {}, "enums": {}, "services": {}}
    for name in module_names:
        file = importlib.import_module(name).DESCRIPTOR
        for m in file.message_types_by_name.values():
            walk_message(m, out)
        for e in file.enum_types_by_name.values():
            out["enums"][e.full_name] = {v.name: v.number for v in e.values}
        for s in file.services_by_name.values():
            out["services"][s.full_name] = {
                m.name: [m.input_type.full_name, m.output_type.full_name] for m in s.methods
            }
    return out


if __name__ == "__main__":
    json.dump(dump(sys.argv[1:] or REAL), sys.stdout)
