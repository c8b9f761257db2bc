"""User-facing text of the service's replies (plain text; Slack renders the same words as mrkdwn)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.audit import AuditEntry
from bot.core.change_request import ChangeRequest, RequestState
from bot.core.commands import format_request_id as rid
from bot.core.desired import ModelState
from bot.core.errors import ModelbotError
from bot.core.fleet import Outcome, ProgressEvent, ReplicaStatus, RolloutResult
from bot.core.policy import ApprovalRule, Decision, Identity
from bot.core.rollout import RolloutPlan, Routing

STORE_DOWN = "The audit database is unreachable, so nothing was changed. Try again in a moment."
POLICY_ERROR = "the permission check failed, so the request is denied"
FLEET_BUSY = (
    "Another rollout is running on the fleet; this one is approved and waiting. Try `/model approve` again shortly."
)


def emergency_waits(req: ChangeRequest) -> str:
    """An emergency approved at once whose rollout could not start: another rollout holds the fleet."""
    return (
        f"{rid(req.id)} ({req.action} {req.model} to v{req.to_version}, emergency) is approved and waits for the fleet:"
        " another rollout is running. It starts by itself as soon as the fleet is free (no need to retry); its card"
        " and the incident channel will show the outcome."
    )


ROLLOUT_CRASHED = "the rollout stopped on an internal error; check `/model status` (details are in the bot's log)"
LEASE_LOST = (
    "another bot process took this rollout over after this one's fleet lease lapsed (database unreachable for"
    " longer than the lease); nothing more was sent from here, and the other process records what the fleet serves"
)
FLEET_BUSY_RESYNC = "Another rollout is running on the fleet; try `/model resync` again when it has finished."
SIGNATURE_NO_CURRENT = "no version is served yet, so there is no signature to compare with"


def usage_error(message: str, usage: str) -> str:
    return f"{message}\nUsage: {usage}" if usage else message


def error(exc: ModelbotError) -> str:
    return str(exc)


def internal_error(ref: str) -> str:
    return f"Something went wrong on our side and nothing was changed (ref {ref}). The details are in the bot's log."


def denied(decision: Decision, action: str) -> str:
    """The policy's own reason already names the rule and who can (bot/core/policy.py)."""
    return f"Denied: you may not `{action}`. {decision.reason}"


def version_not_on_disk(model: str, version: int, on_disk: Sequence[int]) -> str:
    have = ", ".join(str(v) for v in on_disk) or "none"
    return f"Version {version} of {model} is not on disk (available: {have}). Nothing was changed."


def already_serving(model: str, version: int, label: str) -> str:
    return f"{model} already serves version {version} as `{label}`; nothing to do."


def signature_unreadable(model: str, version: int) -> str:
    return f"Cannot read the serving_default signature of {model} v{version}; refusing to switch blind."


def signature_incompatible(model: str, current: int, target: int, problems: Sequence[str]) -> str:
    return f"{model} v{target} is not signature-compatible with v{current}: " + "; ".join(problems) + "."


def signature_ok(description: str) -> str:
    return f"signature compatible {description}"


def plan_summary(plan: RolloutPlan) -> str:
    spec = plan.spec
    frm = f"v{plan.from_version}" if plan.from_version is not None else "nothing"
    steps = []
    if plan.load.policy.versions != plan.before.policy.versions:
        steps.append(f"load v{spec.to_version}")
    if spec.routing is Routing.LABELS:
        steps.append(f"move `{spec.label}` {frm} -> v{spec.to_version}")
    else:
        steps.append(f"serve v{spec.to_version} as latest (drop higher versions)")
    removed = plan.removed_versions()
    if removed:
        steps.append("unload " + ", ".join(f"v{v}" for v in removed))
    return "; ".join(steps)


def resync_summary(plan: RolloutPlan, drifted: Mapping[str, int | str]) -> str:
    """The plan of a request for what the database already holds: the fleet drifted from it."""
    spec = plan.spec
    what = f"`{spec.label}` -> v{spec.to_version}" if spec.routing is Routing.LABELS else f"v{spec.to_version}"
    seen = ", ".join(
        f"{r} " + (f"resolves to v{v}" if isinstance(v, int) else f"answers {v}") for r, v in drifted.items()
    )
    return f"re-send the desired config ({what}) to every replica and verify: {seen}"


def dry_run(action: str, proposal: Any, rule: ApprovalRule) -> str:
    """`proposal` is a usecases.changes.Proposal (plan, statuses, signature note, drift)."""
    plan, statuses, note = proposal.plan, proposal.statuses, proposal.signature_note
    lines = [f"Dry run of {action} {plan.spec.model} -> v{plan.spec.to_version}: {proposal.summary()}", f"  {note}"]
    keep = list(plan.trim.policy.versions)
    for status in statuses:
        if status.error:
            lines.append(f"  {status.replica}: unreachable ({status.error})")
            continue
        loads = [v for v in keep if v not in status.available()]
        unloads = [v for v in status.available() if v not in keep]
        lines.append(
            f"  {status.replica}: now {_versions(status.available())} -> {_versions(keep)}"
            f" (load {_versions(loads)}, unload {_versions(unloads)})"
        )
    lines.append(f"  needs {rule.approvals} approval(s); nothing was changed")
    return "\n".join(lines)


def _versions(versions: Collection[int]) -> str:
    return ",".join(f"v{v}" for v in sorted(versions)) or "-"


def request_opened(req: ChangeRequest, approvers: Sequence[str]) -> str:
    frm = f"v{req.from_version}" if req.from_version is not None else "nothing"
    return (
        f"{rid(req.id)}: {req.requester} asks to {req.action} {req.model} {frm} -> v{req.to_version}"
        f" (`{req.label}`). Reason: {req.reason or '-'}\n"
        f"  Needs {req.approvals_missing} approval(s) from someone else"
        f" ({', '.join(a for a in approvers if a != req.requester) or 'nobody'}),"
        f" before {_time(req.expires_at)}. Approve with `/model approve {rid(req.id)}`."
    )


def approval_recorded(req: ChangeRequest) -> str:
    return f"{rid(req.id)}: approval recorded; {req.approvals_missing} more needed."


def request_rejected(req: ChangeRequest) -> str:
    why = f" ({req.decision_reason})" if req.decision_reason else ""
    return f"{rid(req.id)} rejected by {req.decided_by}{why}. Nothing was changed."


def review_acknowledged(req: ChangeRequest) -> str:
    review = req.retro_review
    who = review.acknowledged_by if review else "?"
    return f"Retro-review of emergency {rid(req.id)} ({req.model} -> v{req.to_version}) acknowledged by {who}."


def retro_review_reminder(req: ChangeRequest, review: Any, now: datetime) -> str:
    return (
        f"Retro-review overdue: emergency {rid(req.id)} by {req.requester} ({req.model} v{req.from_version} ->"
        f" v{req.to_version}, reason: {req.reason}) was due for review by an approver at {_time(review.due)}."
        f" Acknowledge with `/model review {rid(req.id)}`."
    )


def request_cancelled(req: ChangeRequest) -> str:
    return f"{rid(req.id)} withdrawn by {req.decided_by}, who requested it. Nothing was changed."


def unknown_request(request_id: int) -> str:
    return f"{rid(request_id)} does not exist. See `/model requests`."


def request_expired(req: ChangeRequest) -> str:
    return f"{rid(req.id)} expired at {_time(req.expires_at)}; open a new request if it is still needed."


def request_busy(request_id: int) -> str:
    return f"{rid(request_id)} is being decided by someone else right now; try again."


def request_void(req: ChangeRequest) -> str:
    return (
        f"{rid(req.id)} is void: the served state of {req.model} changed since it was requested. Nothing was changed."
    )


def already_decided(req: ChangeRequest) -> str:
    return f"{rid(req.id)} is already {req.state.value}."


def progress_line(event: ProgressEvent) -> str:
    if not event.replica:  # a fleet-wide milestone, e.g. the final verdict
        return f"  [{event.phase}] {event.state}" + (f" {event.detail}" if event.detail else "")
    detail = f" {event.detail}" if event.detail else ""
    return f"  [{event.phase} {event.done}/{event.total}] {event.replica}: {event.state}{detail}"


def rollout_finished(req: ChangeRequest, result: RolloutResult) -> str:
    head = {
        Outcome.SUCCEEDED: (
            f"{rid(req.id)} SUCCEEDED: {req.model} serves v{req.to_version} as `{req.label}` on every replica"
        ),
        Outcome.PARTIAL: f"{rid(req.id)} PARTIAL: {req.model} v{req.to_version} is not served everywhere",
        Outcome.FAILED: f"{rid(req.id)} FAILED: {req.model} was not switched to v{req.to_version}",
    }[result.outcome]
    lines = [f"{head} ({result.elapsed_s:.2f}s). {result.message}".rstrip()]
    for r in result.replicas:
        if r.replica:
            mark = "ok " if r.ok else "FAIL"
            lines.append(f"  {mark} {r.replica}: {r.detail or r.phase}")
    return "\n".join(lines)


def outcome_unrecorded(req: ChangeRequest, result: RolloutResult) -> str:
    return (
        f"{rollout_finished(req, result)}\n"
        f"WARNING: the audit database is unreachable, so this outcome is not recorded yet; {rid(req.id)} stays"
        " EXECUTING and the bot records it as soon as the database is back. Check `/model status` before acting"
        " again."
    )


def recorded_late(down_since: datetime, recorded_at: datetime) -> str:
    return (
        f"recorded late: the database was unreachable when the rollout ended ({_seconds(down_since)});"
        f" recorded at {_seconds(recorded_at)}"
    )


def store_lost_mid_rollout(phase: str, detail: str) -> str:
    return (
        f"the database became unreachable before the {phase} phase ({detail}); nothing more was sent, so every"
        " replica keeps the config of the previous phase, which the database also holds"
    )


def recovered(holder: str | None, finished: bool, found: Mapping[str, str], restored: int | None) -> str:
    who = f"the process running it ({holder})" if holder else "the process running it"
    seen = ", ".join(f"{n} {what}" for what, n in sorted(Counter(found.values()).items()))
    if finished:
        did = "it had switched every replica that answers, so the switch was confirmed on every replica"
    elif restored is None:
        did = "the model was restored to not being served, as before the rollout"
    else:
        did = f"the state before the rollout (v{restored}) was restored on every replica"
    return (
        f"recovered: {who} stopped renewing its fleet lease (it died, or lost the database for too long)."
        f" Found {seen}; {did}."
    )


def incident_payload(req: ChangeRequest, result: RolloutResult) -> dict[str, Any]:
    return {
        "request_id": req.id,
        "model": req.model,
        "action": req.action,
        "outcome": result.outcome.value,
        "text": rollout_finished(req, result),
        "reason": req.reason,
        "requester": req.requester,
        "approvers": [a.user_id for a in req.approvals],
    }


@dataclass(frozen=True)
class ModelRow:
    name: str
    labels: Mapping[str, int]
    desired: Sequence[int]
    replicas: Sequence[ReplicaStatus]
    route: str | None = None  # the label clients use (None: unversioned requests)
    expected: int | None = None  # the version `route` must resolve to, per the desired state
    resolved: Mapping[str, int | str] | None = None  # per replica, what `route` resolves to there
    rolling: bool = False  # a rollout of this model is running now


LIST_PAGE_CHARS = 3500  # one Slack section's worth (3,000-character sections, 40,000 per message): readable too
LIST_SHOWN_IN_SYNC = 15  # models in sync named one per line before they are summarised


def model_list(rows: Sequence[ModelRow], *, show_all: bool = False, page: int = 1, prefix: str = "") -> str:
    """Problems first (drift, unreachable replicas, desired versions not loaded, rollout running), then the
    models in sync: compact by default, every one with `show_all`, paged to stay within Slack's limits.
    A replica is healthy only when it answers, has the desired versions loaded and resolves the route to the
    desired version: a fleet split by a half-done change is never reported healthy."""
    if not rows:
        return f"No model matches {prefix!r}." if prefix else "No models configured."
    problems = [(row, _row_problems(row)) for row in rows]
    bad = [(row, why) for row, why in problems if why]
    good = [row for row, why in problems if not why]
    matching = f" matching {prefix!r}" if prefix else ""
    head = f"{len(rows)} models{matching}: {len(bad)} with problems, {len(good)} in sync on every replica."
    lines = [f"{_row_line(row)}; PROBLEM: {'; '.join(why)}" for row, why in bad]
    if show_all or len(good) <= LIST_SHOWN_IN_SYNC:
        lines += [_row_line(row) for row in good]
    else:
        lines.append(_in_sync_summary(good))
    pages = _pages(lines, LIST_PAGE_CHARS - len(head) - 200)
    page = min(page, len(pages))
    out = [head, *pages[page - 1]]
    if len(pages) > 1:
        more = "--all " if show_all else ""
        nxt = (
            f"; next: `/model list {prefix + ' ' if prefix else ''}{more}--page {page + 1}`"
            if page < len(pages)
            else ""
        )
        out.append(f"(page {page} of {len(pages)}{nxt})")
    return "\n".join(out)


def _row_line(row: ModelRow) -> str:
    up = [s for s in row.replicas if not s.error]
    loaded = sorted({v for s in up for v in s.available()})
    labels = " ".join(f"{k}=v{v}" for k, v in sorted(row.labels.items())) or "no labels"
    healthy = len(up) - len(_row_drift(row, up))
    return (
        f"{row.name}: {labels}; loaded {_versions(loaded)}; desired {_versions(row.desired)};"
        f" {healthy}/{len(row.replicas)} replicas healthy"
    )


def _row_problems(row: ModelRow) -> list[str]:
    up = [s for s in row.replicas if not s.error]
    problems = []
    if row.rolling:
        problems.append("a rollout is running")
    down = [s.replica for s in row.replicas if s.error and s.error_code != "NOT_FOUND"]
    if down:
        problems.append("unreachable: " + ", ".join(down))
    missing = [s.replica for s in row.replicas if s.error_code == "NOT_FOUND" and row.desired]
    if missing:
        problems.append("not served on: " + ", ".join(missing))
    drift = _row_drift(row, up)
    if drift:
        problems.append("DRIFT: " + "; ".join(drift) + f" (see `/model status {row.name}`)")
    return problems


def _row_drift(row: ModelRow, up: Sequence[ReplicaStatus]) -> list[str]:
    route = f"`{row.route}`" if row.route else "unversioned requests"
    drift = []
    for status in up:
        missing = [v for v in row.desired if v not in status.available()]
        got = (row.resolved or {}).get(status.replica, row.expected)
        if got != row.expected and row.expected is not None:
            drift.append(f"{status.replica} resolves {route} to {got if isinstance(got, str) else f'v{got}'}")
        elif missing:
            drift.append(f"{status.replica} has not loaded {_versions(missing)}")
    return drift


def _in_sync_summary(rows: Sequence[ModelRow]) -> str:
    names = ", ".join(r.name for r in rows[:LIST_SHOWN_IN_SYNC])
    return f"In sync ({len(rows)}): {names}, … (`/model list --all` lists every model)"


def _pages(lines: Sequence[str], budget: int) -> list[list[str]]:
    pages: list[list[str]] = [[]]
    size = 0
    for text in lines:
        line = text if len(text) <= budget else text[: budget - 1] + "…"
        if pages[-1] and size + len(line) + 1 > budget:
            pages.append([])
            size = 0
        pages[-1].append(line)
        size += len(line) + 1
    return pages


@dataclass(frozen=True)
class VersionRow:
    version: int
    on_disk: bool
    labels: Sequence[str]
    metadata: Mapping[str, Any]
    states: Mapping[str, str]


def version_table(model: str, rows: Sequence[VersionRow]) -> str:
    lines = [f"{model} versions:"]
    for row in rows:
        labels = f" [{', '.join(row.labels)}]" if row.labels else ""
        disk = "" if row.on_disk else " (not on disk)"
        metrics = row.metadata.get("metrics") or {}
        meta = " ".join(f"{k}={v}" for k, v in sorted(metrics.items()))
        if row.metadata.get("note"):
            meta += f"  note: {row.metadata['note']}"
        if row.metadata.get("registered_by"):
            meta += f" (registered by {row.metadata['registered_by']})"
        states = " ".join(f"{replica}={state}" for replica, state in sorted(row.states.items()))
        lines.append(f"  v{row.version}{labels}{disk}: {states}" + (f"\n      {meta.strip()}" if meta.strip() else ""))
    return "\n".join(lines)


def status_report(
    state: ModelState,
    label: str | None,
    expected: int | None,
    statuses: Sequence[ReplicaStatus],
    resolved: Mapping[str, int | str],
) -> str:
    target = f"`{label}`" if label else "latest"
    lines = [f"{state.name}: desired {_versions(state.policy.versions)}, {target} -> v{expected}"]
    for status in statuses:
        if status.error:
            lines.append(f"  {status.replica}: UNREACHABLE {status.error}")
            continue
        got = resolved.get(status.replica)
        drift = []
        if set(status.available()) != set(state.policy.versions):
            drift.append(f"loaded {_versions(status.available())}")
        if got != expected:
            drift.append(f"{target} resolves to {got if isinstance(got, str) else f'v{got}'}")
        states = " ".join(f"v{v.version}={v.state.value}" for v in status.versions if v.state.value != "END")
        lines.append(
            f"  {status.replica}: {states or '-'}" + (f"  DRIFT: {'; '.join(drift)}" if drift else "  in sync")
        )
    return "\n".join(lines)


def history(model: str | None, entries: Sequence[AuditEntry]) -> str:
    head = f"History of {model}:" if model else "History:"
    lines = [head]
    for e in entries:
        req = f" {rid(e.request_id)}" if e.request_id else ""
        detail = e.detail or {}
        move = ""
        if "to_version" in detail:
            move = f" v{detail.get('from_version')}->v{detail.get('to_version')}"
        lines.append(f"  #{e.seq} {_time(e.at)} {e.actor} {e.action}{req} {e.model or ''}{move}: {e.outcome}")
    return "\n".join(lines) if entries else head + " nothing yet."


def open_requests(requests: Sequence[ChangeRequest], now: datetime, reviews: Sequence[ChangeRequest] = ()) -> str:
    lines = _retro_lines(reviews, now)
    if not requests:
        return "\n".join([*lines, "No open requests."])
    lines.append("Open requests:")
    for r in requests:
        wait = "" if r.state is not RequestState.PENDING else f", needs {r.approvals_missing} more"
        lines.append(
            f"  {rid(r.id)} {r.action} {r.model} v{r.from_version}->v{r.to_version} by {r.requester}:"
            f" {r.state.value}{wait}, expires {_time(r.expires_at)}"
        )
    return "\n".join(lines)


def _retro_lines(reviews: Sequence[ChangeRequest], now: datetime) -> list[str]:
    if not reviews:
        return []
    lines = ["Emergencies waiting for a retro-review (`/model review R…`):"]
    for r in reviews:
        review = r.retro_review
        due = "" if review is None else (" OVERDUE" if review.overdue(now) else f", due {_time(review.due)}")
        lines.append(
            f"  {rid(r.id)} {r.model} v{r.from_version}->v{r.to_version} by {r.requester}: {r.state.value}{due}"
        )
    return lines


def whoami(identity: Identity, roles: Collection[str], actions: Collection[str]) -> str:
    groups = f" (groups: {', '.join(sorted(identity.groups))})" if identity.groups else ""
    return (
        f"You are {identity.user_id}{groups}.\n  Roles: {', '.join(sorted(roles)) or 'none'}\n"
        f"  You may: {', '.join(sorted(actions)) or 'nothing (deny by default)'}"
    )


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _seconds(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


# --- drift and re-sync


def drift_detected(model: str, replicas: Mapping[str, Sequence[str]]) -> str:
    lines = [f"DRIFT: {model} is not served as the bot decided on {len(replicas)} replica(s):"]
    lines += [f"  {replica}: {'; '.join(what)}" for replica, what in sorted(replicas.items())]
    lines.append(f"Re-sync sends the desired state to those replicas only (`/model resync {model}`).")
    return "\n".join(lines)


def drift_resolved(model: str) -> str:
    return f"{model}: every replica that answers serves the desired state again."


def resync_not_served(model: str) -> str:
    return f"{model} is not in the desired state yet, so there is nothing to re-send."


def resync_nothing(model: str) -> str:
    return f"{model}: every replica that answers already serves the desired state; nothing was sent."


def resync_replica(before: Sequence[str], after: Sequence[str] | None, error: str | None) -> str:
    was = "; ".join(before)
    if after is None:
        return f"was: {was}; re-sent and verified"
    sent = f" (sending failed: {error})" if error else ""
    return f"was: {was}; still: {'; '.join(after)}{sent}"


def resync_done(model: str, outcome: Outcome, replicas: Sequence[Any]) -> str:
    head = {
        Outcome.SUCCEEDED: f"Re-sync of {model} SUCCEEDED: every drifted replica serves the desired state again",
        Outcome.PARTIAL: f"Re-sync of {model} PARTIAL: some replicas still differ",
        Outcome.FAILED: f"Re-sync of {model} FAILED: no drifted replica could be brought back",
    }[outcome]
    lines = [head + "."]
    lines += [f"  {'ok ' if r.ok else 'FAIL'} {r.replica}: {r.detail}" for r in replicas]
    return "\n".join(lines)


# --- freezes


def _target(model: str) -> str:
    return "every model" if model == "*" else model


def frozen_now(model: str, actor: str, reason: str, until: datetime | None) -> str:
    how_long = f" until {_seconds(until)}" if until else " until `/model unfreeze`"
    return (
        f"{_target(model)} frozen by {actor}{how_long}: {reason}. Promotes and rollbacks are refused; an"
        " `--emergency` rollback still runs (and says it overrode the freeze)."
    )


def unfrozen_now(model: str, actor: str) -> str:
    return f"{_target(model)} unfrozen by {actor}; changes are possible again."


def not_frozen(model: str) -> str:
    return f"{_target(model)} is not frozen (scheduled freeze windows are lifted by editing permissions.yaml)."


def model_frozen(freeze: Any) -> str:
    if freeze.window is not None:
        w = freeze.window
        return (
            f"{freeze.model} is frozen by a scheduled window ({', '.join(w.weekdays)} {w.start:%H:%M}-{w.end:%H:%M}"
            f" {w.tz}): {freeze.reason}. Only an `--emergency` rollback may change it now."
        )
    until = f" until {_seconds(freeze.until)}" if freeze.until else " until someone runs `/model unfreeze`"
    return (
        f"{freeze.model} is frozen by {freeze.actor} since {_seconds(freeze.since)}{until}: {freeze.reason}."
        " Only an `--emergency` rollback may change it now."
    )


def overrode_freeze(freeze: Any) -> str:
    who = f"{freeze.actor}'s freeze" if freeze.actor else "a scheduled freeze window"
    return f"This emergency overrode {who} ({freeze.reason})."
