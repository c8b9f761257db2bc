"""Helpers for tests that talk to devstack emulator replicas with the generated stubs (see tests/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import grpc
from google.protobuf import text_format  # type: ignore[import-untyped]  # protobuf ships no stubs

from bot.devstack.certs import DevCerts
from bot.devstack.fleet import MODELS_ROOT_PLACEHOLDER, DevFleet
from bot.serving.protos import tf_framework_pb2, tfs_apis_pb2, tfs_apis_pb2_grpc

# Fast emulator knobs for tests: the real defaults (1 s polls, 5 retries a minute apart) would make tests slow.
FAST_KNOBS: dict[str, object] = {
    "file_system_poll_wait_seconds": 0.05,
    "devstack_load_seconds": 0.05,
    "devstack_manage_interval_seconds": 0.02,
    "max_num_load_retries": 1,
    "load_retry_interval_micros": 50_000,
}
MODEL = "fraud_detector"
RPC_TIMEOUT_S = 10.0
State = tfs_apis_pb2.ModelVersionStatus.State

Client = Literal["bot", "rogue", "none", "insecure"]
FleetFactory = Callable[..., DevFleet]  # the `fleet` fixture

T = TypeVar("T")


@dataclass
class TfsStubs:
    """A channel to one replica and the two service stubs on it."""

    channel: grpc.Channel
    model: tfs_apis_pb2_grpc.ModelServiceStub
    prediction: tfs_apis_pb2_grpc.PredictionServiceStub
    models_root: Path | None = None  # replaces "{models_root}" in reload(), as DevFleet does in config files

    def status(self, name: str = MODEL, version: int | None = None, missing_ok: bool = False) -> dict[int, str]:
        """{version: state name} from GetModelStatus; with missing_ok, {} while the model has no versions yet."""
        spec = tfs_apis_pb2.ModelSpec(name=name)
        if version is not None:
            spec.version.value = version
        request = tfs_apis_pb2.GetModelStatusRequest(model_spec=spec)
        try:
            response = self.model.GetModelStatus(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as error:
            if missing_ok and error.code() is grpc.StatusCode.NOT_FOUND:
                return {}
            raise
        return {s.version: State.Name(s.state) for s in response.model_version_status}

    def reload(self, config_text: str, timeout: float = RPC_TIMEOUT_S) -> tfs_apis_pb2.ReloadConfigResponse:
        """HandleReloadConfigRequest with a text-format ModelServerConfig."""
        request = tfs_apis_pb2.ReloadConfigRequest(config=self.server_config(config_text))
        return self.model.HandleReloadConfigRequest(request, timeout=timeout)

    def server_config(self, config_text: str) -> tfs_apis_pb2.ModelServerConfig:
        """Parse a text-format ModelServerConfig, "{models_root}" replaced."""
        if self.models_root is not None:
            config_text = config_text.replace(MODELS_ROOT_PLACEHOLDER, str(self.models_root))
        config = tfs_apis_pb2.ModelServerConfig()
        parse_text(config_text, config)
        return config

    def metadata(self, spec: tfs_apis_pb2.ModelSpec) -> tfs_apis_pb2.GetModelMetadataResponse:
        request = tfs_apis_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
        return self.prediction.GetModelMetadata(request, timeout=RPC_TIMEOUT_S)

    def predict(self, spec: tfs_apis_pb2.ModelSpec, rows: Iterable[Iterable[float]]) -> tfs_apis_pb2.PredictResponse:
        return self.prediction.Predict(predict_request(spec, rows), timeout=RPC_TIMEOUT_S)


StubsFactory = Callable[..., "TfsStubs"]  # the `tfs` fixture


def parse_text(text: str, message: Any) -> None:
    text_format.Parse(text, message)


def spec(name: str = MODEL, *, version: int | None = None, label: str | None = None) -> tfs_apis_pb2.ModelSpec:
    model_spec = tfs_apis_pb2.ModelSpec(name=name)
    if version is not None:
        model_spec.version.value = version
    if label is not None:
        model_spec.version_label = label
    return model_spec


def predict_request(model_spec: tfs_apis_pb2.ModelSpec, rows: Iterable[Iterable[float]]) -> tfs_apis_pb2.PredictRequest:
    """A PredictRequest with one float32 [batch, width] input named "features"."""
    matrix = [list(row) for row in rows]
    request = tfs_apis_pb2.PredictRequest(model_spec=model_spec)
    tensor = request.inputs["features"]
    tensor.dtype = tf_framework_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=len(matrix))
    tensor.tensor_shape.dim.add(size=len(matrix[0]) if matrix else 0)
    tensor.float_val.extend(v for row in matrix for v in row)
    return request


def open_stubs(
    target: str,
    certs: DevCerts,
    client: Client = "bot",
    server_name: str | None = None,
    models_root: Path | None = None,
) -> TfsStubs:
    """Stubs over mTLS as the bot ("bot"), with another CA's certificate ("rogue"), with no client certificate
    ("none"), or in plaintext ("insecure"). server_name overrides the TLS name checked against the SANs."""
    if client == "insecure":
        channel = grpc.insecure_channel(target)
    else:
        key_cert = {
            "bot": (certs.bot_key, certs.bot_cert),
            "rogue": (certs.rogue_key, certs.rogue_cert),
            "none": (None, None),
        }[client]
        credentials = grpc.ssl_channel_credentials(
            root_certificates=certs.ca.read_bytes(),
            private_key=key_cert[0].read_bytes() if key_cert[0] else None,
            certificate_chain=key_cert[1].read_bytes() if key_cert[1] else None,
        )
        options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        channel = grpc.secure_channel(target, credentials, options=options)
    return TfsStubs(
        channel,
        tfs_apis_pb2_grpc.ModelServiceStub(channel),  # type: ignore[no-untyped-call]
        tfs_apis_pb2_grpc.PredictionServiceStub(channel),  # type: ignore[no-untyped-call]
        models_root,
    )


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    """The RpcError the call raises; fails the test if it succeeds."""
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise AssertionError("expected the call to fail with an RpcError")


def wait_until(check: Callable[[], T | None], timeout_s: float = 10.0, what: str = "condition") -> T:
    """Poll check() until it returns something truthy; fails with `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


def model_entry(
    name: str = MODEL,
    base_path: str = "{models_root}/" + MODEL,
    *,
    versions: Iterable[int] | None = None,
    labels: Mapping[str, int] | None = None,
    platform: str = "tensorflow",
    policy: str | None = None,
) -> str:
    """One `config { ... }` entry in text format; `versions` gives a specific policy, `policy` any other one."""
    parts = [f'name: "{name}"', f'base_path: "{base_path}"']
    if platform:
        parts.append(f'model_platform: "{platform}"')
    if versions is not None:
        parts.append("model_version_policy { specific { " + " ".join(f"versions: {v}" for v in versions) + " } }")
    elif policy is not None:
        parts.append(f"model_version_policy {{ {policy} }}")
    for label, version in (labels or {}).items():
        parts.append(f'version_labels {{ key: "{label}" value: {version} }}')
    return "config { " + " ".join(parts) + " }"


def config_text(*entries: str) -> str:
    """A text-format ModelServerConfig with these entries (none: an empty list, which unloads everything)."""
    return "model_config_list { " + " ".join(entries) + " }\n"
