"""How a rollout ended, per replica and as one sentence: SUCCEEDED, PARTIAL or FAILED, never silent."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from bot.core.fleet import Outcome, ReplicaResult, RolloutResult
from bot.core.rollout import RolloutPlan, Routing
from bot.core.smoke import SmokeVerdict
from bot.serving.steps import Progress, ReplicaFailed


class Report:
    """Collects per-replica failures and notes while a rollout runs, then builds the RolloutResult."""

    def __init__(self, plan: RolloutPlan, replicas: Sequence[str], progress: Progress) -> None:
        self.plan, self.replicas, self.progress = plan, tuple(replicas), progress
        self.failed: dict[str, ReplicaFailed] = {}
        self.notes: list[str] = []
        self.phases: list[str] = []
        self.smoke: dict[str, str] = {}  # replica -> what it answered the golden request (kept in its record)
        self._started = time.monotonic()

    def fail(self, replica: str, failure: ReplicaFailed) -> None:
        self.failed[replica] = failure
        self.progress.state(failure.phase, replica, "failed", str(failure), finished=True)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def load_verdict(self, ready: Sequence[str]) -> str | None:
        """Why the rollout must stop after phase 1 (and revert), or None to go on with the ready replicas."""
        target = self.plan.spec.to_version
        unsafe = [f"{r}: {f}" for r, f in self.failed.items() if f.unsafe]
        if unsafe:
            return "; ".join(unsafe)
        late = [r for r, f in self.failed.items() if f.timed_out]
        if late:
            return f"version {target} did not become AVAILABLE in time on {', '.join(late)}"
        if not ready:
            return f"no replica loaded version {target}"
        return None

    def smoke_verdicts(self, verdicts: Mapping[str, SmokeVerdict]) -> str | None:
        """Record each replica's answer to the golden request; why the rollout must abort, or None."""
        for replica, verdict in verdicts.items():
            self.smoke[replica] = verdict.detail
            if verdict.ok:
                self.progress.state("smoke", replica, "passed", f"— {verdict.detail}", finished=True)
            else:
                self.fail(replica, ReplicaFailed("smoke", f"smoke test: {verdict.detail}"))
        failed = [r for r, v in verdicts.items() if not v.ok]
        if not failed:
            return None
        return f"the smoke test failed on {len(failed)} of {len(verdicts)} replicas ({', '.join(failed)})"

    def refused(self, reason: str) -> RolloutResult:
        results = tuple(ReplicaResult(r, False, "preflight", reason) for r in self.replicas or ("",))
        return self._result(Outcome.FAILED, results, f"{self._what()} refused before anything was sent: {reason}")

    def aborted(self, reason: str) -> RolloutResult:
        untouched = "not switched: the rollout was aborted and the previous config sent back"
        results = tuple(self._replica(r, untouched) for r in self.replicas)
        return self._result(Outcome.FAILED, results, f"{self._what()} FAILED, no label moved: {reason}.")

    def stopped(self, phase: str, detail: str, reason: str = "") -> RolloutResult:
        """The config of `phase` could not be recorded before sending it (the database went away, or another
        process took the fleet over): nothing more was sent. Says what every replica was last sent."""
        untouched = f"not switched: stopped before the {phase} phase"
        results = tuple(self._replica(r, untouched) for r in self.replicas)
        last = self.phases[-1] if self.phases else None
        keeps = f"every replica keeps the {last} config" if last else "nothing had been sent"
        why = f" after: {reason}" if reason else ""
        return self._result(
            Outcome.FAILED,
            results,
            f"{self._what()} FAILED{why}. The {phase} config could not be recorded before sending it ({detail}),"
            f" so nothing more was sent; {keeps}.",
        )

    def finish(self, verified: Sequence[str]) -> RolloutResult:
        ok = [r for r in verified if r not in self.failed]
        results = tuple(self._replica(r, "serves the target") for r in self.replicas)
        outcome = Outcome.SUCCEEDED if len(ok) == len(self.replicas) else Outcome.PARTIAL
        count = f"all {len(ok)}" if outcome is Outcome.SUCCEEDED else f"{len(ok)} of {len(self.replicas)}"
        return self._result(outcome, results, f"{self._serving()} on {count} replicas.")

    def _replica(self, replica: str, ok_detail: str) -> ReplicaResult:
        failure = self.failed.get(replica)
        if failure is not None:
            return ReplicaResult(replica, False, failure.phase, str(failure))
        smoke = f"; smoke test: {self.smoke[replica]}" if replica in self.smoke else ""
        if ok_detail != "serves the target":
            return ReplicaResult(replica, False, "load", ok_detail + smoke, self.plan.from_version)
        phase = "trim" if "trim" in self.phases else "verify"
        return ReplicaResult(replica, True, phase, ok_detail + smoke, self.plan.spec.to_version)

    def _result(self, outcome: Outcome, results: tuple[ReplicaResult, ...], message: str) -> RolloutResult:
        failed = [f"{r} ({f.phase}: {f})" for r, f in self.failed.items()]
        if failed:
            message += " Failed: " + "; ".join(failed) + "."
        if self.notes:
            message += " Note: " + "; ".join(self.notes) + "."
        elapsed = time.monotonic() - self._started
        self.progress.state("done", "", outcome.value, message)
        return RolloutResult(outcome, results, message, tuple(self.phases), elapsed)

    def _what(self) -> str:
        return f"{self.plan.spec.model}: rollout to version {self.plan.spec.to_version}"

    def _serving(self) -> str:
        spec = self.plan.spec
        if spec.routing is Routing.LATEST:
            return f"{spec.model}: unversioned requests get version {spec.to_version}"
        return f"{spec.model}: label {spec.label!r} resolves to version {spec.to_version}"
