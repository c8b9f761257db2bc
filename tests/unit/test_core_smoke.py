"""The golden-request smoke test's pure part: reading REST-style JSON and judging an answer (bot/core/smoke.py)."""

from __future__ import annotations

import pytest

from bot.core.signatures import TensorSpec
from bot.core.smoke import (
    ONLY,
    Array,
    GoldenFileError,
    GoldenRequest,
    Tensor,
    first_value,
    limited,
    parse_expect,
    parse_request,
    structure_problems,
    value_differences,
)

OUTPUTS = {"probability": TensorSpec("DT_FLOAT", (-1, 1))}


def answer(*values: float, alias: str = "probability", dtype: str = "DT_FLOAT") -> dict[str, Tensor]:
    return {alias: Tensor(dtype, (len(values), 1), tuple(values))}


def test_columnar_inputs_keep_their_aliases_and_shapes() -> None:
    """`{"inputs": {alias: nested list}}` gives one row-major array per alias, and the signature name."""
    inputs, signature = parse_request({"inputs": {"x": [[1, 2, 3], [4, 5, 6]], "flag": [True, False]}})
    assert inputs == {"x": Array((2, 3), (1, 2, 3, 4, 5, 6)), "flag": Array((2,), (True, False))}
    assert signature == "serving_default"


def test_row_format_stacks_named_instances() -> None:
    """`{"instances": [{alias: value}, ...]}` stacks each alias along a new first (batch) dimension."""
    inputs, _ = parse_request({"instances": [{"x": [1.0, 2.0]}, {"x": [3.0, 4.0]}], "signature_name": "s"})
    assert inputs == {"x": Array((2, 2), (1.0, 2.0, 3.0, 4.0))}


def test_unnamed_instances_are_the_only_input() -> None:
    """Bare-value rows (a single-input signature) are kept under the unnamed alias."""
    inputs, _ = parse_request({"instances": [[0.5] * 3]})
    assert inputs == {ONLY: Array((1, 3), (0.5, 0.5, 0.5))}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ([1, 2], "JSON object"),
        ({"inputs": {"x": [[1, 2], [3]]}}, "not rectangular"),
        ({"inputs": {"x": [1]}, "instances": [[1]]}, "exactly one of"),
        ({"instances": []}, "non-empty list"),
        ({"instances": [{"x": 1}, {"y": 2}]}, "same inputs"),
        ({"inputs": {"x": [None]}}, "NoneType is not a number"),
        ({"input": {"x": [1]}}, "unknown key 'input'"),
    ],
)
def test_bad_request_files_say_why(data: object, says: str) -> None:
    """A request file that cannot be sent is refused with the reason, never sent half-understood."""
    with pytest.raises(GoldenFileError, match=says):
        parse_request(data)


def test_expectations_for_any_and_for_one_version() -> None:
    """`outputs` applies to every version; `versions` entries override it for their version."""
    expect = parse_expect(
        {"outputs": {"probability": [[0.5]]}, "versions": {"2": {"predictions": [{"probability": [0.7]}]}}}
    )
    golden = GoldenRequest(inputs={"x": Array((1,), (1,))}, expect=expect)
    assert golden.expected_for(2) == {"probability": Array((1, 1), (0.7,))}
    assert golden.expected_for(3) == {"probability": Array((1, 1), (0.5,))}
    assert GoldenRequest(inputs={}, expect=None).expected_for(3) is None


def test_expectations_need_outputs() -> None:
    """An expect file without any outputs is refused, naming what it should hold."""
    with pytest.raises(GoldenFileError, match="no expected outputs"):
        parse_expect({"versions": {}})
    with pytest.raises(GoldenFileError, match="not a version number"):
        parse_expect({"versions": {"v2": {"outputs": [1]}}})


def test_values_within_tolerance_pass() -> None:
    """A difference no larger than the tolerance is no difference."""
    expected = {"probability": Array((1, 1), (0.69,))}
    assert value_differences(expected, answer(0.69009), 1e-4) == []


def test_a_value_beyond_tolerance_is_named_with_its_index() -> None:
    """The difference reads like `probability[0][0]=0.7311 (expected 0.6900 ± 0.0001)`."""
    expected = {"probability": Array((2, 1), (0.5, 0.69))}
    differences = value_differences(expected, answer(0.5, 0.7311), 1e-4)
    assert differences == ["probability[1][0]=0.7311 (expected 0.6900 ± 0.0001)"]


def test_unnamed_expected_output_matches_the_single_answer() -> None:
    """An unnamed expectation (`{"outputs": [[...]]}`) is compared with a single-output answer."""
    assert value_differences({ONLY: Array((1, 1), (0.25,))}, answer(0.25), 1e-6) == []


def test_missing_output_and_wrong_shape_are_differences() -> None:
    """No such output, or a different shape, is reported instead of comparing values."""
    assert value_differences({"score": Array((1, 1), (1.0,))}, answer(1.0), 1e-4) == [
        "no output 'score' (it answered probability)"
    ]
    assert value_differences({"probability": Array((1, 2), (1.0, 1.0))}, answer(1.0), 1e-4) == [
        "probability has shape [1, 1] (expected [1, 2])"
    ]


def test_strings_and_booleans_compare_exactly() -> None:
    """Non-numeric outputs must be equal; tolerance applies to numbers only."""
    got = {"label": Tensor("DT_STRING", (1,), ("fraud",)), "hit": Tensor("DT_BOOL", (1,), (True,))}
    expected = {"label": Array((1,), ("legit",)), "hit": Array((1,), (True,))}
    assert value_differences(expected, got, 1.0) == ["label[0]='fraud' (expected 'legit')"]


def test_structure_check_without_expected_values() -> None:
    """Without `expect`, the answer must have the signature's output keys, dtypes and shapes, one row per input."""
    assert structure_problems(OUTPUTS, answer(0.1, 0.2), batch=2) == []
    assert structure_problems(OUTPUTS, answer(0.1, dtype="DT_DOUBLE"), batch=1) == [
        "probability is double (the signature says float)"
    ]
    wrong_shape = {"probability": Tensor("DT_FLOAT", (1, 2), (0.1, 0.2))}
    assert structure_problems(OUTPUTS, wrong_shape) == [
        "probability has shape [1, 2] (the signature says float[None, 1])"
    ]
    assert structure_problems(OUTPUTS, answer(0.1), batch=2) == ["probability has 1 rows for a batch of 2"]
    assert structure_problems(OUTPUTS, answer(0.1, alias="score")) == [
        "no output 'probability'",
        "an output 'score' the signature does not declare",
    ]


def test_long_lists_of_differences_are_limited() -> None:
    """A replica that is wrong everywhere names the first differences and counts the rest."""
    assert limited([f"d{i}" for i in range(5)]) == "d0; d1; d2; and 2 more"
    assert first_value(answer(0.5, 0.25), 1e-4) == "probability[0][0]=0.5000, …"
