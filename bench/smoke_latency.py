"""What the golden-request smoke test adds to a warm rollback at 10 devstack replicas over mTLS.

Same fleet, same GrpcFleet, same reset between runs (bench/rollout_latency.py's Bench): a warm rollback (stable
3 -> 2, 2 kept loaded) with the model's smoke test in the plan and without it, alternating (ABAB, then BABA) so
machine noise lands on both sides; medians of request -> every replica verified. Goal: with <= 1.2x without.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.rollout_latency import MODELS_CACHE, Bench
from bot.core.fleet import Outcome, ProgressEvent
from bot.core.rollout import ChangeSpec, plan_rollout
from bot.core.smoke import GoldenRequest, parse_expect, parse_request
from bot.devstack.certs import make_certs
from bot.devstack.savedmodels import DEMO_MODEL, ensure_demo_models
from bot.devstack.smoke_files import write_golden_files

GOAL_RATIO = 1.2
REPLICAS = 10


def golden(directory: Path) -> GoldenRequest:
    request, expect = write_golden_files(directory)
    inputs, signature = parse_request(json.loads(request.read_text()))
    return GoldenRequest(inputs, parse_expect(json.loads(expect.read_text())), signature_name=signature)


def warm(bench: Bench, smoke: GoldenRequest | None) -> float:
    """One warm rollback 3 -> 2; seconds until every replica is verified."""
    verified_at: list[float] = []

    def sink(e: ProgressEvent) -> None:
        if e.phase == "verify" and e.state == "verified" and e.done == e.total:
            verified_at.append(time.perf_counter())

    t0 = time.perf_counter()
    before = bench.base.model(DEMO_MODEL)
    assert before is not None
    plan = plan_rollout(before, ChangeSpec(DEMO_MODEL, 2, keep_warm=1, smoke=smoke))
    result = bench.fleet.rollout(plan, bench.base, lambda c: None, sink)
    if result.outcome is not Outcome.SUCCEEDED or not verified_at:
        raise RuntimeError(f"rollout failed: {result.message}")
    if smoke is not None and "smoke test: answered as expected" not in result.replicas[0].detail:
        raise RuntimeError(f"the smoke test did not run: {result.replicas[0].detail}")
    return verified_at[0] - t0


def rpc_round(bench: Bench) -> float:
    """One GetModelMetadata to every replica at once: the cost of any extra round trip on this machine."""
    clients = [bench.fleet._client(r) for r in bench.fleet.replicas()]
    t0 = time.perf_counter()
    pending = [c.metadata_later(DEMO_MODEL, "stable") for c in clients]
    for result in pending:
        result()
    return time.perf_counter() - t0


def run(runs: int = 30, warmup: int = 3, log: Callable[[str], None] = print, others: int = 0) -> dict[str, Any]:
    """Median warm-rollback latency with and without the smoke test at 10 replicas, and their ratio; `others`: that
    many more models in the config every reload carries (a production-sized models.config)."""
    models = ensure_demo_models(MODELS_CACHE)
    samples: dict[str, list[float]] = {"with": [], "without": [], "round": []}
    with tempfile.TemporaryDirectory(prefix="modelbot-bench-smoke-") as tmp:
        certs = make_certs(Path(tmp) / "certs")
        smoke = golden(Path(tmp) / "smoke")
        log(f"starting {REPLICAS} emulator replicas for the smoke test benchmark ({1 + others} models) ...")
        bench = Bench(REPLICAS, certs, models, others)
        try:
            bench.prepare()
            for i in range(warmup + runs):
                order = [("with", smoke), ("without", None)] if i % 2 == 0 else [("without", None), ("with", smoke)]
                for side, golden_request in order:
                    seconds = warm(bench, golden_request)
                    bench.reset_warm()
                    if i >= warmup:
                        samples[side].append(seconds)
                samples["round"].append(rpc_round(bench))
        finally:
            bench.close()
    with_ms = round(statistics.median(samples["with"]) * 1000, 2)
    without_ms = round(statistics.median(samples["without"]) * 1000, 2)
    ratio = round(with_ms / without_ms, 3)
    round_ms = round(statistics.median(samples["round"]) * 1000, 2)
    row = {
        "replicas": REPLICAS,
        "models_in_config": 1 + others,
        "runs": runs,
        "warm_with_smoke_ms": with_ms,
        "warm_without_smoke_ms": without_ms,
        "ratio": ratio,
        "one_rpc_round_ms": round_ms,
        "goal": GOAL_RATIO,
        "met": ratio <= GOAL_RATIO,
    }
    log(f"  {row}")
    return row


def line(row: dict[str, Any]) -> str:
    return (
        f"  {row['replicas']} replicas, {row['models_in_config']} model(s) in the config, {row['runs']} runs:"
        f" warm rollback {row['warm_without_smoke_ms']:.1f} ms,"
        f" with the smoke test {row['warm_with_smoke_ms']:.1f} ms -> {row['ratio']:.2f}x"
        f" (goal <= {row['goal']}x: {'met' if row['met'] else 'NOT met'}); one RPC round to every replica costs"
        f" {row['one_rpc_round_ms']:.1f} ms here, and the smoke test is one such round (Predict) before the switch"
    )


if __name__ == "__main__":
    print(line(run()))
    print(line(run(runs=10, others=999)))
