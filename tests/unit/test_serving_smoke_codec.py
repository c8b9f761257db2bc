"""Golden arrays <-> TensorProto in the serving adapter (bot/serving/smoke.py), with the signature's dtypes."""

from __future__ import annotations

import struct

import pytest

from bot.core.errors import ModelbotError
from bot.core.signatures import Signature, TensorSpec
from bot.core.smoke import Array, GoldenRequest
from bot.serving.protos import tf_framework_pb2 as framework
from bot.serving.smoke import decode, encode, request_problems


def test_numbers_are_encoded_with_the_signature_dtype() -> None:
    """Whole numbers become float_val for a float input, and stay int64_val for an int64 one."""
    floats, ints = framework.TensorProto(), framework.TensorProto()
    encode(Array((1, 2), (1, 2.5)), "DT_FLOAT", "x", floats)
    encode(Array((2,), (7, 8)), "DT_INT64", "ids", ints)
    assert (floats.dtype, [d.size for d in floats.tensor_shape.dim], list(floats.float_val)) == (
        framework.DT_FLOAT,
        [1, 2],
        [1.0, 2.5],
    )
    assert list(ints.int64_val) == [7, 8]


def test_values_of_the_wrong_kind_are_refused() -> None:
    """A fraction for an int input, or a string for a float input, is a golden-file problem, never sent."""
    with pytest.raises(ModelbotError, match="whole numbers"):
        encode(Array((1,), (1.5,)), "DT_INT32", "ids", framework.TensorProto())
    with pytest.raises(ModelbotError, match="numbers"):
        encode(Array((1,), ("a",)), "DT_FLOAT", "x", framework.TensorProto())


def test_decode_reads_tensor_content_and_repeated_fields() -> None:
    """Answers in tensor_content (packed) and in float_val (a short list repeats its last value) both decode."""
    packed = framework.TensorProto(dtype=framework.DT_FLOAT, tensor_content=struct.pack("<2f", 0.5, 0.25))
    packed.tensor_shape.dim.add(size=2)
    assert decode(packed).values == (0.5, 0.25)
    short = framework.TensorProto(dtype=framework.DT_FLOAT, float_val=[0.75])
    short.tensor_shape.dim.add(size=3)
    assert decode(short).values == (0.75, 0.75, 0.75)
    words = framework.TensorProto(dtype=framework.DT_STRING, string_val=[b"fraud"])
    words.tensor_shape.dim.add(size=1)
    assert decode(words).values == ("fraud",)


SIGNATURE = Signature(
    "tensorflow/serving/predict",
    {"features": TensorSpec("DT_FLOAT", (-1, 20))},
    {"score": TensorSpec("DT_FLOAT", (-1, 1))},
)


def test_request_problems_name_what_a_rollout_would_fail_on() -> None:
    """From the signature alone: a request of the right shape fits; a wrong width, an unknown input and an expected
    output the version does not have are each named (the rollout refuses such a request before sending it)."""
    fits = GoldenRequest({"features": Array((2, 20), (0.5,) * 40)}, expect={"3": {"score": Array((2, 1), (1, 1))}})
    assert request_problems(fits, SIGNATURE, 3) == []
    wide = GoldenRequest({"features": Array((1, 32), (0.5,) * 32)})
    assert request_problems(wide, SIGNATURE, 3) == [
        "the golden request's input 'features' has shape [1, 32]; v3 takes float[None, 20]"
    ]
    unknown = GoldenRequest({"feature": Array((1, 20), (0.5,) * 20)})
    assert request_problems(unknown, SIGNATURE, 3) == [
        "the golden request's input 'feature' is not one of v3's inputs (features)"
    ]
    other_output = GoldenRequest(fits.inputs, expect={"*": {"probability": Array((2, 1), (1, 1))}})
    assert request_problems(other_output, SIGNATURE, 3) == [
        "the expected output 'probability' is not one of v3's outputs (score)"
    ]
