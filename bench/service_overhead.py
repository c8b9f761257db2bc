"""What the service adds around a rollout: approve -> every replica verified, through `Service.handle`.

Same 10-replica devstack fleet over mTLS, a warm rollback (stable 3 -> 2 with 2 loaded), alternating
with the adapter alone (`GrpcFleet.rollout`, what bench/rollout_latency.py measures). The difference is the
database work of the use case: CAS claim + fleet lock + operation row, and the outcome + audit + outbox
transaction (SQLite, the default database).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.rollout_latency import KNOBS, MODELS_CACHE, POLL_S, state
from bot.core import commands
from bot.core.desired import FleetConfig
from bot.core.fleet import Outcome, ProgressEvent
from bot.core.policy import Identity, parse_policy
from bot.core.rollout import ChangeSpec, plan_rollout
from bot.devstack.certs import make_certs
from bot.devstack.fleet import DevFleet
from bot.devstack.savedmodels import ensure_demo_models
from bot.serving.config_proto import to_text
from bot.serving.fleet import GrpcFleet
from bot.settings import ModelSettings, ServingSettings, Settings, TlsSettings
from bot.usecases.context import Context
from bot.wiring import build_bot

POLICY = {
    "roles": {"operator": ["promote", "rollback"], "approver": ["approve", "reject"]},
    "members": {"U01ALICE": ["operator"], "U02BOB": ["approver"]},
    "approval_ttl": "1h",
}
ALICE, BOB = Context(Identity("U01ALICE"), frontend="bench"), Context(Identity("U02BOB"), frontend="bench")


def run(replicas: int = 10, runs: int = 20) -> dict[str, Any]:
    models = ensure_demo_models(MODELS_CACHE)
    with tempfile.TemporaryDirectory() as tmp:
        certs = make_certs(Path(tmp) / "certs")
        start = FleetConfig((state(str(models), [2, 3], 3),))
        knobs = {**KNOBS, "allow_version_labels_for_unavailable_models": True}
        with DevFleet(replicas, models.parent, certs, to_text(start), ready_timeout_s=300, **knobs) as dev:
            tls = TlsSettings(certs.ca, certs.bot_cert, certs.bot_key, "tf-serving")
            serving = ServingSettings(tuple(dev.targets), tls, None, 30.0, 120.0, POLL_S)
            settings = Settings(serving, {"fraud_detector": ModelSettings("fraud_detector", str(models), keep_warm=1)})
            fleet = GrpcFleet(serving)
            fleet.apply(start)
            bot = build_bot(settings, parse_policy(POLICY), f"sqlite:///{tmp}/bench.db", fleet=fleet)
            verified_s: list[float] = []
            service_s: list[float] = []
            adapter_s: list[float] = []
            try:
                for i in range(runs + 2):
                    target, back = (2, 3)
                    v, t = _through_service(bot, target, back, 2 * i + 1)
                    a = _adapter_only(fleet, bot)
                    if i >= 2:  # warm-up rounds
                        verified_s.append(v)
                        service_s.append(t)
                        adapter_s.append(a)
            finally:
                bot.close()
    verified_ms = statistics.median(verified_s) * 1000
    service_ms = statistics.median(service_s) * 1000
    adapter_ms = statistics.median(adapter_s) * 1000
    row = (
        f"warm rollback at {replicas} replicas, approve -> every replica verified: through the service "
        f"{verified_ms:.1f} ms (whole approve call incl. trim and audit {service_ms:.1f} ms), adapter alone "
        f"{adapter_ms:.1f} ms; service/adapter {verified_ms / adapter_ms:.2f} (median of {runs})"
    )
    return {
        "replicas": replicas,
        "runs": runs,
        "service_ms": round(service_ms, 2),
        "adapter_ms": round(adapter_ms, 2),
        "ratio": round(service_ms / adapter_ms, 3),
        "row": row,
    }


def _through_service(bot: Any, target: int, back: int, request_id: int) -> tuple[float, float]:
    """Roll back to `target` by request + approve; (time to every replica verified, whole approve call)."""
    bot.service.handle(ALICE, commands.Rollback("fraud_detector", target, reason="bench"))
    verified: list[float] = []

    def progress(event: ProgressEvent) -> None:
        if event.phase == "verify" and event.done == event.total and not verified:
            verified.append(time.perf_counter())

    started = time.perf_counter()
    reply = bot.service.handle(replace(BOB, progress=progress), commands.Approve(request_id))
    elapsed = time.perf_counter() - started
    assert reply.ok and verified, reply.text
    bot.service.handle(ALICE, commands.Promote("fraud_detector", back, reason="bench"))
    assert bot.service.handle(BOB, commands.Approve(request_id + 1)).ok
    return verified[0] - started, elapsed


def _adapter_only(fleet: GrpcFleet, bot: Any) -> float:
    """The same warm rollback with the adapter alone, then put the fleet back (untimed)."""
    with bot.db.uow(readonly=True) as uow:
        base = uow.desired.load()
    before = base.model("fraud_detector")
    plan = plan_rollout(before, ChangeSpec("fraud_detector", 2, keep_warm=1))
    started = time.perf_counter()
    result = fleet.rollout(plan, base, lambda config: None, lambda event: None)
    elapsed = time.perf_counter() - started
    assert result.outcome is Outcome.SUCCEEDED, result.message
    fleet.apply(base)  # back to what the database says (stable 3, versions 2 and 3)
    return elapsed


if __name__ == "__main__":
    print(run()["row"])
