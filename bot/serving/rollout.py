"""Executes a `core.rollout.RolloutPlan` on every replica (DESIGN.md §4, reference/tfserving.md §9).

(DESIGN's numbering: pre-flight = step 1, load + smoke = phase 1, switch = phase 2, trim = step 4.)
  pre-flight  target on disk, serving_default compatible (disk), every sent config servable;
  load        target added to `specific`, reload all replicas, poll GetModelStatus until AVAILABLE everywhere;
              the loaded target's served signature checked (GetModelMetadata); skipped when already loaded;
  smoke       the model's golden request (ChangeSpec.smoke) sent to the target *by version* on every loaded
              replica (bot/serving/smoke.py); one wrong or failed answer aborts: FAILED, no label moved;
  switch      label moved (or higher versions dropped), reload the replicas that loaded the target, then
              verify each resolves the label (or unversioned requests) to the target;
  trim        versions beyond keep_warm dropped.
Phases are barriers (no label moves until every replica has loaded); inside a phase each replica runs its
steps independently on the fan-out pool. `persist` sees each whole config before any replica does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from bot.core.desired import FleetConfig
from bot.core.errors import ModelbotError, PreflightFailed, ServingError
from bot.core.fleet import RolloutResult
from bot.core.ports import ProgressSink, VersionCatalog
from bot.core.rollout import RolloutPlan, Routing
from bot.serving.channel import ReplicaClient
from bot.serving.config_proto import to_proto, write_model_config_file
from bot.serving.errors import describe, is_deadline
from bot.serving.fanout import FanOut
from bot.serving.observed import Observed
from bot.serving.outcome import Report
from bot.serving.preflight import Checked, check_rollout
from bot.serving.protos import tfs_apis_pb2 as apis
from bot.serving.smoke import run_smoke
from bot.serving.steps import Deadline, Progress, ReplicaFailed, Steps
from bot.settings import ServingSettings

log = logging.getLogger(__name__)
Persist = Callable[[FleetConfig], None]


class RolloutExecutor:
    def __init__(self, settings: ServingSettings, catalog: VersionCatalog, fanout: FanOut, observed: Observed) -> None:
        self._settings, self._catalog, self._fanout, self._observed = settings, catalog, fanout, observed

    def run(
        self,
        clients: Mapping[str, ReplicaClient],
        plan: RolloutPlan,
        base: FleetConfig,
        persist: Persist,
        sink: ProgressSink,
    ) -> RolloutResult:
        progress = Progress(sink, len(clients))
        report = Report(plan, tuple(clients), progress)
        if not clients:
            return report.refused("no TF Serving replica is configured or resolved (serving.targets)")
        try:
            checked = check_rollout(plan, base, self._catalog)
        except PreflightFailed as exc:
            return report.refused(str(exc))
        fresh_model = base.model(plan.spec.model) is None
        return _Run(self, clients, plan, persist, report=report, checked=checked, fresh_model=fresh_model).execute()


class _Stopped(Exception):
    """Persisting a phase's config failed: that config must not be sent (persist-before-send)."""

    def __init__(self, phase: str, detail: str) -> None:
        super().__init__(detail)
        self.phase, self.detail = phase, detail


class _Run:
    """One rollout: the phases in order, and the decisions between them."""

    def __init__(
        self,
        ex: RolloutExecutor,
        clients: Mapping[str, ReplicaClient],
        plan: RolloutPlan,
        persist: Persist,
        *,
        report: Report,
        checked: Checked,
        fresh_model: bool,
    ) -> None:
        self.ex, self.clients, self.plan, self.persist = ex, clients, plan, persist
        self.report, self.checked, self.fresh_model = report, checked, fresh_model
        self.persisted = False
        # The database already holds the target as served: the request exists because the fleet drifted from
        # it (a replica restarted without the config file, or someone reloaded it by hand). Send every phase.
        self.resync = plan.switch.served_config() == plan.before.served_config() and not fresh_model
        spec = plan.spec
        self.steps = Steps(
            model=spec.model,
            target=spec.to_version,
            label=spec.label if spec.routing is Routing.LABELS else None,
            current=plan.from_version,
            disk_reference=checked.current_signature,
            poll_s=ex._settings.status_poll_interval_s,
            observed=ex._observed,
            progress=report.progress,
        )

    def execute(self) -> RolloutResult:
        try:
            return self._phases()
        except _Stopped as stop:
            return self.report.stopped(stop.phase, stop.detail)

    def _phases(self) -> RolloutResult:
        ready = self._load()
        aborted = self.report.load_verdict(ready) or self._smoke(ready)
        if aborted:
            return self._abort(aborted, sent="load" in self.report.phases)
        verified = self._switch(ready)
        if not verified:
            return self._abort("no replica could be switched to the target", sent=True)
        try:
            self._trim(verified)
            if not self.persisted:  # nothing needed sending; still record the new bookkeeping (history)
                self._persist(self.checked.trim, "trim")
        except _Stopped as stop:  # the switch is done and verified; only the clean-up was not sent
            self.report.note(f"versions beyond keep_warm were not unloaded: could not record it ({stop.detail})")
        return self.report.finish(verified)

    def _load(self) -> list[str]:
        plan, steps = self.plan, self.steps
        deadline = Deadline(self.ex._settings.converge_timeout_s)
        if plan.load.served_config() == plan.before.served_config() and not self.fresh_model and not self.resync:
            return self._fan("load", lambda c: self._confirm_loaded(c, deadline), self.clients)
        proto = self._publish(self.checked.load, "load")

        def load(client: ReplicaClient) -> object:
            before = steps.snapshot(client)
            self._reload(client, proto, "load")
            steps.await_available(client, before(), deadline)
            return steps.check_served(client)

        return self._fan("load", load, self.clients)

    def _confirm_loaded(self, client: ReplicaClient, deadline: Deadline) -> object:
        """Warm path: the target is in `specific` already. A replica seen serving it needs no call at all."""
        if self.ex._observed.get(client.replica, self.steps.model, self.steps.target) is None:
            self.steps.await_available(client, None, deadline)
        return self.steps.check_served(client)

    def _smoke(self, ready: Sequence[str]) -> str | None:
        """The golden request to the loaded target on every ready replica, all at once; why to abort, or None."""
        golden = self.plan.spec.smoke
        if golden is None or not ready:
            return None
        model, target = self.steps.model, self.steps.target
        # The signature check of the load phase has just recorded what each replica serves: no extra call.
        signatures = {r: self.ex._observed.get(r, model, target) or self.checked.target_signature for r in ready}
        clients = {r: self.clients[r] for r in ready}
        for replica in ready:  # the answers come back together: say it started (a slow model must not look stuck)
            self.report.progress.state("smoke", replica, "sending the golden request")
        verdicts = run_smoke(clients, model, target, golden, signatures=signatures, fanout=self.ex._fanout)
        return self.report.smoke_verdicts(verdicts)

    def _switch(self, ready: Sequence[str]) -> list[str]:
        plan, steps = self.plan, self.steps
        deadline = Deadline(self.ex._settings.converge_timeout_s)
        proto = (
            None
            if plan.switch.served_config() == plan.load.served_config() and not self.resync
            else self._publish(self.checked.switch, "switch")
        )

        def switch(client: ReplicaClient) -> object:
            if proto is not None:
                steps.switch(client, proto, deadline)
            return steps.verify(client, deadline)

        return self._fan("verify", switch, {r: self.clients[r] for r in ready})

    def _trim(self, verified: Sequence[str]) -> None:
        if self.plan.trim.served_config() == self.plan.switch.served_config():
            return
        proto = self._publish(self.checked.trim, "trim")
        self._fan("trim", lambda c: self._reload(c, proto, "trim"), {r: self.clients[r] for r in verified})

    def _abort(self, reason: str, *, sent: bool) -> RolloutResult:
        """Send the previous config back (if anything was sent) so that no label moved anywhere."""
        if sent:
            try:
                proto = self._publish(self.checked.revert, "revert")
            except _Stopped as stop:
                return self.report.stopped(stop.phase, stop.detail, reason)
            outcomes = self.ex._fanout.map(lambda r: self.clients[r].reload(proto), tuple(self.clients))
            for replica, outcome in outcomes.items():
                if isinstance(outcome, ServingError):
                    self.report.note(f"revert failed on {replica}: {describe(outcome)}")
        return self.report.aborted(reason)

    def _fan(
        self, phase: str, work: Callable[[ReplicaClient], object], clients: Mapping[str, ReplicaClient]
    ) -> list[str]:
        results = self.ex._fanout.map(lambda r: work(clients[r]), tuple(clients))
        done = []
        for replica, result in results.items():
            if isinstance(result, ModelbotError):
                self.report.fail(replica, _as_failure(result, phase))
            else:
                done.append(replica)
                if phase != "verify":  # verify reports each replica itself, as soon as it is verified
                    self.report.progress.state(phase, replica, "done", finished=True)
        return done

    def _reload(self, client: ReplicaClient, proto: apis.ModelServerConfig, phase: str) -> None:
        try:
            client.reload(proto)
        except ServingError as exc:
            if not is_deadline(exc):  # a deadline is no failure: the server carries on (reference §1.3)
                raise ReplicaFailed(phase, describe(exc)) from None
            self.report.progress.state(phase, client.replica, "reload still running on the server")

    def _persist(self, config: FleetConfig, phase: str) -> None:
        try:
            self.persist(config)
        except ModelbotError as exc:  # the database went away, or another process took the fleet over
            raise _Stopped(phase, str(exc)) from None
        self.persisted = True

    def _publish(self, config: FleetConfig, phase: str) -> apis.ModelServerConfig:
        """Persist, then write the file, then hand out the proto: nobody sees a config the database lacks."""
        self._persist(config, phase)
        self.ex._observed.note_config(config)
        path = self.ex._settings.model_config_file
        if path is not None:
            try:
                write_model_config_file(path, config)
            except OSError as exc:
                self.report.note(f"could not write {path}: {exc.strerror or exc}")
        if phase != "revert":
            self.report.phases.append(phase)
        return to_proto(config)


def _as_failure(error: ModelbotError, phase: str) -> ReplicaFailed:
    if isinstance(error, ReplicaFailed):
        return error
    if isinstance(error, ServingError):
        return ReplicaFailed(phase, describe(error))
    return ReplicaFailed(phase, str(error))


__all__ = ["RolloutExecutor", "check_rollout"]
