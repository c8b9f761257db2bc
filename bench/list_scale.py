"""`/model list` at 1,000 models x 3 replicas, through the service, beside the floor: the same GetModelStatus and
GetModelMetadata calls (one of each per model per replica) made directly as gRPC futures, all in flight at once.

Every model is a copy of the demo fraud_detector config entry pointing at the same base path (TF Serving allows
that); the bot adopts the fleet's models.config at bootstrap, as it would a real fleet's.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.raw_floor import RawFleet
from bench.rollout_latency import KNOBS, MODELS_CACHE, POLL_S, state
from bot.core import commands
from bot.core.desired import FleetConfig
from bot.core.policy import Identity, parse_policy
from bot.devstack.certs import make_certs
from bot.devstack.fleet import DevFleet
from bot.devstack.savedmodels import ensure_demo_models
from bot.serving.config_proto import to_text, write_model_config_file
from bot.serving.fleet import GrpcFleet
from bot.serving.protos import tfs_apis_pb2 as apis
from bot.settings import ModelSettings, ServingSettings, Settings, TlsSettings
from bot.usecases.context import Context
from bot.wiring import build_bot

POLICY = {"roles": {"viewer": ["list"]}, "members": {"U01ALICE": ["viewer"]}, "approval_ttl": "1h"}
ALICE = Context(Identity("U01ALICE"), frontend="bench")


def run(models: int = 1000, replicas: int = 3, runs: int = 5) -> dict[str, Any]:
    base = ensure_demo_models(MODELS_CACHE)
    names = [f"model_{i:04d}" for i in range(models)]
    template = state(str(base), [3], 3)
    config = FleetConfig(tuple(replace(template, name=n) for n in names))
    with tempfile.TemporaryDirectory() as tmp:
        certs = make_certs(Path(tmp) / "certs")
        knobs = {**KNOBS, "allow_version_labels_for_unavailable_models": True}
        with DevFleet(replicas, base.parent, certs, to_text(config), ready_timeout_s=600, **knobs) as dev:
            tls = TlsSettings(certs.ca, certs.bot_cert, certs.bot_key, "tf-serving")
            config_file = Path(tmp) / "models.config"
            write_model_config_file(config_file, config)
            serving = ServingSettings(tuple(dev.targets), tls, config_file, 30.0, 120.0, POLL_S)
            settings = Settings(serving, {"model_0000": ModelSettings("model_0000", str(base), keep_warm=1)})
            fleet = GrpcFleet(serving)
            bot = build_bot(settings, parse_policy(POLICY), f"sqlite:///{tmp}/bench.db", fleet=fleet)
            pem = [Path(p).read_bytes() for p in (certs.ca, certs.bot_key, certs.bot_cert)]
            raw = RawFleet(dev.targets, *pem, "tf-serving", POLL_S)
            try:
                service_s, floor_s, size = [], [], 0
                for i in range(runs + 1):
                    started = time.perf_counter()
                    reply = bot.service.handle(ALICE, commands.ListModels())
                    elapsed = time.perf_counter() - started
                    assert reply.ok and f"{models} models" in reply.text, reply.text[:300]
                    floor = _floor(raw, names)
                    if i:  # the first round warms channels and caches
                        service_s.append(elapsed)
                        floor_s.append(floor)
                        size = len(reply.text)
            finally:
                raw.close()
                bot.close()
    service_ms, floor_ms = statistics.median(service_s) * 1000, statistics.median(floor_s) * 1000
    row = (
        f"/model list at {models} models x {replicas} replicas: {service_ms:.0f} ms through the service, floor"
        f" {floor_ms:.0f} ms (same {2 * models * replicas} RPCs as bare futures); service/floor"
        f" {service_ms / floor_ms:.2f}; reply {size} characters (median of {runs}; goal < 1000 ms)"
    )
    return {
        "models": models,
        "replicas": replicas,
        "service_ms": round(service_ms, 1),
        "floor_ms": round(floor_ms, 1),
        "row": row,
    }


def _floor(raw: RawFleet, names: list[str]) -> float:
    """GetModelStatus + GetModelMetadata(label stable) for every model on every replica, all as futures."""
    status = [apis.GetModelStatusRequest(model_spec=apis.ModelSpec(name=n)) for n in names]
    meta = []
    for n in names:
        spec = apis.ModelSpec(name=n)
        spec.version_label = "stable"
        meta.append(apis.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"]))
    started = time.perf_counter()
    futures = [s.model.GetModelStatus.future(r, timeout=30) for s in raw.stubs for r in status]
    futures += [s.prediction.GetModelMetadata.future(r, timeout=30) for s in raw.stubs for r in meta]
    for f in futures:
        f.result()
    return time.perf_counter() - started


if __name__ == "__main__":
    print(run()["row"])
