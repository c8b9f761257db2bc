"""`GrpcFleet`: the TF Serving fleet behind `core.ports.Fleet`, every call fanned out to all replicas in parallel."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from bot.core.desired import FleetConfig
from bot.core.errors import ModelbotError, PreflightFailed, ServingError
from bot.core.fleet import ModelReading, ReplicaStatus, RolloutResult
from bot.core.ports import ProgressSink, VersionCatalog
from bot.core.rollout import RolloutPlan
from bot.core.signatures import Signature
from bot.core.smoke import GoldenRequest, SmokeVerdict
from bot.serving.channel import ChannelPool, ReplicaClient
from bot.serving.config_proto import to_proto, write_model_config_file
from bot.serving.convert import replica_status, resolved_version, served_signature
from bot.serving.discovery import LocalCatalog
from bot.serving.errors import describe, is_deadline
from bot.serving.fanout import FanOut
from bot.serving.observed import Observed
from bot.serving.preflight import unservable_models
from bot.serving.rollout import Persist, RolloutExecutor
from bot.serving.smoke import run_smoke
from bot.serving.targets import Resolver, Targets
from bot.settings import ServingSettings

T = TypeVar("T")
log = logging.getLogger(__name__)


class GrpcFleet:
    """mTLS gRPC to every replica; see core.ports.Fleet for the contract of each method."""

    def __init__(
        self,
        settings: ServingSettings,
        catalog: VersionCatalog | None = None,
        *,
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        self._settings = settings
        self._catalog = catalog or LocalCatalog()
        self._targets = Targets(settings.targets, resolver)
        self._observed = Observed()
        self._channels = ChannelPool(settings.tls, settings.rpc_timeout_s, on_unreachable=self._observed.forget_replica)
        self._fanout = FanOut()
        self._executor = RolloutExecutor(settings, self._catalog, self._fanout, self._observed)

    def replicas(self) -> tuple[str, ...]:
        replicas = self._targets.replicas()
        self._channels.retain(replicas)
        return replicas

    def model_status(self, model: str) -> tuple[ReplicaStatus, ...]:
        def status(client: ReplicaClient) -> ReplicaStatus:
            found = replica_status(client.replica, client.status(model))
            self._observed.note_status(client.replica, model, found.versions)
            return found

        results = self._map(status)
        return tuple(
            ReplicaStatus(r, error=str(res), error_code=res.code) if isinstance(res, ServingError) else res
            for r, res in results.items()
        )

    def survey(self, models: Sequence[str], routes: Mapping[str, str | None]) -> Mapping[str, ModelReading]:
        """Every call as a gRPC future at once (1,000 models x 3 replicas is 6,000 calls): no thread per call."""
        clients = [self._client(r) for r in self.replicas()]
        pending_status = {(m, c.replica): c.status_later(m) for m in models for c in clients}
        pending_route = {(m, c.replica): c.metadata_later(m, routes[m]) for m in models if m in routes for c in clients}
        readings = {}
        for model in models:
            statuses = []
            for client in clients:
                try:
                    found = replica_status(client.replica, pending_status[(model, client.replica)]())
                    self._observed.note_status(client.replica, model, found.versions)
                    statuses.append(found)
                except ServingError as exc:
                    statuses.append(ReplicaStatus(client.replica, error=str(exc), error_code=exc.code))
            resolved: dict[str, int | str] | None = None
            if model in routes:
                resolved = {}
                for client in clients:
                    try:
                        resolved[client.replica] = resolved_version(pending_route[(model, client.replica)]())
                    except ServingError as exc:
                        resolved[client.replica] = describe(exc)
            readings[model] = ModelReading(tuple(statuses), resolved)
        return readings

    def served_signature(self, model: str, version: int | None = None) -> Signature | None:
        """Asks the replicas one at a time and stops at the first that serves the version."""
        for replica in self.replicas():
            try:
                response = self._client(replica).metadata(model, version=version)
            except ServingError:
                continue
            return served_signature(response)
        return None

    def resolve(self, model: str, label: str | None = None) -> Mapping[str, int | str]:
        """Per replica, the version a request by `label` (or unversioned) reaches now, or the error text."""

        def resolve_one(client: ReplicaClient) -> int:
            return resolved_version(client.metadata(model, label=label))

        return {r: describe(res) if isinstance(res, ServingError) else res for r, res in self._map(resolve_one).items()}

    def apply(self, config: FleetConfig, replicas: Sequence[str] | None = None) -> Mapping[str, str | None]:
        """Send the whole config everywhere. Refuses (PreflightFailed) a model with no version on disk: TF
        Serving would hang on it forever. After a client-side deadline, the labels are checked instead."""
        problems = unservable_models([config], self._catalog)
        if problems:
            raise PreflightFailed("refusing to send a config TF Serving would hang on: " + "; ".join(problems))
        self._observed.note_config(config)
        if self._settings.model_config_file is not None:  # a replica restarting later must come back to this
            try:
                write_model_config_file(self._settings.model_config_file, config)
            except OSError as exc:
                log.error("could not write %s: %s", self._settings.model_config_file, exc.strerror or exc)
        proto = to_proto(config)

        def send(client: ReplicaClient) -> str | None:
            try:
                client.reload(proto)
            except ServingError as exc:
                return _confirm_labels(client, config) if is_deadline(exc) else describe(exc)
            return None

        results = self._map(send, replicas)
        return {r: describe(res) if isinstance(res, ServingError) else res for r, res in results.items()}

    def rollout(self, plan: RolloutPlan, base: FleetConfig, persist: Persist, progress: ProgressSink) -> RolloutResult:
        clients = {r: self._client(r) for r in self.replicas()}
        return self._executor.run(clients, plan, base, persist, progress)

    def smoke_test(
        self, model: str, version: int, golden: GoldenRequest, signature: Signature | None = None
    ) -> tuple[SmokeVerdict, ...]:
        clients = {r: self._client(r) for r in self.replicas()}
        signatures = {r: self._observed.get(r, model, version) or signature for r in clients}
        return tuple(run_smoke(clients, model, version, golden, signatures=signatures, fanout=self._fanout).values())

    def ping(self) -> None:
        """Any answer proves the replica is up and accepted our certificate; NOT_FOUND is an answer."""

        def probe(client: ReplicaClient) -> None:
            try:
                client.status("")
            except ServingError as exc:
                if exc.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "UNAUTHENTICATED", "PERMISSION_DENIED"):
                    raise

        results = self._map(probe)
        errors = [res for res in results.values() if isinstance(res, ServingError)]
        if len(errors) == len(results):
            detail = "; ".join(f"{e.replica}: {describe(e)}" for e in errors) or "no replica configured"
            raise ServingError(f"no TF Serving replica answered: {detail}", code="UNAVAILABLE")

    def close(self) -> None:
        self._fanout.close()
        self._channels.close()

    def _client(self, replica: str) -> ReplicaClient:
        return self._channels.client(replica, self._targets.tls_name(replica))

    def _map(self, fn: Callable[[ReplicaClient], T], only: Sequence[str] | None = None) -> dict[str, T | ServingError]:
        targets = self.replicas() if only is None else tuple(r for r in self.replicas() if r in only)
        results = self._fanout.map(lambda r: fn(self._client(r)), targets)
        return {r: _serving_error(res, r) if isinstance(res, ModelbotError) else res for r, res in results.items()}


def _serving_error(error: ModelbotError, replica: str) -> ServingError:
    return error if isinstance(error, ServingError) else ServingError(str(error), replica=replica)


def _confirm_labels(client: ReplicaClient, config: FleetConfig) -> str | None:
    """After DEADLINE_EXCEEDED the reload may still apply: report it as failed only if a label is wrong."""
    for model in config.models:
        for label, version in model.labels:
            try:
                seen = resolved_version(client.metadata(model.name, label=label))
            except ServingError as exc:
                return f"DEADLINE_EXCEEDED, and then {model.name}/{label}: {describe(exc)}"
            if seen != version:
                return f"DEADLINE_EXCEEDED, and {model.name} label {label!r} still resolves to {seen}, not {version}"
    return None
