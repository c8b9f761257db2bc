"""One mutually-authenticated TLS gRPC channel per replica, reused across calls, with per-RPC deadlines.

TF Serving checks nothing beyond the transport (reference/tfserving.md §6): whoever passes the TLS handshake
may reload the config, so the admin channel is always TLS, normally with a client certificate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import grpc

from bot.core.errors import ConfigError, ServingError
from bot.serving.errors import from_rpc_error
from bot.serving.protos import tfs_apis_pb2 as apis
from bot.serving.protos import tfs_apis_pb2_grpc as apis_grpc
from bot.settings import TlsSettings

SIGNATURE_DEF = "signature_def"  # the only metadata field TF Serving supports (reference §7)

# A replica that restarts should be reachable again within seconds, not after gRPC's 2-minute backoff cap.
_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),  # signature maps of big models
)


class ReplicaClient:
    """The three ModelService/PredictionService calls the bot makes, on one replica; failures raise ServingError."""

    def __init__(
        self, replica: str, channel: grpc.Channel, timeout_s: float, on_unreachable: Callable[[str], None] | None = None
    ) -> None:
        self.replica = replica
        self.timeout_s = timeout_s
        self._on_unreachable = on_unreachable
        self._models = apis_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
        self._predictions = apis_grpc.PredictionServiceStub(channel)  # type: ignore[no-untyped-call]

    def status(self, model: str, version: int | None = None) -> apis.GetModelStatusResponse:
        """GetModelStatus of every version the replica has seen (or of one version)."""
        request = apis.GetModelStatusRequest(model_spec=model_spec(model, version))
        return cast(apis.GetModelStatusResponse, self._call(self._models.GetModelStatus, request, self.timeout_s))

    def status_later(self, model: str, version: int | None = None) -> Callable[[], apis.GetModelStatusResponse]:
        """Start GetModelStatus now, without waiting: call the result to get the response (or ServingError)."""
        request = apis.GetModelStatusRequest(model_spec=model_spec(model, version))
        future = self._models.GetModelStatus.future(request, timeout=self.timeout_s)

        def result() -> apis.GetModelStatusResponse:
            try:
                return cast(apis.GetModelStatusResponse, future.result())
            except grpc.RpcError as exc:
                raise self._error(exc) from None

        return result

    def metadata_later(self, model: str, label: str | None = None) -> Callable[[], apis.GetModelMetadataResponse]:
        """Start GetModelMetadata (by label, or unversioned) now; call the result for the response or ServingError."""
        request = apis.GetModelMetadataRequest(
            model_spec=model_spec(model, None, label), metadata_field=[SIGNATURE_DEF]
        )
        future = self._predictions.GetModelMetadata.future(request, timeout=self.timeout_s)

        def result() -> apis.GetModelMetadataResponse:
            try:
                return cast(apis.GetModelMetadataResponse, future.result())
            except grpc.RpcError as exc:
                raise self._error(exc) from None

        return result

    def predict_later(self, request: apis.PredictRequest, timeout_s: float) -> Callable[[], apis.PredictResponse]:
        """Start Predict now (the smoke test's golden request); call the result for the response or ServingError."""
        future = self._predictions.Predict.future(request, timeout=timeout_s)

        def result() -> apis.PredictResponse:
            try:
                return cast(apis.PredictResponse, future.result())
            except grpc.RpcError as exc:
                raise self._error(exc) from None

        return result

    def reload(self, config: apis.ModelServerConfig, timeout_s: float | None = None) -> None:
        """HandleReloadConfigRequest with the whole config; a DEADLINE_EXCEEDED does not mean it failed."""
        request = apis.ReloadConfigRequest(config=config)
        self._call(self._models.HandleReloadConfigRequest, request, timeout_s or self.timeout_s)

    def metadata(
        self, model: str, version: int | None = None, label: str | None = None
    ) -> apis.GetModelMetadataResponse:
        """GetModelMetadata(signature_def) of a version, a label, or (neither) the highest loaded version."""
        spec = model_spec(model, version, label)
        request = apis.GetModelMetadataRequest(model_spec=spec, metadata_field=[SIGNATURE_DEF])
        response = self._call(self._predictions.GetModelMetadata, request, self.timeout_s)
        return cast(apis.GetModelMetadataResponse, response)

    def _call(self, method: grpc.UnaryUnaryMultiCallable, request: object, timeout_s: float) -> object:
        try:
            return method(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.RpcError) -> ServingError:
        error = from_rpc_error(exc, self.replica)
        if error.code == "UNAVAILABLE" and self._on_unreachable is not None:
            self._on_unreachable(self.replica)  # it may come back restarted: forget what it served
        return error


def model_spec(model: str, version: int | None = None, label: str | None = None) -> apis.ModelSpec:
    spec = apis.ModelSpec(name=model)
    if version is not None:
        spec.version.value = version
    elif label is not None:
        spec.version_label = label
    return spec


class ChannelPool:
    """mTLS channels keyed by replica address, created on first use and closed when the replica goes away."""

    def __init__(
        self, tls: TlsSettings, rpc_timeout_s: float, on_unreachable: Callable[[str], None] | None = None
    ) -> None:
        self._credentials = _credentials(tls)
        self._on_unreachable = on_unreachable
        self._server_name = tls.server_name
        self._timeout_s = rpc_timeout_s
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        self._clients: dict[str, ReplicaClient] = {}

    def client(self, replica: str, tls_name: str | None = None) -> ReplicaClient:
        """The (cached) client of `replica`; `tls_name` is the name to verify when no server_name is set."""
        with self._lock:
            found = self._clients.get(replica)
            if found is None:
                channel = self._open(replica, self._server_name or tls_name)
                found = self._clients[replica] = ReplicaClient(replica, channel, self._timeout_s, self._on_unreachable)
                self._channels[replica] = channel
            return found

    def retain(self, replicas: Iterable[str]) -> None:
        """Close the channels of replicas that are no longer resolved (dns:/// targets shrink)."""
        keep = set(replicas)
        with self._lock:
            gone = [r for r in self._channels if r not in keep]
            for replica in gone:
                self._channels.pop(replica).close()
                self._clients.pop(replica, None)

    def close(self) -> None:
        self.retain(())

    def _open(self, replica: str, tls_name: str | None) -> grpc.Channel:
        options: list[tuple[str, str | int]] = list(_CHANNEL_OPTIONS)
        if tls_name:
            options.append(("grpc.ssl_target_name_override", tls_name))
        return grpc.secure_channel(replica, self._credentials, options=options)


def _credentials(tls: TlsSettings) -> grpc.ChannelCredentials:
    problems: list[str] = []
    ca = _read(tls.ca_cert, "ca_cert", problems)
    cert = _read(tls.client_cert, "client_cert", problems) if tls.client_cert else None
    key = _read(tls.client_key, "client_key", problems) if tls.client_key else None
    if problems:
        raise ConfigError("serving.tls", problems)
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def _read(path: Path, what: str, problems: list[str]) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.append(f"{what}: cannot read {path}: {exc.strerror or exc}")
        return None
    if b"-----BEGIN" not in data:
        problems.append(f"{what}: {path} is not a PEM file")
        return None
    return data
