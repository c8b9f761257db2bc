"""RBAC: who may do what under the demo permissions.yaml, deny rules, bots, fail-closed, and validation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.commands import ALL_ACTIONS
from bot.core.errors import ConfigError
from bot.core.policy import ApprovalRule, Identity, Policy, parse_policy
from bot.policy_file import load_policy

DEMO = Path(__file__).resolve().parents[2] / "permissions.yaml"
VIEW = {"list", "versions", "status", "history", "requests", "whoami", "help"}


@pytest.fixture(scope="module")
def demo() -> Policy:
    return load_policy(DEMO)


def _raw(**changes: Any) -> dict[str, Any]:
    """A small valid permissions mapping, with top-level sections replaced by `changes`."""
    raw: dict[str, Any] = {
        "roles": {
            "viewer": ["list", "help"],
            "operator": ["promote", "rollback"],
            "approver": ["approve", "reject"],
            "lead": ["approve"],
        },
        "members": {"U01ALICE": ["viewer", "operator"], "U02BOB": ["viewer", "approver"], "U05LEAD": ["lead"]},
    }
    raw.update(changes)
    return raw


TABLE = [
    # user, groups, is_bot, action, allowed, rule
    ("U01ALICE", (), False, "rollback", True, "role:operator"),
    ("U01ALICE", (), False, "promote", True, "role:operator"),
    ("U01ALICE", (), False, "list", True, "role:viewer"),
    ("U01ALICE", (), False, "approve", True, "role:approver"),
    ("U01ALICE", (), False, "rollback_emergency", False, "deny-by-default"),
    ("U02BOB", (), False, "approve", True, "role:approver"),
    ("U02BOB", (), False, "reject", True, "role:approver"),
    ("U02BOB", (), False, "rollback", False, "deny-by-default"),
    ("U02BOB", (), False, "promote", False, "deny-by-default"),
    ("U03CAROL", (), False, "list", False, "deny-by-default"),
    ("U03CAROL", (), False, "help", False, "deny-by-default"),
    ("U04DAVE", (), False, "rollback_emergency", True, "role:incident_commander"),
    ("U09EVE", ("S0MLONCALL",), False, "approve", True, "role:approver"),
    ("U09EVE", ("S0MLONCALL",), False, "rollback", True, "role:operator"),
    ("U09EVE", ("S0OTHERS",), False, "list", False, "deny-by-default"),
    ("B0DEPLOYBOT", ("S0MLONCALL",), True, "rollback", False, "bots-never-act"),
    ("B0DEPLOYBOT", ("S0MLONCALL",), True, "approve", False, "bots-never-act"),
    ("B0DEPLOYBOT", ("S0MLONCALL",), True, "list", True, "role:viewer"),
    ("U04DAVE", (), True, "reject", False, "bots-never-act"),
    ("", (), False, "list", False, "no-identity"),
    ("U01ALICE", (), False, "deploy", False, "unknown-action"),
]


@pytest.mark.parametrize(("user", "groups", "is_bot", "action", "allowed", "rule"), TABLE)
def test_demo_policy_table(
    demo: Policy, user: str, groups: tuple[str, ...], is_bot: bool, action: str, allowed: bool, rule: str
) -> None:
    """Each identity gets the verdict and the deciding rule the demo permissions.yaml implies."""
    decision = demo.decide(Identity(user, frozenset(groups), is_bot), action, "fraud_detector")
    assert (decision.allowed, decision.rule) == (allowed, rule)
    if not allowed:
        assert decision.reason.startswith(f"{rule}: ")


def test_denial_names_rule_and_who_can(demo: Policy) -> None:
    """Carol's refused rollback names the deny-by-default rule and the people and group who may roll back."""
    decision = demo.decide(Identity("U03CAROL"), "rollback")
    assert decision.reason == (
        "deny-by-default: U03CAROL holds no role granting 'rollback';"
        " ask U01ALICE, U04DAVE or S0MLONCALL (role operator)"
    )
    assert decision.who_can == ("operator", "U01ALICE", "U04DAVE", "S0MLONCALL")


def test_group_membership_adds_roles(demo: Policy) -> None:
    """A user in a listed user group holds the group's roles on top of their own."""
    assert demo.roles_of(Identity("U02BOB", frozenset({"S0MLONCALL"}))) == {"viewer", "approver", "operator"}
    assert demo.roles_of(Identity("U02BOB")) == {"viewer", "approver"}


def test_actions_of_matches_decide(demo: Policy) -> None:
    """actions_of lists exactly the actions decide allows (plus cancel, implied by promote/rollback), so help and
    whoami never over-promise."""
    alice = Identity("U01ALICE")
    assert demo.actions_of(alice) == VIEW | {"promote", "rollback", "approve", "reject", "cancel"}
    assert demo.actions_of(Identity("U02BOB")) == VIEW | {"approve", "reject"}
    assert demo.actions_of(Identity("U03CAROL")) == frozenset()
    bot = Identity("B0X", frozenset({"S0MLONCALL"}), is_bot=True)
    assert demo.actions_of(bot) == VIEW


def test_who_can_lists_roles_then_people_then_groups(demo: Policy) -> None:
    """who_can gives the roles holding an action, then the members and groups holding those roles."""
    assert demo.who_can("approve") == ("approver", "U01ALICE", "U02BOB", "U04DAVE", "S0MLONCALL")
    assert demo.who_can("rollback_emergency") == ("incident_commander", "U04DAVE")


def test_demo_ttl_and_approval_rules(demo: Policy) -> None:
    """The demo's 30m TTL and per-model rules resolve, with approver roles defaulting to holders of approve."""
    assert demo.approval_ttl == timedelta(minutes=30)
    assert demo.approval_rule("fraud_detector", "rollback") == ApprovalRule(1, frozenset({"approver"}))
    assert demo.approval_rule("other_model", "promote") == ApprovalRule(1, frozenset({"approver"}))


def test_approval_rule_precedence() -> None:
    """A model's own rule beats "*", "*" beats the built-in one approver, and defaults cover every approve role."""
    policy = parse_policy(
        _raw(
            models={
                "fraud_detector": {"rollback": {"approvals": 2, "approver_roles": ["lead"]}},
                "*": {"rollback": {"approvals": 0}},
            }
        )
    )
    assert policy.approval_rule("fraud_detector", "rollback") == ApprovalRule(2, frozenset({"lead"}))
    assert policy.approval_rule("churn", "rollback") == ApprovalRule(0, frozenset({"approver", "lead"}))
    assert policy.approval_rule("fraud_detector", "promote") == ApprovalRule(1, frozenset({"approver", "lead"}))
    assert policy.approval_rule(None, "rollback") == ApprovalRule(0, frozenset({"approver", "lead"}))


def test_deny_wins_over_roles() -> None:
    """A deny: entry for the user or one of their groups refuses even an action a role grants."""
    policy = parse_policy(_raw(deny={"U01ALICE": ["rollback"], "S0CONTRACT": ["*"]}))
    alice = policy.decide(Identity("U01ALICE"), "rollback")
    assert (alice.allowed, alice.rule) == (False, "deny-list")
    assert "U01ALICE" not in alice.who_can
    assert policy.decide(Identity("U01ALICE"), "promote").allowed
    bob_contractor = Identity("U02BOB", frozenset({"S0CONTRACT"}))
    assert policy.actions_of(bob_contractor) == frozenset()
    assert policy.can_approve(bob_contractor, ApprovalRule()).rule == "deny-list"


def test_can_approve_needs_approve_and_an_approver_role() -> None:
    """can_approve allows only holders of approve who also hold one of the rule's approver roles."""
    policy = parse_policy(_raw())
    approvers_only = ApprovalRule(1, frozenset({"approver"}))
    assert policy.can_approve(Identity("U02BOB"), approvers_only).allowed
    lead = policy.can_approve(Identity("U05LEAD"), approvers_only)
    assert (lead.allowed, lead.rule) == (False, "approver-roles")
    assert lead.who_can == ("approver", "U02BOB")
    assert policy.can_approve(Identity("U05LEAD"), ApprovalRule(1, None)).allowed
    alice = policy.can_approve(Identity("U01ALICE"), approvers_only)
    assert (alice.allowed, alice.rule) == (False, "deny-by-default")
    bot = policy.can_approve(Identity("U02BOB", is_bot=True), approvers_only)
    assert (bot.allowed, bot.rule) == (False, "bots-never-act")


class _ExplodingMapping(Mapping[str, frozenset[str]]):
    """A roles table that fails on every read, standing in for a bug or corrupt state."""

    def __getitem__(self, key: str) -> frozenset[str]:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1

    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("boom")

    def items(self) -> Any:
        raise RuntimeError("boom")


def test_exception_while_deciding_means_deny() -> None:
    """When evaluating the policy raises, decide and can_approve deny instead of propagating or allowing."""
    policy = Policy(roles=_ExplodingMapping(), members={"U01ALICE": frozenset({"operator"})})
    decision = policy.decide(Identity("U01ALICE"), "rollback")
    assert (decision.allowed, decision.rule) == (False, "policy-error")
    assert not policy.can_approve(Identity("U01ALICE"), ApprovalRule()).allowed
    assert policy.actions_of(Identity("U01ALICE")) == frozenset()


def test_every_action_is_granted_by_the_demo() -> None:
    """Each action the bot checks is granted by some demo role (no action is unreachable by design)."""
    demo = load_policy(DEMO)
    granted = set().union(*demo.roles.values())
    assert granted == ALL_ACTIONS


# --- validation


def test_parse_policy_lists_every_problem() -> None:
    """One ConfigError names every mistake in the file, each with where it is."""
    raw = {
        "roles": {"viewer": ["list", "lst"], "operator": ["rollback"], "approver": ["approve"]},
        "members": {"alice": ["viewer"], "U02BOB": ["viewer", "aprover"], "S0ONCALL": "operator"},
        "deny": {"U03CAROL": ["rollbak"]},
        "models": {
            "fraud_detector": {
                "rollback": {"approvals": -1, "approver_roles": ["operator", "ghost"], "quorum": 2},
                "list": {"approvals": 1},
            }
        },
        "approval_ttl": "30 minutes",
        "admins": ["U01ALICE"],
    }
    with pytest.raises(ConfigError) as caught:
        parse_policy(raw, "perms.yaml")
    assert caught.value.source == "perms.yaml"
    assert list(caught.value.problems) == [
        "unknown key 'admins' (expected roles, members, deny, models, approval_ttl)",
        "roles.viewer: unknown action 'lst' (did you mean 'list'?)",
        "members.S0ONCALL: must be a list of roles, e.g. [approver, operator]",
        "members.U02BOB: unknown role 'aprover' (did you mean 'approver'?)",
        "members: 'alice' is not an immutable Slack ID (U... or W... for a user, S... for a user group);"
        " display names can change and be reused",
        "deny.U03CAROL: unknown action 'rollbak' (did you mean 'rollback'?)",
        "models.fraud_detector.list: approval rules apply to promote and rollback only",
        "models.fraud_detector.rollback: unknown key 'quorum' (expected approvals, approver_roles)",
        "models.fraud_detector.rollback.approvals: must be a whole number >= 0, not -1",
        "models.fraud_detector.rollback.approver_roles: unknown role 'ghost'",
        "models.fraud_detector.rollback.approver_roles: role 'operator' does not grant 'approve';"
        " add approve to it or list a role that grants it",
        "approval_ttl: '30 minutes' is not a duration like 30m, 2h, 90s or 1h30m",
    ]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([], "the top level must be a mapping with roles: and members:"),
        ({"members": {}}, "roles: missing or not a mapping of role -> [actions]"),
        ({"roles": {}}, "members: missing or not a mapping of Slack ID -> [...]"),
        (_raw(members={"u01alice": ["viewer"]}), "members: 'u01alice' is not an immutable Slack ID"),
        (_raw(members={"@alice": ["viewer"]}), "members: '@alice' is not an immutable Slack ID"),
        (_raw(models={"m": {"rollback": {"approvals": True}}}), "approvals: must be a whole number >= 0, not True"),
        (_raw(models={"m": {"rollback": {"approvals": 1, "approver_roles": []}}}), "is empty, so the 1 approval"),
        (_raw(roles={"viewer": ["list"]}, members={}, models={"m": {"promote": {}}}), "no role holds 'approve'"),
        (_raw(models=["rollback"]), "models: must be a mapping"),
        (_raw(roles={"viewer": None}), "roles.viewer: must be a list of actions"),
    ],
)  # fmt: skip
def test_parse_policy_problem(raw: Any, problem: str) -> None:
    """Each malformed policy raises ConfigError containing the expected problem."""
    with pytest.raises(ConfigError) as caught:
        parse_policy(raw)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
    ],
)
def test_good_durations(text: str, expected: timedelta) -> None:
    """approval_ttl accepts d/h/m/s durations in that order."""
    assert parse_policy(_raw(approval_ttl=text)).approval_ttl == expected


@pytest.mark.parametrize("value", ["30", 30, "", "0m", "30 m", "m", "30m2h", "1.5h", "-5m"])
def test_bad_durations(value: object) -> None:
    """approval_ttl refuses bare numbers, zero, and anything but d/h/m/s parts in order."""
    with pytest.raises(ConfigError, match="approval_ttl"):
        parse_policy(_raw(approval_ttl=value))


def test_load_policy_reports_duplicate_members(tmp_path: Path) -> None:
    """A member listed twice, which yaml.safe_load would silently collapse, is reported with line numbers,
    together with any schema problem elsewhere in the file."""
    path = tmp_path / "permissions.yaml"
    path.write_text(
        "roles:\n"
        "  viewer: [list]\n"
        "  approver: [approve]\n"
        "members:\n"
        "  U02BOB: [viewer]\n"
        "  U01ALICE: [viewer]\n"
        "  U02BOB: [approver]\n"
        "approval_ttl: soon\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert caught.value.problems == (
        "members.U02BOB: duplicate key on line 7 (first on line 5); YAML keeps only the last, so merge the two entries",
        "approval_ttl: 'soon' is not a duration like 30m, 2h, 90s or 1h30m",
    )
    assert caught.value.source == str(path)


def test_load_policy_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    """A missing file and unparsable YAML are ConfigErrors naming the file, not tracebacks."""
    with pytest.raises(ConfigError, match="file not found"):
        load_policy(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("roles: [viewer\n")
    with pytest.raises(ConfigError) as caught:
        load_policy(bad)
    assert caught.value.problems[0].startswith("not valid YAML:")
    assert "\n" not in caught.value.problems[0]


def test_load_policy_of_empty_file_lists_missing_sections(tmp_path: Path) -> None:
    """An empty file is refused with the missing sections named, not accepted as 'deny everyone'."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError) as caught:
        load_policy(empty)
    assert len(caught.value.problems) == 2
