"""gRPC servicers: ModelService and PredictionService, converting protos to core calls and TF errors to gRPC."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, NoReturn

from bot.devstack.serving.core import ServerCore
from bot.devstack.serving.monitor import StateMonitor
from bot.devstack.serving.predict import predict
from bot.devstack.serving.status import Code, Status, TfError, grpc_code, grpc_details
from bot.serving.protos import tfs_apis_pb2, tfs_apis_pb2_grpc

log = logging.getLogger("devstack.services")

SIGNATURE_DEF_FIELD = "signature_def"


def _abort(context: Any, status: Status) -> NoReturn:
    """ToGRPCStatus: same code number, message cut at 1024 characters."""
    context.abort(grpc_code(status.code), grpc_details(status.message))
    raise AssertionError("context.abort returned")  # pragma: no cover - grpc always raises


def model_status(
    monitor: StateMonitor, request: tfs_apis_pb2.GetModelStatusRequest
) -> tfs_apis_pb2.GetModelStatusResponse:
    """get_model_status_impl.cc: one version, or every version ever seen (highest first); labels are ignored."""
    if not request.HasField("model_spec"):
        raise TfError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
    spec = request.model_spec
    if spec.HasField("version"):
        state = monitor.get(spec.name, spec.version.value)
        if state is None:
            raise TfError(Code.NOT_FOUND, f"Could not find version {spec.version.value} of model {spec.name}")
        states = [state]
    else:
        states = monitor.versions(spec.name)
        if not states:
            raise TfError(Code.NOT_FOUND, f"Could not find any versions of model {spec.name}")
    response = tfs_apis_pb2.GetModelStatusResponse()
    for state in states:
        entry = response.model_version_status.add(version=state.version, state=int(state.state))
        entry.status.error_code = state.health.code
        if not state.health.ok:
            entry.status.error_message = state.health.message
    return response


class ModelService(tfs_apis_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: ServerCore, monitor: StateMonitor) -> None:
        self._core = core
        self._monitor = monitor

    def GetModelStatus(self, request: tfs_apis_pb2.GetModelStatusRequest, context: Any) -> Any:
        try:
            return model_status(self._monitor, request)
        except TfError as error:
            _abort(context, error.status)

    def HandleReloadConfigRequest(self, request: tfs_apis_pb2.ReloadConfigRequest, context: Any) -> Any:
        # The deadline and cancellation are deliberately ignored, as upstream: a reload the client gave up on
        # carries on and may still be applied.
        try:
            if request.config.WhichOneof("config") != "model_config_list":
                raise TfError(
                    Code.INVALID_ARGUMENT,
                    "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                    "Only ModelConfigList is currently supported",
                )
            for index, config in enumerate(request.config.model_config_list.config):
                log.info(
                    "Config entry index: %d path: %s name: %s platform: %s",
                    index,
                    config.base_path,
                    config.name,
                    config.model_platform,
                )
            self._core.reload_config(request.config)
        except TfError as error:
            log.error("ReloadConfig failed: %s", error.status.message)
            _abort(context, error.status)
        response = tfs_apis_pb2.ReloadConfigResponse()
        response.status.error_code = Code.OK
        # No TSL metrics registry here: every requested metric is "not found", which upstream counts as 0.
        for name in request.metric_names:
            response.metric.add(name=name, int64_value_increase=0)
        return response


class PredictionService(tfs_apis_pb2_grpc.PredictionServiceServicer):
    def __init__(
        self, core: ServerCore, offsets: Mapping[tuple[str, int], float] | None = None, delay_seconds: float = 0.0
    ) -> None:
        self._core = core
        self._offsets = dict(offsets or {})  # --devstack_predict_offset
        self._delay_seconds = delay_seconds  # --devstack_predict_delay_seconds

    def GetModelMetadata(self, request: tfs_apis_pb2.GetModelMetadataRequest, context: Any) -> Any:
        try:
            return self._metadata(request)
        except TfError as error:
            _abort(context, error.status)

    def Predict(self, request: tfs_apis_pb2.PredictRequest, context: Any) -> Any:
        try:
            if not request.HasField("model_spec"):
                raise TfError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
            servable = self._core.servable(request.model_spec)
            self._stall(context)
            return predict(servable, request, self._offsets.get((servable.model, servable.version), 0.0))
        except TfError as error:
            _abort(context, error.status)

    def _stall(self, context: Any) -> None:
        """Emulator knob: a slow or stalled model. Unlike a reload, Predict honours the client's deadline (the
        session run gets RunOptions.timeout_in_ms from it, --enforce_session_run_timeout defaults to true): the
        handler gives up at the deadline with DEADLINE_EXCEEDED instead of holding an RPC thread for the delay."""
        if self._delay_seconds <= 0:
            return
        remaining = context.time_remaining()
        if remaining is not None and remaining < self._delay_seconds:
            time.sleep(max(remaining, 0.0))
            raise TfError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded")
        time.sleep(self._delay_seconds)

    def _metadata(self, request: tfs_apis_pb2.GetModelMetadataRequest) -> tfs_apis_pb2.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            raise TfError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
        if not request.metadata_field:
            raise TfError(Code.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise TfError(Code.INVALID_ARGUMENT, f"Metadata field {field} is not supported")
        servable = self._core.servable(request.model_spec)
        signature_map = tfs_apis_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response = tfs_apis_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.model
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response
