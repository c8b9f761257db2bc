"""Predict and GetModelMetadata on the emulator: version resolution, signatures and error texts."""

from __future__ import annotations

import grpc
import pytest

from bot.devstack.serving.predict import score
from bot.serving.protos import tf_framework_pb2, tfs_apis_pb2
from tests.devstack_support import (
    MODEL,
    FleetFactory,
    StubsFactory,
    TfsStubs,
    config_text,
    model_entry,
    predict_request,
    rpc_error,
    spec,
    wait_until,
)

ROW = [0.5] * 20


@pytest.fixture
def stubs(fleet: FleetFactory, tfs: StubsFactory) -> TfsStubs:
    """One replica serving versions 1-4 with stable=2 and canary=3 (labels at start-up need the flag)."""
    config = config_text(model_entry(versions=[1, 2, 3, 4], labels={"stable": 2, "canary": 3}))
    replica = fleet(config, allow_version_labels_for_unavailable_models=True)
    connected = tfs(replica.targets[0])
    wait_until(lambda: set(connected.status().values()) == {"AVAILABLE"} and len(connected.status()) == 4)
    return connected


def _signatures(response: tfs_apis_pb2.GetModelMetadataResponse) -> tfs_apis_pb2.SignatureDefMap:
    signature_map = tfs_apis_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    return signature_map


@pytest.mark.parametrize(
    ("model_spec", "resolved"),
    [(spec(version=1), 1), (spec(label="stable"), 2), (spec(label="canary"), 3), (spec(), 4)],
)
def test_metadata_resolves_version_label_and_latest(
    stubs: TfsStubs, model_spec: tfs_apis_pb2.ModelSpec, resolved: int
) -> None:
    """The response names the resolved version (never the label) and packs the SavedModel's signature map."""
    response = stubs.metadata(model_spec)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == resolved
    assert response.model_spec.version_label == "" and response.model_spec.signature_name == ""
    assert response.metadata["signature_def"].type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = _signatures(response).signature_def
    assert set(signatures) == {"serving_default", "__saved_model_init_op"}
    features = signatures["serving_default"].inputs["features"]
    assert features.dtype == tf_framework_pb2.DT_FLOAT
    assert [d.size for d in features.tensor_shape.dim] == [-1, 32 if resolved == 4 else 20]
    assert [d.size for d in signatures["serving_default"].outputs["score"].tensor_shape.dim] == [-1, 1]


def _metadata_request(
    model_spec: tfs_apis_pb2.ModelSpec | None = None, fields: tuple[str, ...] = ("signature_def",)
) -> tfs_apis_pb2.GetModelMetadataRequest:
    request = tfs_apis_pb2.GetModelMetadataRequest(metadata_field=fields)
    if model_spec is not None:
        request.model_spec.CopyFrom(model_spec)
    return request


@pytest.mark.parametrize(
    ("metadata_request", "code", "details"),
    [
        (
            _metadata_request(spec(), ()),
            "INVALID_ARGUMENT",
            "GetModelMetadataRequest must specify at least one metadata_field",
        ),
        (_metadata_request(spec(), ("x",)), "INVALID_ARGUMENT", "Metadata field x is not supported"),
        (_metadata_request(spec(label="beta")), "INVALID_ARGUMENT", "Unrecognized servable version label: beta"),
        (_metadata_request(spec(version=8)), "NOT_FOUND", f"Servable not found for request: Specific({MODEL}, 8)"),
        (_metadata_request(spec("")), "INVALID_ARGUMENT", "ModelSpec has no name specified."),
        (_metadata_request(spec("nope")), "NOT_FOUND", "Servable not found for request: Latest(nope)"),
        (_metadata_request(None), "INVALID_ARGUMENT", "Missing ModelSpec"),
    ],
)
def test_metadata_errors(
    stubs: TfsStubs, metadata_request: tfs_apis_pb2.GetModelMetadataRequest, code: str, details: str
) -> None:
    """Each malformed or unresolvable GetModelMetadata request gets TF Serving's code and text."""
    error = rpc_error(lambda: stubs.prediction.GetModelMetadata(metadata_request, timeout=5))
    assert (error.code().name, error.details()) == (code, details)


def test_predict_reports_name_signature_and_resolved_version(stubs: TfsStubs) -> None:
    """The response spec carries the default signature name and the version that served; outputs are [batch, 1]."""
    response = stubs.predict(spec(label="stable"), [ROW, [1.0] * 20])
    assert (response.model_spec.name, response.model_spec.signature_name) == (MODEL, "serving_default")
    assert response.model_spec.version.value == 2
    scores = response.outputs["score"]
    assert [d.size for d in scores.tensor_shape.dim] == [2, 1]
    assert list(scores.float_val) == pytest.approx([score(ROW, 2), score([1.0] * 20, 2)])


def test_predict_output_depends_on_the_serving_version(stubs: TfsStubs) -> None:
    """The same input gives a different, reproducible answer per version, so tests can tell versions apart."""
    by_version = {v: stubs.predict(spec(version=v), [ROW]).outputs["score"].float_val[0] for v in (1, 2, 3)}
    assert len(set(by_version.values())) == 3
    assert stubs.predict(spec(version=1), [ROW]).outputs["score"].float_val[0] == by_version[1]


def test_predict_errors(stubs: TfsStubs) -> None:
    """Unknown signature, wrong input count and wrong dtype are refused with TF Serving's texts."""
    unknown = spec(label="stable")
    unknown.signature_name = "nope"
    error = rpc_error(lambda: stubs.predict(unknown, [ROW]))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    )

    empty = tfs_apis_pb2.PredictRequest(model_spec=spec())
    error = rpc_error(lambda: stubs.prediction.Predict(empty, timeout=5))
    assert error.details() == (
        "input size does not match signature: 0!=1 len({}) != len({features}). "
        "Sent extra: {}. Missing but required: {features}."
    )

    doubles = predict_request(spec(version=1), [ROW])
    doubles.inputs["features"].dtype = tf_framework_pb2.DT_DOUBLE
    doubles.inputs["features"].ClearField("float_val")
    doubles.inputs["features"].double_val.extend(ROW)
    error = rpc_error(lambda: stubs.prediction.Predict(doubles, timeout=5))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expects arg[0] to be float but double is provided",
    )


def test_incompatible_version_refuses_old_shaped_input(stubs: TfsStubs) -> None:
    """Version 4 expects 32 features: a 20-feature row sent to it is INVALID_ARGUMENT, while 32 features work."""
    error = rpc_error(lambda: stubs.predict(spec(version=4), [ROW]))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert stubs.predict(spec(version=4), [[0.1] * 32]).model_spec.version.value == 4
