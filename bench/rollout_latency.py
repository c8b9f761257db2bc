"""Rollback latency through the bot vs. the raw-gRPC floor, on 1, 10 and 50 devstack replicas over mTLS.

Latency = request -> every replica verified (the label resolves to the target everywhere); the whole call
(including the trim reload of a cold rollback) is reported too. Warm: stable 3 -> 2 with 2 kept loaded.
Cold: stable 3 -> 1 with 1 not loaded. Bot and floor runs alternate (ABAB, then BABA) from the same
reset state, so machine noise lands on both sides; medians are reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.raw_floor import RawFleet
from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.fleet import Outcome, ProgressEvent
from bot.core.rollout import ChangeSpec, plan_rollout
from bot.devstack.certs import DevCerts, make_certs
from bot.devstack.fleet import DevFleet
from bot.devstack.savedmodels import DEMO_MODEL, ensure_demo_models
from bot.serving.config_proto import to_proto, to_text
from bot.serving.fleet import GrpcFleet
from bot.serving.protos import tfs_apis_pb2 as apis
from bot.settings import ServingSettings, TlsSettings

ROOT = Path(__file__).resolve().parent.parent
MODELS_CACHE = ROOT / ".devstack" / "test-cache" / "models"  # shared with the tests: exported once
POLL_S = 0.02
# Emulator knobs: real-server-like manage loop, a quick filesystem poll and load so cold runs stay short.
KNOBS: dict[str, object] = {
    "file_system_poll_wait_seconds": 0.2,
    "devstack_manage_interval_seconds": 0.05,
    "devstack_load_seconds": 0.1,
}


@dataclass
class Samples:
    bot_verified: list[float] = field(default_factory=list)
    bot_total: list[float] = field(default_factory=list)
    floor_verified: list[float] = field(default_factory=list)
    floor_total: list[float] = field(default_factory=list)

    def summary(self, replicas: int, kind: str) -> dict[str, Any]:
        def ms(values: list[float]) -> float:
            return round(statistics.median(values) * 1000, 2)

        return {
            "replicas": replicas,
            "kind": kind,
            "runs": len(self.bot_verified),
            "bot_verified_ms": ms(self.bot_verified),
            "floor_verified_ms": ms(self.floor_verified),
            "ratio_verified": round(ms(self.bot_verified) / ms(self.floor_verified), 3),
            "bot_total_ms": ms(self.bot_total),
            "floor_total_ms": ms(self.floor_total),
            "ratio_total": round(ms(self.bot_total) / ms(self.floor_total), 3),
        }


def state(base_path: str, versions: list[int], stable: int | None) -> ModelState:
    labels = (("stable", stable),) if stable is not None else ()
    policy = VersionPolicy.specific(versions)
    return ModelState(name=DEMO_MODEL, base_path=base_path, policy=policy, labels=labels, stable_history=(2,))


def reload_request(config: FleetConfig) -> apis.ReloadConfigRequest:
    return apis.ReloadConfigRequest(config=to_proto(config))


def other_models(base_path: str, count: int) -> tuple[ModelState, ...]:
    """`count` more models in the config (v3 of the demo model each, no label): a production-sized models.config,
    which every ReloadConfig carries whole (TF Serving has no per-model reload)."""
    return tuple(
        ModelState(name=f"model_{i:04d}", base_path=base_path, policy=VersionPolicy.specific([3])) for i in range(count)
    )


class Bench:
    """One fleet of n replicas, the bot's GrpcFleet and the raw floor on it, and the prebuilt requests.
    `others`: that many more models in every config sent (the benchmarked model is the first)."""

    def __init__(self, n: int, certs: DevCerts, models: Path, others: int = 0) -> None:
        self.base_path = str(models)
        self.others = other_models(self.base_path, others)
        self.start_config = FleetConfig(models=(state(self.base_path, [2, 3], None), *self.others))
        # The manager loads inline, one servable after another: 1,000 models at 0.1 s would take minutes to start.
        knobs = {**KNOBS, "devstack_load_seconds": 0.002} if others else KNOBS
        self.dev = DevFleet(n, models.parent, certs, to_text(self.start_config), ready_timeout_s=600, **knobs)
        self.dev.start()
        tls = TlsSettings(certs.ca, certs.bot_cert, certs.bot_key, "tf-serving")
        settings = ServingSettings(tuple(self.dev.targets), tls, None, 30.0, 120.0, POLL_S)
        self.fleet = GrpcFleet(settings)
        read = lambda p: p.read_bytes()  # noqa: E731
        self.raw = RawFleet(
            self.dev.targets, read(certs.ca), read(certs.bot_key), read(certs.bot_cert), "tf-serving", POLL_S
        )
        self.base = FleetConfig(models=(state(self.base_path, [2, 3], 3), *self.others))
        self._requests()

    def _requests(self) -> None:
        def fc(versions: list[int], stable: int | None) -> FleetConfig:
            return FleetConfig(models=(state(self.base_path, versions, stable), *self.others))

        self.req_base = reload_request(self.base)
        self.req_warm_switch = reload_request(fc([2, 3], 2))
        self.req_cold_load = reload_request(fc([1, 2, 3], 3))
        self.req_cold_switch = reload_request(fc([1, 2, 3], 1))
        self.req_cold_trim = reload_request(fc([1, 3], 1))
        spec = apis.ModelSpec(name=DEMO_MODEL, version_label="stable")
        self.verify = apis.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
        status_spec = apis.ModelSpec(name=DEMO_MODEL)
        status_spec.version.value = 1
        self.status_v1 = apis.GetModelStatusRequest(model_spec=status_spec)

    def close(self) -> None:
        self.fleet.close()
        self.raw.close()
        self.dev.close()

    def prepare(self) -> None:
        self._wait(lambda st: {2, 3} <= st)
        self.raw.reload_all(self.req_base)

    # --- the measured runs ---------------------------------------------------------------------------
    def bot(self, target: int) -> tuple[float, float]:
        verified_at: list[float] = []

        def sink(e: ProgressEvent) -> None:
            if e.phase == "verify" and e.state == "verified" and e.done == e.total:
                verified_at.append(time.perf_counter())

        t0 = time.perf_counter()
        plan = plan_rollout(self.base.model(DEMO_MODEL), ChangeSpec(DEMO_MODEL, target, keep_warm=1))  # type: ignore[arg-type]
        result = self.fleet.rollout(plan, self.base, lambda c: None, sink)
        t1 = time.perf_counter()
        if result.outcome is not Outcome.SUCCEEDED or not verified_at:
            raise RuntimeError(f"bot rollout failed: {result.message}")
        return verified_at[0] - t0, t1 - t0

    def floor_warm(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        self.raw.switch(self.req_warm_switch, self.verify, 2)
        t1 = time.perf_counter()
        return t1 - t0, t1 - t0

    def floor_cold(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        self.raw.load(self.req_cold_load, self.status_v1)
        self.raw.switch(self.req_cold_switch, self.verify, 1)
        t1 = time.perf_counter()
        self.raw.reload_all(self.req_cold_trim)
        return t1 - t0, time.perf_counter() - t0

    # --- untimed resets --------------------------------------------------------------------------------
    def reset_warm(self) -> None:
        self.raw.reload_all(self.req_base)

    def reset_cold(self) -> None:
        """Back to {2, 3} stable=3 with version 1 unloaded everywhere, so the next cold run really loads."""
        self.raw.reload_all(self.req_base)
        self._wait(lambda st: {2, 3} <= st and 1 not in st, unloaded=1)

    def _wait(self, ok: Callable[[set[int]], bool], unloaded: int | None = None, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            statuses = self.fleet.model_status(DEMO_MODEL)
            settled = all(s.state_of(unloaded) in (None, "END") for s in statuses) if unloaded else True
            if settled and all(s.error is None and ok(set(s.available())) for s in statuses):
                return
            time.sleep(0.05)
        raise TimeoutError("fleet did not settle")


def measure(bench: Bench, kind: str, runs: int, warmup: int = 2) -> Samples:
    samples = Samples()
    if kind == "warm":
        bot, floor, reset = (lambda: bench.bot(2)), bench.floor_warm, bench.reset_warm
    else:
        bot, floor, reset = (lambda: bench.bot(1)), bench.floor_cold, bench.reset_cold
    for i in range(warmup + runs):
        order = [("bot", bot), ("floor", floor)] if i % 2 == 0 else [("floor", floor), ("bot", bot)]
        for side, run in order:
            verified, total = run()
            reset()
            if i >= warmup:
                getattr(samples, f"{side}_verified").append(verified)
                getattr(samples, f"{side}_total").append(total)
    return samples


def run(
    replica_counts: list[int], warm_runs: int, cold_runs: int, log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Every (replica count, warm/cold) row, with bot and floor medians side by side."""
    models = ensure_demo_models(MODELS_CACHE)
    rows = []
    with tempfile.TemporaryDirectory(prefix="modelbot-bench-") as tmp:
        certs = make_certs(Path(tmp) / "certs")
        for n in replica_counts:
            log(f"starting {n} emulator replicas ...")
            bench = Bench(n, certs, models)
            try:
                bench.prepare()
                for kind, runs in (("warm", warm_runs), ("cold", cold_runs)):
                    rows.append(measure(bench, kind, runs).summary(n, kind))
                    log(f"  {rows[-1]}")
            finally:
                bench.close()
    return rows
