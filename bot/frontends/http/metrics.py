"""A few Prometheus metrics in the text exposition format, standard library only."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

ACK_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0)


class Metrics:
    """Counters of commands and rollouts, the ack-latency histogram, and a scrape-time outbox gauge."""

    def __init__(
        self,
        outbox_pending: Callable[[], int] | None = None,
        drifted: Callable[[], Mapping[str, Sequence[str]]] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._commands: Counter[tuple[str, str]] = Counter()
        self._rollouts: Counter[str] = Counter()
        self._ack_counts = [0] * (len(ACK_BUCKETS_S) + 1)  # the last slot is +Inf
        self._ack_sum = 0.0
        self.outbox_pending = outbox_pending
        self.drifted = drifted  # model -> replicas in an open drift episode, read at scrape time

    def command(self, verb: str, outcome: str) -> None:
        with self._lock:
            self._commands[(verb, outcome)] += 1

    def rollout(self, outcome: str) -> None:
        with self._lock:
            self._rollouts[outcome] += 1

    def ack(self, seconds: float) -> None:
        with self._lock:
            self._ack_counts[bisect.bisect_left(ACK_BUCKETS_S, seconds)] += 1
            self._ack_sum += seconds

    def render(self) -> str:
        with self._lock:
            commands, rollouts = dict(self._commands), dict(self._rollouts)
            counts, total = list(self._ack_counts), self._ack_sum
        lines = [
            "# HELP modelbot_commands_total Slack commands and button clicks handled, by verb and outcome.",
            "# TYPE modelbot_commands_total counter",
            *(f'modelbot_commands_total{{verb="{v}",outcome="{o}"}} {n}' for (v, o), n in sorted(commands.items())),
            "# HELP modelbot_rollouts_total Rollouts run, by outcome.",
            "# TYPE modelbot_rollouts_total counter",
            *(f'modelbot_rollouts_total{{outcome="{o}"}} {n}' for o, n in sorted(rollouts.items())),
            *self._outbox_lines(),
            *self._drift_lines(),
            "# HELP modelbot_slack_ack_seconds Time from receiving a Slack request to answering it.",
            "# TYPE modelbot_slack_ack_seconds histogram",
        ]
        running = 0
        for bound, count in zip((*ACK_BUCKETS_S, float("inf")), counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'modelbot_slack_ack_seconds_bucket{{le="{le}"}} {running}')
        lines += [f"modelbot_slack_ack_seconds_sum {total:.6f}", f"modelbot_slack_ack_seconds_count {running}"]
        return "\n".join(lines) + "\n"

    def _drift_lines(self) -> list[str]:
        if self.drifted is None:
            return []
        try:
            drifted = self.drifted()
        except Exception:  # a scrape must not fail because the database is down; /readyz reports that
            return []
        return [
            "# HELP modelbot_replica_drift 1 while the replica serves something other than the desired state.",
            "# TYPE modelbot_replica_drift gauge",
            *(
                f'modelbot_replica_drift{{model="{_label(m)}",replica="{_label(r)}"}} 1'
                for m, replicas in sorted(drifted.items())
                for r in sorted(replicas)
            ),
            "# HELP modelbot_models_drifted Models with at least one drifted replica.",
            "# TYPE modelbot_models_drifted gauge",
            f"modelbot_models_drifted {len(drifted)}",
        ]

    def _outbox_lines(self) -> list[str]:
        if self.outbox_pending is None:
            return []
        try:
            pending = self.outbox_pending()
        except Exception:  # a scrape must not fail because the database is down; /readyz reports that
            return []
        return [
            "# HELP modelbot_outbox_pending Slack messages queued and not yet delivered.",
            "# TYPE modelbot_outbox_pending gauge",
            f"modelbot_outbox_pending {pending}",
        ]


def _label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
