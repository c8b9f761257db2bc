"""Slack-only wording: cards, buttons, modals, ephemeral refusals, alerts, delivery."""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.change_request import ChangeRequest, RequestState
from bot.core.commands import format_request_id as rid
from bot.core.fleet import ProgressEvent

# --- slack
# Words of the Slack front end (bot/frontends/slack, bot/frontends/server.py). Values that reach these
# functions from users (reasons, notes) are already escaped for mrkdwn by the caller.

SLACK_WORKING = "Working on it…"
SLACK_BUSY = "modelbot has too much work queued right now, so nothing was done. Try again in a minute."
SLACK_DEACTIVATED = "Deactivated Slack accounts cannot use modelbot; nothing was done."
SLACK_CANNOT_VERIFY_USER = "Slack could not confirm who you are right now, so nothing was done. Try again in a moment."
SLACK_MODAL_FAILED = 'Could not open the form; type the command again with --reason "what is wrong".'
SLACK_STALE_BUTTON = "This button does not belong to a modelbot request any more; see `/model requests`."
SLACK_APPROVE = "Approve"
SLACK_REJECT = "Reject"
SLACK_CONFIRM_TITLE = "Approve this change?"
SLACK_CONFIRM_DENY = "Cancel"
SLACK_MODAL_CANCEL = "Cancel"
SLACK_REASON_LABEL = "Reason"
SLACK_REJECT_TITLE = "Reject request"
SLACK_REJECT_SUBMIT = "Reject"
SLACK_REJECT_HINT = "Shown on the card and kept in the audit trail."
SLACK_ROLLBACK_TITLE = "Roll back a model"
SLACK_ROLLBACK_SUBMIT = "Request rollback"
SLACK_MODEL_LABEL = "Model"
SLACK_VERSION_LABEL = "Version to roll back to"
SLACK_ROLLBACK_HINT = "Why, e.g. INC-481 false positives. A rollback needs a reason; approvers see it on the card."
SLACK_VERSION_NOT_NUMBER = "Give a version number, e.g. 2."
SLACK_REASON_EMPTY = "Give a reason."
SLACK_FIELD_MODEL = "Model"
SLACK_FIELD_CHANGE = "Change"
SLACK_FIELD_REQUESTER = "Requested by"
SLACK_FIELD_APPROVALS = "Approvals"
SLACK_FIELD_APPROVERS = "Who can approve"
SLACK_FIELD_EXPIRES = "Expires"
SLACK_FIELD_REASON = "Reason"
SLACK_NOBODY = "nobody (check permissions.yaml)"
SLACK_NO_METADATA = "no registry metadata"
SLACK_EMERGENCY = ":rotating_light: Emergency rollback: no second person needed."
SLACK_UNAUTHORIZED = "missing or wrong bearer token"
# Bodies of refused POST /slack/events (Slack shows its own error; these are for whoever sent the request).
SLACK_REQUEST_INVALID = "invalid request"  # what bolt answers to a bad signature, kept for the same clients
SLACK_REQUEST_MALFORMED = "malformed request"
SLACK_REQUEST_TOO_LARGE = "request body too large"
SLACK_BAD_ALERT_JSON = "the body is not an Alertmanager webhook payload (JSON with an `alerts` list)"


def slack_modal_failed_reject(request_id: int) -> str:
    return f"Could not open the form; reject with `/model reject {rid(request_id)} --reason TEXT` instead."


def slack_card_title(req: ChangeRequest) -> str:
    frm = f"v{req.from_version}" if req.from_version is not None else "nothing"
    return f"{req.action.capitalize()} {rid(req.id)}: {req.model} {frm} → v{req.to_version}"


def slack_card_fallback(req: ChangeRequest) -> str:
    """The notification and screen-reader text of a card."""
    return f"{slack_card_title(req)} ({req.state.value}), requested by {req.requester}"


def slack_card_state(req: ChangeRequest, expires: str, decided_by: str, why: str) -> str:
    """One line saying where the request stands; `expires` is a Slack date token, `why` is escaped user text."""
    why = f": {why}" if why else ""
    return {
        RequestState.PENDING: f":hourglass_flowing_sand: *Waiting for {req.approvals_missing} more approval(s)*"
        f" — expires {expires}",
        RequestState.APPROVED: ":white_check_mark: *Approved* — the rollout is starting",
        RequestState.EXECUTING: ":gear: *Rolling out…*",
        RequestState.SUCCEEDED: f":large_green_circle: *SUCCEEDED* — {req.model} serves v{req.to_version}"
        f" as `{req.label}` on every replica",
        RequestState.PARTIAL: f":large_orange_circle: *PARTIAL* — v{req.to_version} is not served on every replica",
        RequestState.FAILED: f":red_circle: *FAILED* — {req.model} was not switched to v{req.to_version}",
        RequestState.REJECTED: f":no_entry: *Rejected* by {decided_by or 'someone'}{why}. Nothing was changed.",
        RequestState.EXPIRED: f":alarm_clock: *Expired* at {expires}. Nothing was changed.",
        RequestState.VOID: f":warning: *Void*: the served state of {req.model} changed since the request{why}."
        " Nothing was changed.",
    }[req.state]


def slack_change(req: ChangeRequest) -> str:
    frm = f"v{req.from_version}" if req.from_version is not None else "nothing"
    return f"`{req.label}`: {frm} → v{req.to_version}"


def slack_approvals(req: ChangeRequest, approvers: Sequence[str]) -> str:
    given = len(req.approvals)
    who = f" ({', '.join(approvers)})" if approvers else ""
    return f"{given} of {req.required_approvals}{who}"


def slack_version_heading(version: int | None, target: bool) -> str:
    shown = f"v{version}" if version is not None else "nothing"
    return f"{shown} ({'target' if target else 'now'})"


def slack_version_details(metrics: str, age: str, note: str) -> str:
    lines = [part for part in (metrics, f"{age} old" if age else "", f"_{note}_" if note else "") if part]
    return "\n".join(lines) or SLACK_NO_METADATA


def slack_age(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return "under a minute"


def slack_card_context(signature_note: str, plan: str) -> str:
    parts = [signature_note, f"Plan: {plan}" if plan else ""]
    return "  ·  ".join(p for p in parts if p) or "No plan recorded."


def slack_progress_heading(event: ProgressEvent) -> str:
    return f"*Progress* — {event.phase} {event.done}/{event.total}"


def slack_progress_line(replica: str, bar: str, event: ProgressEvent) -> str:
    detail = f" ({event.detail})" if event.detail else ""
    return f"`{replica}` {bar} {event.phase}: {event.state}{detail}"


def slack_result_heading(message: str) -> str:
    return f"*Result per replica*{f' — {message}' if message else ''}"


def slack_result_line(replica: str, ok: bool, detail: str) -> str:
    return f"{':white_check_mark:' if ok else ':x:'} `{replica}` — {detail or ('ok' if ok else 'failed')}"


def slack_more_lines(count: int) -> str:
    return f"… and {count} more"


def slack_approved_by(user: str, at: str) -> str:
    return f":ballot_box_with_check: Approved by {user} {at}"


def slack_audit_line(
    *,
    seq: object,
    at: str,
    actor: str,
    action: str,
    request_id: object,
    model: str,
    move: str,
    outcome: str,
    why: str,
    hash_: str,
) -> str:
    """One audit-channel post per audit row; `actor` is already a mention or plain name."""
    request = f" {rid(int(str(request_id)))}" if request_id else ""
    where = f" {model}" if model else ""
    tail = f" — {why}" if why else ""
    return f"#{seq} {at} {actor} {action}{request}{where}{move}: *{outcome}*{tail}  `{hash_[:12]}`"


def slack_move(from_version: object, to_version: object) -> str:
    return f" v{from_version}→v{to_version}" if to_version is not None else ""


def slack_alert_incident(alertname: str, model: str, summary: str, command: str | None) -> str:
    """The incident-channel post for a firing alert about a configured model."""
    head = f":rotating_light: Alert *{alertname}* is firing for *{model}*"
    head += f": {summary}" if summary else "."
    if command is None:
        return head + "\nNo earlier stable version is recorded, so there is no rollback to suggest."
    return head + f"\nTo roll back to the previous stable version:\n`{command}`"


def slack_alert_reason(alertname: str) -> str:
    return f"alert {alertname}"


SLACK_RESYNC = "Re-sync"


def slack_resync_confirm(model: str) -> str:
    return f"Send the desired state of {model} to the replicas that drifted from it?"
