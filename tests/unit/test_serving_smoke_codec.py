"""Golden arrays <-> TensorProto in the serving adapter (bot/serving/smoke.py), with the signature's dtypes."""

from __future__ import annotations

import struct

import pytest

from bot.core.errors import ModelbotError
from bot.core.smoke import Array
from bot.serving.protos import tf_framework_pb2 as framework
from bot.serving.smoke import decode, encode


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
