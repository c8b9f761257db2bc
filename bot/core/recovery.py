"""Recovering a rollout whose process died (DESIGN.md §4): what each replica shows, and what to do about it.

The rollout persisted every phase's config before sending it, so the database holds the newest config any
replica may have received. What actually happened is read from the replicas themselves: a label moves
synchronously inside ReloadConfig (reference/tfserving.md §3), so a replica whose label (or, for
`routing: latest`, whose unversioned requests) resolves to the target has received the switch. Then:
- every replica that answers is switched: finish (send the persisted config everywhere, verify) -> SUCCEEDED,
  or PARTIAL when a replica did not answer;
- otherwise (not started, loaded only, switched on some): restore the model's state from before the
  operation on every replica -> FAILED (the requested change did not happen).
Either way one consistent state is sent to the whole fleet and becomes the desired state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.core.desired import FleetConfig, ModelState
from bot.core.fleet import Outcome


class Found(StrEnum):
    SWITCHED = "switched"
    NOT_SWITCHED = "not switched"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Finding:
    """What one replica showed when recovery read it."""

    replica: str
    found: Found
    resolves_to: int | None  # the version its label (or unversioned requests) resolves to, if any
    detail: str = ""  # the error text when it could not be resolved


@dataclass(frozen=True)
class Recovery:
    """The decision: `config` is sent to every replica and saved as the desired state; afterwards every
    replica must resolve the label (or unversioned requests) to `expect` (None: the model is gone)."""

    finish: bool
    config: FleetConfig
    expect: int | None
    outcome: Outcome


def classify(resolved: Mapping[str, int | str], target: int | None, unreachable: frozenset[str]) -> tuple[Finding, ...]:
    """`resolved`: per replica the version its label resolves to, or the error text; `unreachable`: the
    replicas whose error means no answer at all (as opposed to e.g. 'label not found', which is an answer)."""
    findings = []
    for replica, seen in sorted(resolved.items()):
        if isinstance(seen, int):
            found = Found.SWITCHED if seen == target else Found.NOT_SWITCHED
            findings.append(Finding(replica, found, seen))
        elif replica in unreachable:
            findings.append(Finding(replica, Found.UNREACHABLE, None, seen))
        else:
            findings.append(Finding(replica, Found.NOT_SWITCHED, None, seen))
    return tuple(findings)


def decide(
    findings: tuple[Finding, ...],
    *,
    persisted: FleetConfig,
    model: str,
    before: ModelState | None,
    target: int | None,
    label: str | None,
) -> Recovery | None:
    """`label`: the label the rollout moved (None for `routing: latest`). None when no replica answered:
    nothing can be known, so nothing is decided (the sweep tries again)."""
    answered = [f for f in findings if f.found is not Found.UNREACHABLE]
    if not answered:
        return None
    current = persisted.model(model)
    if target is not None and all(f.found is Found.SWITCHED for f in answered) and current is not None:
        outcome = Outcome.SUCCEEDED if len(answered) == len(findings) else Outcome.PARTIAL
        return Recovery(True, persisted, target, outcome)
    if before is None:
        restored = FleetConfig(tuple(m for m in persisted.models if m.name != model))
    else:
        # Exactly as before, generation included: the operation never happened, so a request approved against
        # that state stays valid.
        restored = persisted.with_model(before)
    return Recovery(False, restored, before.resolves(label) if before else None, Outcome.FAILED)
