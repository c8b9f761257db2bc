"""One request's story as postmortem evidence: markdown and JSON for `modelbot audit export --request`, and the
few lines of `/model explain`. The facts come from bot.core.postmortem.RequestStory; only words live here."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.core.audit import AuditEntry, format_time
from bot.core.commands import format_request_id as rid

if TYPE_CHECKING:  # texts read the story's fields
    from bot.core.postmortem import RequestStory

NO_ROLES = "no roles"


def story_dict(story: RequestStory) -> dict[str, Any]:
    """Every fact of the story as JSON-ready data (times in UTC ISO 8601); `markdown` renders the same facts."""
    req = story.request
    review = req.retro_review
    return {
        "request": rid(req.id),
        "request_id": req.id,
        "action": req.action,
        "model": req.model,
        "from_version": req.from_version,
        "to_version": req.to_version,
        "label": req.label,
        "emergency": req.emergency,
        "state": req.state.value,
        "requester": {"user": req.requester, "roles": list(story.roles.get(req.requester, ()))},
        "reason": req.reason,
        "created_at": _iso(req.created_at),
        "expires_at": _iso(req.expires_at),
        "required_approvals": req.required_approvals,
        "approvers": [
            {"user": a.user_id, "at": _iso(a.at), "roles": list(story.roles.get(a.user_id, ()))} for a in req.approvals
        ],
        "decided_by": req.decided_by,
        "decision_reason": req.decision_reason,
        "retro_review": review.as_extra() if review else None,
        "plan": req.dry_run_plan,
        "signature_note": str(req.extra.get("signature_note", "")),
        "preflight": req.extra.get("preflight"),
        "alert": story.alert,
        "timeline": [entry.to_dict() for entry in story.rows],
        "operations": [_operation(op) for op in story.operations],
        "chain": {
            "verified": story.chain.ok,
            "checked": story.chain.checked,
            "first_bad_seq": story.chain.first_bad_seq,
            "problem": story.chain.problem,
            "head_seq": story.head[0],
            "head_hash": story.head[1],
            "rows": [{"seq": e.seq, "prev_hash": e.prev_hash, "hash": e.hash} for e in story.rows],
        },
    }


def as_json(story: RequestStory) -> str:
    return json.dumps(story_dict(story), indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def markdown(story: RequestStory) -> str:
    """The story ready to paste into a postmortem document."""
    data = story_dict(story)
    req = story.request
    frm = f"v{req.from_version}" if req.from_version is not None else "nothing"
    lines = [
        f"# {rid(req.id)}: {req.action} {req.model} {frm} -> v{req.to_version} (`{req.label}`)",
        "",
        "## Summary",
        f"- Outcome: **{req.state.value}**" + (" (emergency)" if req.emergency else ""),
        f"- Requested by: {_person(req.requester, story.roles)} at {_utc(req.created_at)}",
        f"- Reason: {req.reason or '(none given)'}",
        f"- Approvals required: {req.required_approvals}",
        *_approver_lines(story),
    ]
    if req.decided_by and (req.decided_by not in story.approvers or req.decision_reason):
        lines.append(f"- Decided by: {_person(req.decided_by, story.roles)}: {req.decision_reason or '-'}")
    if data["retro_review"]:
        by = data["retro_review"]["acknowledged_by"]
        lines.append(f"- Retro-review: {f'acknowledged by {by}' if by else 'not acknowledged yet'}")
    if story.alert is not None:
        lines.append(f"- Linked alert: {_alert(story.alert)}")
    lines += ["", "## Plan", req.dry_run_plan or "(no plan recorded)", "", "## Pre-flight and signature"]
    lines.append(f"- Signature: {data['signature_note'] or '(no signature note recorded)'}")
    if data["preflight"] is not None:
        lines.append(f"- Pre-flight: {data['preflight']}")
    lines += [
        "",
        "## Timeline (UTC)",
        "| seq | time | actor | action | outcome | detail |",
        "|---|---|---|---|---|---|",
    ]
    lines += [_timeline_row(e) for e in story.rows] or ["| - | - | - | - | - | no audit rows |"]
    lines += ["", "## Rollout per replica", *_operation_lines(story.operations)]
    lines += ["", "## Hash-chain proof", *_proof_lines(story)]
    return "\n".join(lines) + "\n"


def explain(story: RequestStory) -> str:
    """The short version for Slack and the console (`/model explain R7`)."""
    req = story.request
    frm = f"v{req.from_version}" if req.from_version is not None else "nothing"
    emergency = " (emergency)" if req.emergency else ""
    lines = [
        f"{rid(req.id)}: {req.requester} asked to {req.action} {req.model} {frm} -> v{req.to_version}{emergency}"
        f" at {_utc(req.created_at)}, because: {req.reason or '(no reason given)'}",
    ]
    approvers = ", ".join(f"{a.user_id} ({_roles(story.roles, a.user_id)})" for a in req.approvals)
    lines.append(f"Approved by: {approvers or 'nobody'}")
    if req.decided_by and req.decided_by not in story.approvers:
        lines.append(f"Decided by {req.decided_by}: {req.decision_reason or req.state.value}")
    for op in story.operations:
        for r in op["replicas"]:
            served = f", serving v{r['served_version']}" if r.get("served_version") is not None else ""
            lines.append(f"  {r['replica'] or 'fleet'}: {'ok' if r['ok'] else 'FAILED'} at {r['phase']}{served}")
    if story.alert is not None:
        lines.append(f"Alert: {_alert(story.alert)}")
    lines.append(f"Outcome: {req.state.value}")
    lines.append(f"Audit chain verified: {_chain_word(story)} ({len(story.rows)} rows about {rid(req.id)})")
    return "\n".join(lines)


def _chain_word(story: RequestStory) -> str:
    if story.chain.ok:
        return "yes"
    return f"NO, broken at row #{story.chain.first_bad_seq}: {story.chain.problem}"


def _approver_lines(story: RequestStory) -> list[str]:
    approvals = story.request.approvals
    if not approvals:
        return ["- Approved by: nobody"]
    return [f"- Approved by: {_person(a.user_id, story.roles)} at {_utc(a.at)}" for a in approvals]


def _timeline_row(entry: AuditEntry) -> str:
    shown = {k: v for k, v in entry.detail.items() if k not in ("from_version", "to_version", "label", "state")}
    detail = json.dumps(shown, sort_keys=True, ensure_ascii=False) if shown else ""
    cells = [f"#{entry.seq}", _utc(entry.at), entry.actor, entry.action, entry.outcome, detail]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _operation_lines(operations: Sequence[Mapping[str, Any]]) -> list[str]:
    if not operations:
        return ["(no rollout ran)"]
    lines: list[str] = []
    for op in operations:
        finished = _utc(op["finished_at"]) if op["finished_at"] else "never (unfinished)"
        lines.append(
            f"- Operation {op['id']} by {op.get('holder') or '?'}: started {_utc(op['started_at'])}, finished"
            f" {finished}, outcome **{op['outcome'] or 'none'}**, phases {', '.join(op['phases_run']) or '-'}"
        )
        if op["message"]:
            lines.append(f"  - {op['message']}")
        for r in op["replicas"]:
            served = f", serving v{r['served_version']}" if r.get("served_version") is not None else ""
            state = "ok" if r["ok"] else "FAILED"
            lines.append(f"  - `{r['replica'] or 'fleet'}`: {state} at {r['phase']}{served}: {r['detail'] or '-'}")
    return lines


def _proof_lines(story: RequestStory) -> list[str]:
    head_seq, head_hash = story.head
    verdict = "verified" if story.chain.ok else f"BROKEN at row #{story.chain.first_bad_seq}: {story.chain.problem}"
    lines = [
        f"- Whole chain: {verdict} ({story.chain.checked} rows checked)",
        f"- Head: seq {head_seq}, hash `{head_hash}`",
        "",
        "| seq | prev_hash | hash |",
        "|---|---|---|",
    ]
    lines += [f"| #{e.seq} | `{e.prev_hash}` | `{e.hash}` |" for e in story.rows]
    lines += ["", "Re-check with `modelbot audit verify`; each hash is sha256(prev_hash + canonical JSON of the row)."]
    return lines


def _operation(op: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **op,
        "started_at": _iso(op["started_at"]),
        "finished_at": _iso(op["finished_at"]) if op["finished_at"] else None,
    }


def _person(user: str, roles: Mapping[str, Sequence[str]]) -> str:
    return f"{user} ({_roles(roles, user)})"


def _roles(roles: Mapping[str, Sequence[str]], user: str) -> str:
    return ", ".join(roles.get(user, ())) or NO_ROLES


def _alert(alert: object) -> str:
    if isinstance(alert, Mapping):
        return ", ".join(f"{k}={v}" for k, v in sorted(alert.items()))
    return str(alert)


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return format_time(_aware(moment))


def _utc(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
