"""Every user-facing sentence of modelbot in one place; front ends and use cases never invent text.

Plain module-level constants and functions, grouped by the part of the bot that uses them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# --- parsing and help

COMMAND = "/model"
GENERAL_USAGE = (
    f"{COMMAND} help|list|versions|status|promote|rollback|approve|reject|cancel|review|requests|history|whoami"
    "|resync|explain|smoke|freeze|unfreeze ..."
    f" (details: {COMMAND} help VERB)"
)

USAGE: dict[str, str] = {
    "help": f"{COMMAND} help [VERB]",
    "list": f"{COMMAND} list [PREFIX] [--all] [--page N]",
    "versions": f"{COMMAND} versions MODEL",
    "status": f"{COMMAND} status MODEL",
    "promote": f"{COMMAND} promote MODEL VERSION [--label stable|canary] [--reason TEXT] [--dry-run]",
    "rollback": f"{COMMAND} rollback MODEL VERSION [--reason TEXT] [--dry-run] [--emergency]",
    "approve": f"{COMMAND} approve REQUEST_ID",
    "reject": f"{COMMAND} reject REQUEST_ID [--reason TEXT]",
    "requests": f"{COMMAND} requests",
    "history": f"{COMMAND} history [MODEL] [--limit N]",
    "whoami": f"{COMMAND} whoami",
    "resync": f"{COMMAND} resync MODEL",
    "cancel": f"{COMMAND} cancel REQUEST_ID",
    "freeze": f"{COMMAND} freeze MODEL|all --reason TEXT [--for 2h]",
    "unfreeze": f"{COMMAND} unfreeze MODEL|all",
    "review": f"{COMMAND} review REQUEST_ID",
    "explain": f"{COMMAND} explain REQUEST_ID",
    "smoke": f"{COMMAND} smoke MODEL VERSION",
}

SUMMARY: dict[str, str] = {
    "help": "show what you may run, or the details of one command",
    "list": "models, their stable/canary versions, loaded versions and health",
    "versions": "versions on disk, registry metadata and state on each replica",
    "status": "per-replica state and drift from the desired state",
    "promote": "point a label (stable by default) at a version, once someone else approves",
    "rollback": "move stable back to an earlier version, once someone else approves (a reason is required)",
    "approve": "approve a pending request (never your own)",
    "reject": "reject a pending request, or withdraw your own",
    "requests": "pending approval requests",
    "history": "recent changes and decisions, newest first",
    "whoami": "your Slack ID, groups, roles and what you may run",
    "resync": "re-send the desired state to replicas that drifted from it (needs rollback)",
    "cancel": "withdraw your own pending request",
    "freeze": "refuse promote/rollback of a model (or all) while investigating; emergencies still run",
    "unfreeze": "lift a freeze you or someone else set with /model freeze",
    "review": "acknowledge an emergency rollback (retro-review; never your own)",
    "explain": "the short story of one request: who asked and why, who approved, what each replica did",
    "smoke": "send the model's golden request to VERSION on every replica and compare the answers (read-only)",
}

FLAG_HELP: dict[str, str] = {
    "--reason": '--reason TEXT   why; quote several words: --reason "INC-481 false positives"',
    "--label": "--label LABEL   stable (default) or canary",
    "--dry-run": "--dry-run       show the plan and the checks, change nothing",
    "--emergency": "--emergency     roll back without a second person (needs rollback_emergency)",
    "--limit": "--limit N       how many entries, 1 to 200 (default 20)",
    "--all": "--all           every model, not only those with problems (paged)",
    "--page": "--page N        which page of a long list (default 1)",
    "--for": "--for DURATION  how long, e.g. 30m, 2h, 1d (default: until unfrozen)",
}

HELP_HEADER = "modelbot commands you may run:"
HELP_FOOTER = f"Details of one command: {COMMAND} help VERB. Request ids look like R7."
HELP_NOTHING_ALLOWED = (
    "You may not run any modelbot command yet: ask whoever owns permissions.yaml to add your Slack ID "
    "or one of your user groups."
)
HELP_REQUEST_ID = "REQUEST_ID is the request's number, e.g. R7 (r7 or 7 work too)."


def help_line(usage: str, summary: str) -> str:
    return f"{usage} — {summary}"


def help_permission(action: str, allowed: bool) -> str:
    if allowed:
        return f"You may run this (permission '{action}')."
    return f"You may not run this: it needs the '{action}' permission."


def _shown(value: str, limit: int = 40) -> str:
    """Echo a piece of user input back, shortened so one error stays one line."""
    return f"'{value}'" if len(value) <= limit else f"'{value[: limit - 1]}…'"


def _did_you_mean(suggestion: str | None) -> str:
    return f"; did you mean {suggestion}?" if suggestion else ""


def unknown_verb(verb: str, suggestion: str | None) -> str:
    return f"unknown command {_shown(verb)}{_did_you_mean(suggestion)}"


def unknown_model(model: str, suggestion: str | None, known: Sequence[str]) -> str:
    if suggestion:
        return f"unknown model {_shown(model)}{_did_you_mean(suggestion)}"
    if not known:
        return f"unknown model {_shown(model)}: no models are configured"
    if len(known) <= 8:
        return f"unknown model {_shown(model)} (models: {', '.join(sorted(known))})"
    return f"unknown model {_shown(model)} (see {COMMAND} list)"


def unknown_flag(flag: str, suggestion: str | None) -> str:
    return f"unknown option {_shown(flag)}{_did_you_mean(suggestion)}"


def flag_not_for_verb(flag: str, verb: str, valid: Iterable[str]) -> str:
    options = ", ".join(valid)
    takes = f"{verb} takes {options}" if options else f"{verb} takes no options"
    return f"{flag} does not apply to {verb}; {takes}"


def flag_needs_value(flag: str, metavar: str) -> str:
    return f"{flag} needs a value: {flag} {metavar}"


def flag_takes_no_value(flag: str) -> str:
    return f"{flag} takes no value"


def flag_repeated(flag: str) -> str:
    return f"{flag} is given twice"


def empty_reason(flag: str) -> str:
    return f"{flag} is empty; say why in a few words"


def missing_argument(name: str) -> str:
    return f"missing {name}"


def bad_version(token: str, suggestion: int | None) -> str:
    hint = _did_you_mean(str(suggestion)) if suggestion is not None else ""
    return f"VERSION must be a positive whole number, not {_shown(token)}{hint}"


def version_too_large(token: str) -> str:
    return f"VERSION {_shown(token)} is too large"


def bad_request_id(token: str) -> str:
    return f"REQUEST_ID must look like R7, not {_shown(token)}"


def request_id_too_large(token: str) -> str:
    return f"REQUEST_ID {_shown(token)} is too large; no request has such a number"


def bad_label(value: str, suggestion: str | None) -> str:
    return f"--label must be stable or canary, not {_shown(value)}{_did_you_mean(suggestion)}"


FREEZE_NEEDS_REASON = "a freeze needs --reason (who is investigating what), so others know why they are refused"


def bad_freeze_duration(value: str, max_days: int) -> str:
    return f"--for must be a duration like 30m, 2h or 1d (at most {max_days}d), not {_shown(value)}"


def bad_page(value: str) -> str:
    return f"--page must be a whole number from 1, not {_shown(value)}"


def bad_limit(value: str, low: int, high: int) -> str:
    return f"--limit must be a whole number from {low} to {high}, not {_shown(value)}"


def unexpected_arguments(tokens: Sequence[str], has_reason: bool, limit_hint: str | None = None) -> str:
    shown = _shown(" ".join(tokens))
    if limit_hint is not None:
        return f"unexpected {shown}; did you mean --limit {limit_hint}?"
    if has_reason:
        return f'unexpected {shown}: put a reason of several words in quotes, --reason "like this"'
    return f"unexpected {shown}"


def text_too_long(length: int, limit: int) -> str:
    return f"the command is {length:,} characters long; the limit is {limit:,}"


def control_character(codepoint: int, position: int) -> str:
    return f"the command contains an invisible or control character (U+{codepoint:04X} at position {position + 1})"


def unbalanced_quote(quote: str, position: int) -> str:
    return f"the quote {quote} at position {position + 1} is never closed"
