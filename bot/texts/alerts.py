"""Wording of alerts: incident posts (Block Kit parts), the rollback modal opened from one, auto-rollback
decisions, PagerDuty and the alert endpoints. Values from alerts (names, summaries) reach these functions
already escaped for mrkdwn by the caller; Block Kit limits are applied by the caller (clip)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.core.auto_rollback import Hold
from bot.core.commands import format_request_id as rid

BUTTON_ROLLBACK_PREFIX = "Request rollback to v"
PICK_PLACEHOLDER = "Request rollback to…"
MODAL_TITLE = "Roll back on alert"
MODAL_SUBMIT = "Request rollback"
MODAL_REASON_HINT = "Approvers see it on the card; it is kept in the audit trail with the alert."
MODAL_FAILED = "Could not open the form; type `/model rollback MODEL VERSION --reason TEXT` instead."
STALE = "This alert post no longer matches a recorded alert; type `/model rollback` instead."
NO_CHANNEL_NOTE = "No version below the current one is on disk, so there is nothing to roll back to."
BAD_PAGERDUTY = "the body is not a PagerDuty V3 webhook payload (JSON with an `event` object)"
PAGERDUTY_UNSIGNED = "missing or wrong X-PagerDuty-Signature"
PAGERDUTY_NOT_CONFIGURED = "PagerDuty webhooks are not enabled (MODELBOT_PAGERDUTY_SECRET is not set)"
SYSTEM_ACTOR_REFUSED = "system-actor: `modelbot` is the bot itself; nobody acts under that name, so nothing was done."


def button_rollback(version: int) -> str:
    return f"{BUTTON_ROLLBACK_PREFIX}{version}"


def option_version(version: int, current: int | None) -> str:
    return f"v{version}" + (" (previous)" if current is not None and version == current - 1 else "")


def reason(alertname: str, summary: str) -> str:
    """The modal's pre-filled reason (and the automatic rollback's)."""
    return f"alert {alertname}: {summary}" if summary else f"alert {alertname}"


def incident_heading(alertname: str, model: str, source: str) -> str:
    via = "" if source == "alertmanager" else f" ({source})"
    return f":rotating_light: Alert *{alertname}* is firing for *{model}*{via}"


def resolved_heading(alertname: str, model: str, at: datetime | None) -> str:
    when = f" at {at:%Y-%m-%d %H:%M:%S} UTC" if at else ""
    return f":white_check_mark: Alert *{alertname}* for *{model}* resolved{when}"


def details(summary: str, since: datetime, notifications: int, link: str) -> str:
    lines = [summary] if summary else []
    lines.append(f"Firing since {since:%Y-%m-%d %H:%M:%S} UTC · {notifications} notification(s)")
    if link:
        lines.append(f"<{link}|Source>")
    return "\n".join(lines)


def command_hint(command: str) -> str:
    return f"Or type: `{command}`"


def fallback(alertname: str, model: str, summary: str, command: str | None, resolved: bool) -> str:
    """The notification text of the post (and what clients without blocks show)."""
    state = "resolved" if resolved else "firing"
    head = f"Alert {alertname} {state} for {model}" + (f": {summary}" if summary else "")
    if command and not resolved:
        head += f"\nTo roll back to the previous stable version:\n`{command}`"
    return head


def no_target() -> str:
    return "No earlier stable version is recorded and no lower version is on disk: no rollback to offer."


def pick_note() -> str:
    return "No earlier stable version is recorded (the fleet was adopted): pick a version on disk to roll back to."


def auto_reason(alertname: str, summary: str) -> str:
    """The reason of an automatic rollback's request."""
    return f"automatic rollback: {reason(alertname, summary)}"


def auto_acted(request_id: int, target: int, state: str) -> str:
    return f":robot_face: modelbot rolled back automatically to v{target} as emergency {rid(request_id)} ({state})."


def auto_waiting(until: datetime) -> str:
    return f":hourglass: Automatic rollback is armed: it acts if the alert still fires at {until:%H:%M:%S} UTC."


def auto_held(why: str) -> str:
    return f":octagonal_sign: Automatic rollback held back: {why} A human decides: use the button below."


def auto_skipped() -> str:
    return "Automatic rollback not needed: the alert resolved before min_firing."


def hold_reason(hold: Hold, *, until: datetime | None = None, detail: str = "", max_per_hour: int = 0) -> str:
    """Why a guardrail held the automatic rollback back (one sentence, stored and posted)."""
    if hold is Hold.FROZEN:
        return f"the model is frozen ({detail})." if detail else "the model is frozen."
    if hold is Hold.BUSY:
        return "another rollout is running (or waiting for its recovery)."
    if hold is Hold.COOLDOWN:
        end = f" (until {until:%Y-%m-%d %H:%M:%S} UTC)" if until else ""
        return f"the model changed within its cooldown{end}."
    if hold is Hold.BUDGET:
        return f"the limit of {max_per_hour} automatic rollback(s) per hour is reached."
    if hold is Hold.NO_TARGET:
        return "no last-known-good version is recorded (stable for min_stable, other than the current one)."
    return f"the last-known-good version fails pre-flight: {detail}"


def duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    return f"{seconds // 60}m" if seconds % 60 == 0 and seconds else f"{seconds}s"
