"""A devstack fleet driven through the bot's own GrpcFleet, for the serving adapter's integration tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.fleet import ProgressEvent, RolloutResult, VersionState
from bot.core.rollout import ChangeSpec, Routing, plan_rollout
from bot.devstack.certs import DevCerts
from bot.devstack.fleet import DevFleet
from bot.serving.fleet import GrpcFleet
from bot.settings import ServingSettings, TlsSettings
from tests.devstack_support import MODEL, config_text, model_entry


def settings_for(dev: DevFleet, certs: DevCerts, client: str = "bot", **overrides: object) -> ServingSettings:
    cert, key = {"bot": (certs.bot_cert, certs.bot_key), "rogue": (certs.rogue_cert, certs.rogue_key)}.get(
        client, (None, None)
    )
    base = ServingSettings(
        targets=tuple(dev.targets),
        tls=TlsSettings(ca_cert=certs.ca, client_cert=cert, client_key=key, server_name="tf-serving"),
        rpc_timeout_s=5.0,
        converge_timeout_s=10.0,
        status_poll_interval_s=0.02,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass
class Rig:
    """A started fleet serving fraud_detector {2, 3} with stable=3, the GrpcFleet on it, and the desired state."""

    dev: DevFleet
    fleet: GrpcFleet
    base: FleetConfig
    persisted: list[FleetConfig] = field(default_factory=list)
    events: list[ProgressEvent] = field(default_factory=list)

    @property
    def state(self) -> ModelState:
        state = self.base.model(MODEL)
        assert state is not None
        return state

    def rollout(self, target: int, routing: Routing = Routing.LABELS, keep_warm: int = 1) -> RolloutResult:
        """Plan from the desired state and run it; the desired state follows what was persisted."""
        self.persisted.clear()
        self.events.clear()
        plan = plan_rollout(self.state, ChangeSpec(MODEL, target, routing=routing, keep_warm=keep_warm))
        result = self.fleet.rollout(plan, self.base, self.persisted.append, self.events.append)
        if self.persisted:
            self.base = self.persisted[-1]
        return result

    def resolved(self, label: str | None = "stable") -> dict[str, int | str]:
        return dict(self.fleet.resolve(MODEL, label))

    def wait_available(self, versions: set[int], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            statuses = self.fleet.model_status(MODEL)
            if all(s.error is None and versions <= set(s.available()) for s in statuses):
                return
            time.sleep(0.02)
        raise AssertionError(f"versions {versions} not AVAILABLE everywhere: {self.fleet.model_status(MODEL)}")

    def loaded(self, version: int) -> dict[str, VersionState | None]:
        return {s.replica: s.state_of(version) for s in self.fleet.model_status(MODEL)}


def start_rig(
    start_fleet: object, certs: DevCerts, models: Path, n: int = 3, labels: bool = True, **overrides: object
) -> Rig:
    """Start n replicas on {2, 3}, then (labels=True) put `stable` on 3 with a reload once both are loaded."""
    knobs = {k: overrides.pop(k) for k in list(overrides) if k in ("per_replica",)}
    dev: DevFleet = start_fleet(config_text(model_entry(versions=[2, 3])), n, **knobs)  # type: ignore[operator]
    fleet = GrpcFleet(settings_for(dev, certs, **overrides))
    state = ModelState(name=MODEL, base_path=str(models), policy=VersionPolicy.specific([2, 3]))
    rig = Rig(dev, fleet, FleetConfig(models=(state,)))
    rig.wait_available({2, 3})
    if labels:
        rig.base = FleetConfig(models=(state.with_labels({"stable": 3}),))
        assert set(fleet.apply(rig.base).values()) == {None}
    return rig
