"""RBAC from permissions.yaml (DESIGN.md §2): deny by default, deny wins, an error while deciding denies.

`decide` is the one central check every use case calls; `can_approve` adds the approval rule of a
change. Denials name the rule that decided and who could do it instead, so a refused user knows whom
to ask. Reading YAML is an edge concern (bot/policy_file.py); this module validates the parsed mapping.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.core.commands import ALL_ACTIONS, CANCEL_ACTION, CHANGE_ACTIONS, EMERGENCY_ACTION
from bot.core.durations import parse_duration
from bot.core.errors import ConfigError

APPROVE = "approve"
MUTATING_ACTIONS = frozenset({"promote", "rollback", "approve", "reject", EMERGENCY_ACTION})
APPROVABLE_ACTIONS = ("promote", "rollback")
MEMBER_ID = re.compile(r"[UWS][A-Z0-9]{2,}")  # users U.../W... (Enterprise Grid), user groups S...
ANY_MODEL = "*"
ANY_ACTION = "*"  # in `deny:` only: every action
DEFAULT_APPROVAL_TTL = timedelta(minutes=30)
_TOP_KEYS = ("roles", "members", "deny", "models", "approval_ttl")
_RULE_KEYS = ("approvals", "approver_roles")


@dataclass(frozen=True)
class Identity:
    """Who is acting: a Slack user ID, the user groups (S...) they belong to, and whether it is a bot."""

    user_id: str
    groups: frozenset[str] = frozenset()
    is_bot: bool = False


@dataclass(frozen=True)
class ApprovalRule:
    """How many people besides the requester must approve, and which roles count as approvers."""

    approvals: int = 1
    approver_roles: frozenset[str] | None = None  # None: every role holding `approve`


@dataclass(frozen=True)
class Decision:
    """A verdict; a denial's `reason` starts with the `rule` that decided and says who can instead."""

    allowed: bool
    rule: str
    reason: str
    who_can: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    roles: Mapping[str, frozenset[str]]  # role -> actions
    members: Mapping[str, frozenset[str]]  # user or group ID -> roles
    rules: Mapping[str, Mapping[str, ApprovalRule]] = field(default_factory=dict)  # model|"*" -> action -> rule
    deny: Mapping[str, frozenset[str]] = field(default_factory=dict)  # user or group ID -> actions (or "*")
    approval_ttl: timedelta = DEFAULT_APPROVAL_TTL

    def roles_of(self, identity: Identity) -> frozenset[str]:
        """Roles held directly and through every listed user group the identity belongs to."""
        return frozenset(role for _, role in self._held_roles(identity))

    def actions_of(self, identity: Identity) -> frozenset[str]:
        """Every action `decide` would allow (so help and whoami agree with enforcement)."""
        allowed = frozenset(action for action in ALL_ACTIONS if self.decide(identity, action).allowed)
        return allowed | {CANCEL_ACTION} if allowed & CHANGE_ACTIONS else allowed

    def decide(self, identity: Identity, action: str, model: str | None = None) -> Decision:
        """May `identity` perform `action`? `model` is recorded for later per-model grants; rules are global."""
        try:
            allowed, rule, detail = self._judge(identity, action)
            if allowed:
                return Decision(True, rule, detail)
            roles = self._roles_holding(action)
            return self._denial(rule, detail, roles, action)
        except Exception as exc:  # fail closed: a bug or odd input while deciding must never grant
            return Decision(False, "policy-error", f"policy-error: could not decide {action!r} ({type(exc).__name__})")

    def approval_rule(self, model: str | None, action: str) -> ApprovalRule:
        """The model's rule for `action`, else the "*" rule, else one approver; approver roles resolved."""
        by_model = self.rules.get(model, {}) if model is not None else {}
        rule = by_model.get(action) or self.rules.get(ANY_MODEL, {}).get(action) or ApprovalRule()
        roles = rule.approver_roles if rule.approver_roles is not None else self._roles_holding(APPROVE)
        return ApprovalRule(rule.approvals, frozenset(roles))

    def can_approve(self, identity: Identity, rule: ApprovalRule) -> Decision:
        """Has `approve` (not denied, not a bot) AND holds one of the rule's approver roles."""
        try:
            approver_roles = rule.approver_roles
            if approver_roles is None:
                approver_roles = self._roles_holding(APPROVE)
            eligible = sorted(approver_roles)
            allowed, name, detail = self._judge(identity, APPROVE)
            if allowed:
                held = sorted(self.roles_of(identity) & approver_roles)
                if held:
                    return Decision(
                        True, f"approver-role:{held[0]}", f"{identity.user_id} holds approver role {held[0]}"
                    )
                needed = ", ".join(eligible) or "none configured"
                name, detail = (
                    "approver-roles",
                    f"{identity.user_id} holds none of this change's approver roles ({needed})",
                )
            return self._denial(name, detail, eligible, APPROVE)
        except Exception as exc:  # fail closed
            return Decision(False, "policy-error", f"policy-error: could not decide 'approve' ({type(exc).__name__})")

    def who_can(self, action: str) -> tuple[str, ...]:
        """Roles holding `action`, then the members and groups holding those roles (minus any denied)."""
        roles = self._roles_holding(action)
        return (*sorted(roles), *self._holders(roles, action))

    # --- private

    def _judge(self, identity: Identity, action: str) -> tuple[bool, str, str]:
        who = identity.user_id
        if action not in ALL_ACTIONS:
            return False, "unknown-action", f"{action!r} is not a modelbot action"
        if not who:
            return False, "no-identity", "the request carries no user ID"
        if identity.is_bot and action in MUTATING_ACTIONS:
            return False, "bots-never-act", f"{who} is a bot, and bots may not {action!r}"
        denied_by = [entry for entry in (who, *sorted(identity.groups)) if self._denies(entry, action)]
        if denied_by:
            return False, "deny-list", f"{who} is denied {action!r} by the deny: entry for {denied_by[0]}"
        for via, role in sorted(self._held_roles(identity)):
            if action in self.roles.get(role, ()):
                through = "" if via == who else f" through {via}"
                return True, f"role:{role}", f"{who} holds role {role}{through}, which grants {action!r}"
        return False, "deny-by-default", f"{who} holds no role granting {action!r}"

    def _held_roles(self, identity: Identity) -> set[tuple[str, str]]:
        """(member entry, role) pairs: the user's own entry and each of their groups' entries."""
        entries = (identity.user_id, *identity.groups)
        return {(entry, role) for entry in entries for role in self.members.get(entry, ())}

    def _denies(self, entry: str, action: str) -> bool:
        actions = self.deny.get(entry, frozenset())
        return action in actions or ANY_ACTION in actions

    def _roles_holding(self, action: str) -> frozenset[str]:
        return frozenset(role for role, actions in self.roles.items() if action in actions)

    def _holders(self, roles: Iterable[str], action: str) -> tuple[str, ...]:
        wanted = frozenset(roles)
        return tuple(
            sorted(
                (m for m, held in self.members.items() if held & wanted and not self._denies(m, action)),
                key=lambda m: (m.startswith("S"), m),  # people first, then user groups
            ),
        )

    def _denial(self, rule: str, detail: str, roles: Iterable[str], action: str) -> Decision:
        roles = sorted(roles)
        holders = self._holders(roles, action)
        if holders:
            ask = f"; ask {_either(holders)} (role {_either(roles)})"
        elif roles:
            ask = f"; no member holds role {_either(roles)}"
        else:
            ask = "; no role grants it"
        return Decision(False, rule, f"{rule}: {detail}{ask}", (*roles, *holders))


def _either(items: Iterable[str]) -> str:
    words = list(items)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


# --- validation of the parsed permissions.yaml


def parse_policy(raw: Mapping[str, object], source: str = "permissions.yaml") -> Policy:
    """Validate the DESIGN §2 schema and build a Policy; ConfigError lists every problem found."""
    if not isinstance(raw, Mapping):
        raise ConfigError(source, ["the top level must be a mapping with roles: and members:"])
    problems: list[str] = [
        f"unknown key {key!r} (expected {', '.join(_TOP_KEYS)})" for key in _sorted(raw) if key not in _TOP_KEYS
    ]
    roles = _parse_roles(raw.get("roles"), problems)
    members = _parse_grants("members", raw.get("members"), roles, problems, required=True)
    deny = _parse_grants("deny", raw.get("deny"), None, problems, required=False)
    rules = _parse_rules(raw.get("models"), roles, problems)
    ttl = _parse_duration(raw.get("approval_ttl"), problems)
    if problems:
        raise ConfigError(source, problems)
    return Policy(roles=roles, members=members, rules=rules, deny=deny, approval_ttl=ttl)


def _sorted(mapping: Mapping[Any, Any]) -> list[Any]:
    return sorted(mapping, key=str)


def _suggest(word: object, candidates: Iterable[str]) -> str:
    match = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _names(where: str, value: object, valid: Iterable[str], kind: str, problems: list[str]) -> frozenset[str]:
    """A list of known names (actions or roles); unknown or malformed entries become problems."""
    if not isinstance(value, list):
        problems.append(f"{where}: must be a list of {kind}s, e.g. [{', '.join(sorted(valid)[:2])}]")
        return frozenset()
    valid_set = frozenset(valid)
    known: set[str] = set()
    for item in value:
        if isinstance(item, str) and item in valid_set:
            known.add(item)
        else:
            problems.append(f"{where}: unknown {kind} {item!r}{_suggest(item, valid_set)}")
    return frozenset(known)


def _parse_roles(value: object, problems: list[str]) -> dict[str, frozenset[str]]:
    if not isinstance(value, Mapping):
        problems.append("roles: missing or not a mapping of role -> [actions]")
        return {}
    roles: dict[str, frozenset[str]] = {}
    for name in _sorted(value):
        if not isinstance(name, str) or not name:
            problems.append(f"roles: role name {name!r} must be a non-empty string")
            continue
        roles[name] = _names(f"roles.{name}", value[name], ALL_ACTIONS, "action", problems)
    return roles


def _parse_grants(
    section: str, value: object, roles: Mapping[str, frozenset[str]] | None, problems: list[str], *, required: bool
) -> dict[str, frozenset[str]]:
    """members: ID -> [roles] (roles given), or deny: ID -> [actions or "*"] (roles None)."""
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{section}: missing or not a mapping of Slack ID -> [...]")
        return {}
    valid = list(roles) if roles is not None else [*ALL_ACTIONS, ANY_ACTION]
    kind = "role" if roles is not None else "action"
    grants: dict[str, frozenset[str]] = {}
    for key in _sorted(value):
        if not isinstance(key, str) or not MEMBER_ID.fullmatch(key):
            problems.append(
                f"{section}: {key!r} is not an immutable Slack ID (U... or W... for a user, S... for a user group);"
                " display names can change and be reused"
            )
            continue
        grants[key] = _names(f"{section}.{key}", value[key], valid, kind, problems)
    return grants


def _parse_rules(
    value: object, roles: Mapping[str, frozenset[str]], problems: list[str]
) -> dict[str, dict[str, ApprovalRule]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append("models: must be a mapping of model (or '*') -> action -> rule")
        return {}
    rules: dict[str, dict[str, ApprovalRule]] = {}
    for model in _sorted(value):
        actions = value[model]
        if not isinstance(model, str) or not isinstance(actions, Mapping):
            problems.append(f"models.{model}: must be a mapping of promote/rollback -> rule")
            continue
        rules[model] = {}
        for action in _sorted(actions):
            where = f"models.{model}.{action}"
            if action not in APPROVABLE_ACTIONS:
                known = action in ALL_ACTIONS
                why = "approval rules apply to promote and rollback only" if known else "unknown action"
                problems.append(f"{where}: {why}{'' if known else _suggest(action, APPROVABLE_ACTIONS)}")
                continue
            rule = _parse_rule(where, actions[action], roles, problems)
            if rule is not None:
                rules[model][str(action)] = rule
    return rules


def _parse_rule(
    where: str, value: object, roles: Mapping[str, frozenset[str]], problems: list[str]
) -> ApprovalRule | None:
    if not isinstance(value, Mapping):
        problems.append(f"{where}: must be a mapping like {{approvals: 1, approver_roles: [approver]}}")
        return None
    problems += [
        f"{where}: unknown key {k!r} (expected approvals, approver_roles)"
        for k in _sorted(value)
        if k not in _RULE_KEYS
    ]
    approvals = value.get("approvals", 1)
    if not isinstance(approvals, int) or isinstance(approvals, bool) or approvals < 0:
        problems.append(f"{where}.approvals: must be a whole number >= 0, not {approvals!r}")
        approvals = 1
    if "approver_roles" not in value:
        if approvals > 0 and not any(APPROVE in actions for actions in roles.values()):
            problems.append(f"{where}: needs {approvals} approval(s) but no role holds 'approve'")
        return ApprovalRule(approvals, None)
    where_roles = f"{where}.approver_roles"
    approver_roles = _names(where_roles, value["approver_roles"], roles, "role", problems)
    problems += [
        f"{where_roles}: role {r!r} does not grant 'approve'; add approve to it or list a role that grants it"
        for r in sorted(approver_roles)
        if APPROVE not in roles[r]
    ]
    if approvals > 0 and isinstance(value["approver_roles"], list) and not value["approver_roles"]:
        problems.append(f"{where_roles}: is empty, so the {approvals} approval(s) can never be given")
    return ApprovalRule(approvals, approver_roles)


def _parse_duration(value: object, problems: list[str]) -> timedelta:
    if value is None:
        return DEFAULT_APPROVAL_TTL
    ttl = parse_duration(value)
    if ttl is None:
        problems.append(f"approval_ttl: {value!r} is not a duration like 30m, 2h, 90s or 1h30m")
        return DEFAULT_APPROVAL_TTL
    if ttl <= timedelta(0):
        problems.append(f"approval_ttl: {value!r} must be longer than zero")
        return DEFAULT_APPROVAL_TTL
    return ttl
