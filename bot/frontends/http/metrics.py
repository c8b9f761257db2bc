"""The bot's own Prometheus metrics (prometheus-client), one `CollectorRegistry` per `Metrics`.

No global registry: tests run several servers in one process, each with its own counters. Events (commands,
rollouts, acks, alerts) are counted as they happen; what the database or the fleet knows (approvals waiting,
open retro-reviews, the outbox backlog, drift, replica reachability) is read at scrape time by `_ScrapeReads`,
where each read fails on its own: a failing database drops those families (and says so in
`modelbot_scrape_read_ok`), never the scrape. Labels are bounded: verbs, outcomes, phases, configured models and
fleet replicas; never request or user ids.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.core.fleet import ProgressEvent

log = logging.getLogger(__name__)
ACK_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0)  # Slack gives up at 3 s
ROLLOUT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# ProgressEvent.phase; any other -> "other"
PHASES = frozenset({"load", "smoke", "switch", "verify", "trim", "revert", "done"})


@dataclass(frozen=True)
class ScrapeReads:
    """What is read at scrape time; each None is simply not exported."""

    outbox_pending: Callable[[], int] | None = None
    outbox_oldest_age_s: Callable[[], float | None] | None = None  # None: nothing pending
    drifted: Callable[[], Mapping[str, Sequence[str]]] | None = None  # model -> replicas in an open drift episode
    approvals_pending: Callable[[], Mapping[str, int]] | None = None  # action -> PENDING requests
    retro_reviews_open: Callable[[], int] | None = None
    reachability: Callable[[], Mapping[str, bool] | None] | None = None  # replica -> reachable; None: not probed


class Metrics:
    """Counters and histograms fed by the front ends, plus the scrape-time reads, in one registry."""

    def __init__(
        self,
        outbox_pending: Callable[[], int] | None = None,
        drifted: Callable[[], Mapping[str, Sequence[str]]] | None = None,
        *,
        reads: ScrapeReads | None = None,
        version: str | None = None,
    ) -> None:
        reads = reads or ScrapeReads()
        if outbox_pending is not None:
            reads = replace(reads, outbox_pending=outbox_pending)
        if drifted is not None:
            reads = replace(reads, drifted=drifted)
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)
        Gauge("modelbot_build_info", "The running modelbot's version (always 1).", ["version"], registry=reg).labels(
            version or _version()
        ).set(1)
        self._commands = Counter(
            "modelbot_commands",
            "Slack commands and button clicks handled, by verb and outcome.",
            ["verb", "outcome"],
            registry=reg,
        )
        self._rollouts = Counter("modelbot_rollouts", "Rollouts run, by outcome.", ["outcome"], registry=reg)
        self._rollout_s = Histogram(
            "modelbot_rollout_duration_seconds",
            "Rollout duration, approve to every replica verified, by outcome.",
            ["outcome"],
            buckets=ROLLOUT_BUCKETS_S,
            registry=reg,
        )
        self._phase_s = Histogram(
            "modelbot_rollout_phase_duration_seconds",
            "Time spent in each rollout phase (from its first progress event to the next phase's).",
            ["phase"],
            buckets=ROLLOUT_BUCKETS_S,
            registry=reg,
        )
        self._ack_s = Histogram(
            "modelbot_slack_ack_seconds",
            "Time from receiving a signed Slack request to answering it.",
            buckets=ACK_BUCKETS_S,
            registry=reg,
        )
        self._alerts = Counter(
            "modelbot_alerts_received",
            "Alert notifications received on POST /alerts, by outcome.",
            ["outcome"],
            registry=reg,
        )
        self._alerts_acted = Counter(
            "modelbot_alerts_acted",
            "Alerts of accepted notifications: queued for action, or ignored.",
            ["result"],
            registry=reg,
        )
        for result in ("queued", "ignored"):
            self._alerts_acted.labels(result)
        reg.register(_ScrapeReads(reads))

    def command(self, verb: str, outcome: str) -> None:
        self._commands.labels(verb, outcome).inc()

    def rollout(self, outcome: str, elapsed_s: float | None = None, phases: Mapping[str, float] | None = None) -> None:
        """One finished rollout; `phases`: seconds spent per phase (unknown phase names count as "other")."""
        self._rollouts.labels(outcome).inc()
        if elapsed_s is not None:
            self._rollout_s.labels(outcome).observe(elapsed_s)
        for phase, seconds in (phases or {}).items():
            self._phase_s.labels(phase if phase in PHASES else "other").observe(seconds)

    def ack(self, seconds: float) -> None:
        self._ack_s.observe(seconds)

    def alert(self, outcome: str, queued: int = 0, ignored: int = 0) -> None:
        """One POST /alerts: its outcome (accepted, unauthorized, too_large, malformed) and, accepted, its alerts."""
        self._alerts.labels(outcome).inc()
        if queued:
            self._alerts_acted.labels("queued").inc(queued)
        if ignored:
            self._alerts_acted.labels("ignored").inc(ignored)

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        return generate_latest(self.registry).decode()

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """Body and content type for a scrape with this Accept header (OpenMetrics when asked for)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class PhaseClock:
    """Times each rollout phase from the ProgressEvents the front end sees (the rollout itself reports only the
    phases run and the total): a phase lasts from its first event to the next phase's first event."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._starts: list[tuple[str, float]] = []
        self._lock = threading.Lock()  # events may come from the fan-out threads

    def mark(self, event: ProgressEvent) -> bool:
        """Note the event; True the first time its phase is seen (replicas may interleave two phases)."""
        with self._lock:
            if self._starts and self._starts[-1][0] == event.phase:
                return False
            first = all(phase != event.phase for phase, _ in self._starts)
            self._starts.append((event.phase, self._clock()))
            return first

    def durations(self) -> dict[str, float]:
        """Seconds per phase up to now (a phase entered twice adds up); "done" marks the end, not a phase."""
        with self._lock:
            starts, now = list(self._starts), self._clock()
        out: dict[str, float] = {}
        ends = [t for _, t in starts[1:]] + [now]
        for (phase, start), end in zip(starts, ends, strict=True):
            if phase != "done":
                out[phase] = out.get(phase, 0.0) + max(0.0, end - start)
        return out


class _ScrapeReads(Collector):
    """The gauges read at scrape time; a read that raises is left out (and reported), the scrape goes on."""

    def __init__(self, reads: ScrapeReads) -> None:
        self._reads = reads

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: its families depend on what answers at scrape time

    def collect(self) -> Iterator[Metric]:
        ok = GaugeMetricFamily(
            "modelbot_scrape_read_ok", "1 when a scrape-time read answered, else 0.", labels=["read"]
        )
        for name, read in (
            ("outbox", self._outbox),
            ("drift", self._drift),
            ("approvals", self._approvals),
            ("retro_reviews", self._retro_reviews),
            ("reachability", self._reachability),
        ):
            try:
                families = list(read())
            except Exception as exc:  # the database may be away: /readyz reports that, the scrape must not fail
                log.debug("metrics read %s failed: %s", name, type(exc).__name__)
                ok.add_metric([name], 0)
                continue
            if families:
                ok.add_metric([name], 1)
            yield from families
        yield ok

    def _outbox(self) -> Iterator[Metric]:
        r = self._reads
        if r.outbox_pending is not None:
            yield GaugeMetricFamily(
                "modelbot_outbox_pending", "Slack messages queued and not yet delivered.", value=r.outbox_pending()
            )
        if r.outbox_oldest_age_s is not None:
            age = r.outbox_oldest_age_s()
            yield GaugeMetricFamily(
                "modelbot_outbox_oldest_pending_age_seconds",
                "Age of the oldest undelivered Slack message (0 when none is pending).",
                value=age or 0.0,
            )

    def _drift(self) -> Iterator[Metric]:
        if self._reads.drifted is None:
            return
        drifted = self._reads.drifted()
        replicas = GaugeMetricFamily(
            "modelbot_replica_drift",
            "1 while the replica serves something other than the desired state.",
            labels=["model", "replica"],
        )
        for model, names in sorted(drifted.items()):
            for replica in sorted(names):
                replicas.add_metric([model, replica], 1)
        yield replicas
        yield GaugeMetricFamily("modelbot_models_drifted", "Models with at least one drifted replica.", len(drifted))

    def _approvals(self) -> Iterator[Metric]:
        if self._reads.approvals_pending is None:
            return
        family = GaugeMetricFamily(
            "modelbot_approvals_pending", "Change requests waiting for approval, by action.", labels=["action"]
        )
        counts = {"promote": 0, "rollback": 0, **self._reads.approvals_pending()}
        for action, count in sorted(counts.items()):
            family.add_metric([action], count)
        yield family

    def _retro_reviews(self) -> Iterator[Metric]:
        if self._reads.retro_reviews_open is not None:
            yield GaugeMetricFamily(
                "modelbot_retro_reviews_open",
                "Finished break-glass rollbacks whose retro-review is still open.",
                value=self._reads.retro_reviews_open(),
            )

    def _reachability(self) -> Iterator[Metric]:
        if self._reads.reachability is None:
            return
        found = self._reads.reachability()
        if found is None:  # not probed yet: no series rather than a false 0
            return
        family = GaugeMetricFamily(
            "modelbot_replica_reachable", "1 when the replica answered the newest /healthz probe.", labels=["replica"]
        )
        for replica, reachable in sorted(found.items()):
            family.add_metric([replica], 1 if reachable else 0)
        yield family


def _version() -> str:
    try:
        return metadata.version("modelbot")
    except metadata.PackageNotFoundError:
        return "unknown"
