"""Hatch build hook: compile bot/serving/protos/*.proto with grpcio-tools (wheel and editable installs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ProtoBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Generate *_pb2.py, *_pb2.pyi and *_pb2_grpc.py next to the .proto files."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        from importlib.resources import files

        from grpc_tools import protoc  # build requirement, see pyproject.toml

        root = Path(self.root)
        protos = sorted(str(p.relative_to(root)) for p in (root / "bot/serving/protos").glob("*.proto"))
        args = ["protoc", f"-I{root}", f"-I{files('grpc_tools') / '_proto'}"]
        args += [f"--python_out={root}", f"--pyi_out={root}", f"--grpc_python_out={root}", *protos]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed on " + ", ".join(protos))
