"""`--devstack_predict_offset MODEL:VERSION=OFFSET`: one replica answers one version differently (smoke tests)."""

from __future__ import annotations

import grpc
import pytest

from bot.devstack.serving.flags import parse_flags
from bot.devstack.serving.predict import score
from tests.devstack_support import (
    FleetFactory,
    StubsFactory,
    config_text,
    model_entry,
    predict_request,
    spec,
    wait_until,
)

ROW = [0.5] * 20


def test_offset_flag_parses_and_rejects_garbage() -> None:
    """The knob is repeatable MODEL:VERSION=OFFSET; anything else is a usage error, like the other knobs."""
    flags = parse_flags(["--devstack_predict_offset=m:2=0.05", "--devstack_predict_offset", "m:3=-1"])
    assert flags.devstack_predict_offset == frozenset({("m", 2, 0.05), ("m", 3, -1.0)})
    with pytest.raises(SystemExit):
        parse_flags(["--devstack_predict_offset=m:2"])


def test_only_the_skewed_replica_and_version_answer_differently(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """Replica 1 adds the offset to v2's answers only; replica 0 and v3 keep the deterministic formula."""
    per_replica = {1: {"devstack_predict_offset": ["fraud_detector:2=0.25"]}}
    dev = fleet(config_text(model_entry(versions=[2, 3])), 2, per_replica=per_replica)
    plain, skewed = (tfs(t) for t in dev.targets)
    for stubs in (plain, skewed):
        wait_until(lambda s=stubs: {s.status().get(v) for v in (2, 3)} == {"AVAILABLE"})

    def answer(stubs: object, version: int) -> float:
        return float(stubs.predict(spec(version=version), [ROW]).outputs["score"].float_val[0])  # type: ignore[attr-defined]

    assert answer(plain, 2) == pytest.approx(score(ROW, 2))
    assert answer(skewed, 2) == pytest.approx(score(ROW, 2) + 0.25)
    assert answer(skewed, 3) == pytest.approx(score(ROW, 3))


def test_a_slow_predict_answers_late_or_fails_at_the_deadline(fleet: FleetFactory, tfs: StubsFactory) -> None:
    """`--devstack_predict_delay_seconds`: a deadline beyond the delay gets the normal answer; a shorter one gets
    DEADLINE_EXCEEDED (Predict honours deadlines, unlike a reload), and the replica keeps answering other calls."""
    dev = fleet(config_text(model_entry(versions=[2])), 1, devstack_predict_delay_seconds=1.0)
    stubs = tfs(dev.targets[0])
    wait_until(lambda: stubs.status().get(2) == "AVAILABLE")
    late = stubs.prediction.Predict(predict_request(spec(version=2), [ROW]), timeout=10)
    assert late.outputs["score"].float_val[0] == pytest.approx(score(ROW, 2))
    with pytest.raises(grpc.RpcError) as refused:
        stubs.prediction.Predict(predict_request(spec(version=2), [ROW]), timeout=0.3)
    assert refused.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert stubs.status() == {2: "AVAILABLE"}
