"""serving_default compatibility (core/signatures.py) and its conversion from SignatureDef protos."""

from __future__ import annotations

from bot.core.signatures import Signature, TensorSpec, compatibility_problems, shapes_compatible
from bot.serving.convert import signature_of
from bot.serving.protos import tf_framework_pb2 as fw
from tests.savedmodel_files import signature_def, tensor_info

F = "DT_FLOAT"


def sig(inputs: dict[str, TensorSpec], outputs: dict[str, TensorSpec] | None = None, **kw: object) -> Signature:
    method = str(kw.get("method", "tensorflow/serving/predict"))
    defaults = frozenset(kw.get("defaults", ()))  # type: ignore[call-overload]
    return Signature(method, inputs, outputs or {"y": TensorSpec(F, (-1, 1))}, defaults)


BASE = sig({"x": TensorSpec(F, (-1, 20))})


def test_identical_signatures_are_compatible() -> None:
    """A signature is compatible with itself."""
    assert compatibility_problems(BASE, BASE) == []


def test_dtype_change_is_reported() -> None:
    """A float input that becomes int64 breaks clients, and the problem says from what to what."""
    problems = compatibility_problems(BASE, sig({"x": TensorSpec("DT_INT64", (-1, 20))}))
    assert problems == ["input 'x' changed from float[None, 20] to int64[None, 20]"]


def test_shape_change_is_reported() -> None:
    """A different feature width is incompatible."""
    problems = compatibility_problems(BASE, sig({"x": TensorSpec(F, (-1, 21))}))
    assert len(problems) == 1 and "x" in problems[0]


def test_unknown_dimensions_and_rank_are_compatible() -> None:
    """-1 matches any size and an unknown rank matches any shape."""
    assert compatibility_problems(BASE, sig({"x": TensorSpec(F, (-1, -1))})) == []
    assert compatibility_problems(BASE, sig({"x": TensorSpec(F, None)})) == []
    assert not shapes_compatible((-1, 20), (-1, 20, 1))


def test_missing_input_and_output_are_reported() -> None:
    """Removing an input clients send, or an output they read, is incompatible."""
    target = sig({"z": TensorSpec(F, (-1, 20))}, {"other": TensorSpec(F, (-1, 1))})
    problems = compatibility_problems(BASE, target)
    assert "input 'x' is missing" in problems
    assert "output 'y' is missing" in problems
    assert "new required input 'z'" in problems


def test_new_input_with_default_is_compatible() -> None:
    """An added input is fine when the SignatureDef gives it a default."""
    target = sig({"x": TensorSpec(F, (-1, 20)), "t": TensorSpec(F, ())}, defaults={"t"})
    assert compatibility_problems(BASE, target) == []


def test_method_change_is_reported() -> None:
    """predict -> classify changes the API clients call."""
    problems = compatibility_problems(BASE, sig({"x": TensorSpec(F, (-1, 20))}, method="tensorflow/serving/classify"))
    assert problems and "method" in problems[0]


def test_describe_is_readable() -> None:
    """describe() prints dtype and shape the way an engineer reads them in Slack."""
    assert BASE.describe() == "(x: float[None, 20]) -> (y: float[None, 1])"


def test_signature_def_conversion_ignores_tensor_names() -> None:
    """Graph tensor names change between exports and must not make two signatures differ."""
    a = signature_of(signature_def({"x": tensor_info("serving_default_x:0")}))
    b = signature_of(signature_def({"x": tensor_info("input_1:0")}))
    assert a == b
    assert a.inputs["x"] == TensorSpec(F, (-1, 20))


def test_signature_def_conversion_of_unknown_rank_and_defaults() -> None:
    """unknown_rank becomes shape None and `defaults` keys become the defaulted inputs."""
    proto = signature_def({"x": tensor_info("x:0", dims=None)})
    proto.defaults["x"].dtype = fw.DT_FLOAT
    converted = signature_of(proto)
    assert converted.inputs["x"].shape is None
    assert converted.defaults == frozenset({"x"})
