"""The two-person approval state machine: example transitions and a stateful property over random deciders."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bot.core import approvals as ap
from bot.core.change_request import ChangePlan, ChangeRequest, RequestState, change_digest
from bot.core.errors import Conflict, ModelbotError, PermissionDenied, UsageError
from bot.core.fleet import Outcome
from bot.core.policy import ApprovalRule, Decision, Identity, Policy

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=30)
LABELS = {"stable": 3, "canary": 4}
ALICE, BOB, CAROL = Identity("U01ALICE"), Identity("U02BOB"), Identity("U03CAROL")
ALLOW = Decision(True, "role:approver", "U holds approver")
DENY = Decision(False, "approver-roles", "approver-roles: nope; ask U02BOB (role approver)", ("approver", "U02BOB"))


def _request(**changes: Any) -> ChangeRequest:
    args: dict[str, Any] = {
        "action": "rollback",
        "model": "fraud_detector",
        "from_version": 3,
        "to_version": 2,
        "label": "stable",
        "reason": "INC-481 false positives",
        "requester": ALICE.user_id,
        "now": T0,
        "ttl": TTL,
        "required_approvals": 1,
        "approver_roles": frozenset({"approver"}),
        "label_map": LABELS,
        "generation": 7,
    }
    args.update(changes)
    plan = ChangePlan(
        action=args["action"],
        model=args["model"],
        from_version=args["from_version"],
        to_version=args["to_version"],
        label=args["label"],
        label_map=args["label_map"],
        generation=args["generation"],
        emergency=args.get("emergency", False),
        summary=args.get("plan_summary", ""),
        signature_note=args.get("signature_note", ""),
    )
    rule = ApprovalRule(args["required_approvals"], args["approver_roles"])
    request = ap.new_request(plan, rule, args["requester"], args["now"], args["reason"], ttl=args["ttl"])
    return replace(request, id=7)


# --- digest and creation


def test_change_digest_is_canonical() -> None:
    """The digest ignores label-map ordering but changes with any part of the change or the generation."""
    base = change_digest("m", 3, 2, "stable", {"stable": 3, "canary": 4}, 7)
    assert base == change_digest("m", 3, 2, "stable", {"canary": 4, "stable": 3}, 7)
    assert len(base) == 64
    variants = [
        change_digest("m", 3, 2, "stable", {"stable": 3, "canary": 4}, 8),
        change_digest("m", 3, 2, "canary", {"stable": 3, "canary": 4}, 7),
        change_digest("m", None, 2, "stable", {"stable": 3, "canary": 4}, 7),
        change_digest("m", 3, 2, "stable", {"stable": 3}, 7),
        change_digest("n", 3, 2, "stable", {"stable": 3, "canary": 4}, 7),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_new_request_is_pending_and_bound_to_the_change() -> None:
    """A new request waits for approval, expires after the TTL, and carries the digest of its change."""
    req = _request(plan_summary="load v2, move stable", signature_note="compatible")
    assert req.state is RequestState.PENDING
    assert req.expires_at == T0 + TTL
    assert req.digest == change_digest("fraud_detector", 3, 2, "stable", LABELS, 7)
    assert (req.dry_run_plan, req.extra["signature_note"]) == ("load v2, move stable", "compatible")


def test_rollback_needs_a_reason() -> None:
    """A rollback without a reason is refused; a promote without one is fine."""
    with pytest.raises(UsageError, match="needs a reason"):
        _request(reason="   ")
    assert _request(action="promote", reason="").state is RequestState.PENDING


def test_emergency_rollback_is_approved_at_once_and_promote_cannot_be_emergency() -> None:
    """An emergency rollback needs no second person; an emergency promote does not exist."""
    req = _request(emergency=True)
    assert (req.state, req.required_approvals, req.decided_by) == (RequestState.APPROVED, 0, ALICE.user_id)
    with pytest.raises(UsageError):
        _request(action="promote", emergency=True)


def test_zero_approvals_rule_is_approved_at_once() -> None:
    """A policy rule of approvals: 0 makes the request APPROVED on creation."""
    assert _request(required_approvals=0).state is RequestState.APPROVED


def test_bot_cannot_request() -> None:
    """A bot identity cannot open a change request."""
    with pytest.raises(PermissionDenied):
        _request(requester=Identity("B0BOT", is_bot=True))


# --- approve


def test_requester_can_never_approve_even_when_policy_allows() -> None:
    """The two-person rule refuses the requester's own approval whatever the policy decision says."""
    with pytest.raises(PermissionDenied) as caught:
        ap.approve(_request(), ALICE, Decision(True, "role:approver", "", ("approver", "U01ALICE", "U02BOB")), T0)
    assert caught.value.rule == "two-person rule"
    assert caught.value.who_can == ("approver", "U02BOB")


def test_bots_never_approve() -> None:
    """A bot is refused even with an allowing decision."""
    with pytest.raises(PermissionDenied) as caught:
        ap.approve(_request(), Identity("B0BOT", is_bot=True), ALLOW, T0)
    assert caught.value.rule == "bots-never-act"


def test_denying_decision_is_raised_with_who_can() -> None:
    """A denying can_approve decision becomes PermissionDenied carrying its rule, reason and who-can."""
    with pytest.raises(PermissionDenied) as caught:
        ap.approve(_request(), CAROL, DENY, T0)
    assert (str(caught.value), caught.value.rule, caught.value.who_can) == (DENY.reason, DENY.rule, DENY.who_can)


def test_quorum_needs_distinct_approvers() -> None:
    """With two approvals required, the same person twice is a Conflict and two people approve it."""
    req = _request(required_approvals=2)
    once = ap.approve(req, BOB, ALLOW, T0)
    assert (once.state, once.approvals_missing) == (RequestState.PENDING, 1)
    with pytest.raises(Conflict, match="already approved"):
        ap.approve(once, BOB, ALLOW, T0)
    twice = ap.approve(once, CAROL, ALLOW, T0 + timedelta(minutes=1))
    assert twice.state is RequestState.APPROVED
    assert [a.user_id for a in twice.approvals] == [BOB.user_id, CAROL.user_id]
    assert twice.decided_by == CAROL.user_id


def test_expired_request_cannot_be_approved() -> None:
    """Approving at or after expires_at is a Conflict naming the expiry time."""
    with pytest.raises(Conflict) as caught:
        ap.approve(_request(), BOB, ALLOW, T0 + TTL)
    assert str(caught.value) == "R7 expired at 2024-05-01 12:30:00 UTC"


def test_only_pending_requests_can_be_approved() -> None:
    """Approving an APPROVED, REJECTED or VOID request is a Conflict."""
    for state in (RequestState.APPROVED, RequestState.REJECTED, RequestState.VOID):
        with pytest.raises(Conflict, match=f"it is {state.value.lower()}"):
            ap.approve(replace(_request(), state=state), BOB, ALLOW, T0)


# --- reject, expire, execute, void, finish


def test_requester_may_withdraw_and_others_need_reject_permission() -> None:
    """The requester withdraws without the reject permission; anyone else needs it."""
    withdrawn = ap.reject(_request(), ALICE, False, T0, "wrong version")
    assert (withdrawn.state, withdrawn.withdrawn, withdrawn.decision_reason) == (
        RequestState.REJECTED,
        True,
        "wrong version",
    )
    with pytest.raises(PermissionDenied) as caught:
        ap.reject(_request(), CAROL, False, T0)
    assert caught.value.rule == "reject-permission"
    rejected = ap.reject(_request(), BOB, True, T0)
    assert (rejected.state, rejected.withdrawn, rejected.decided_by) == (RequestState.REJECTED, False, BOB.user_id)
    with pytest.raises(PermissionDenied):
        ap.reject(_request(), Identity("B0BOT", is_bot=True), True, T0)


def test_expire_if_due() -> None:
    """Before expiry the same object comes back; at expiry a pending or approved request becomes EXPIRED."""
    req = _request()
    assert ap.expire_if_due(req, T0 + TTL - timedelta(seconds=1)) is req
    assert ap.expire_if_due(req, T0 + TTL).state is RequestState.EXPIRED
    approved = ap.approve(req, BOB, ALLOW, T0)
    assert ap.expire_if_due(approved, T0 + TTL).state is RequestState.EXPIRED
    executing = ap.start_execution(approved, approved.digest, T0)
    assert ap.expire_if_due(executing, T0 + TTL) is executing


def test_start_execution_once_and_only_with_matching_digest() -> None:
    """An approved request starts once when the digest matches, and becomes VOID when the state moved."""
    approved = ap.approve(_request(), BOB, ALLOW, T0)
    executing = ap.start_execution(approved, approved.digest, T0)
    assert executing.state is RequestState.EXECUTING
    with pytest.raises(Conflict):
        ap.start_execution(executing, approved.digest, T0)
    moved = change_digest("fraud_detector", 3, 2, "stable", LABELS, 8)
    voided = ap.start_execution(approved, moved, T0)
    assert voided.state is RequestState.VOID
    assert "changed after R7" in voided.decision_reason
    with pytest.raises(Conflict):
        ap.start_execution(_request(), _request().digest, T0)


def test_start_execution_refuses_a_row_without_quorum() -> None:
    """A hand-made APPROVED row lacking approvals is not executed."""
    forged = replace(_request(), state=RequestState.APPROVED)
    with pytest.raises(Conflict, match="lacks"):
        ap.start_execution(forged, forged.digest, T0)


def test_start_execution_counts_each_non_requester_once() -> None:
    """A row whose approvals repeat one person or include the requester does not reach quorum."""
    req = _request(required_approvals=2)
    repeated = replace(req, state=RequestState.APPROVED, approvals=(ap.Approval("U02BOB", T0),) * 2)
    with pytest.raises(Conflict, match="lacks"):
        ap.start_execution(repeated, req.digest, T0)
    self_approved = replace(repeated, approvals=(ap.Approval("U02BOB", T0), ap.Approval(ALICE.user_id, T0)))
    with pytest.raises(Conflict, match="lacks"):
        ap.start_execution(self_approved, req.digest, T0)


def test_start_execution_refuses_an_expired_approval() -> None:
    """An approval that outlived its TTL is not executed, even if nobody stored the expiry yet."""
    approved = ap.approve(_request(), BOB, ALLOW, T0)
    with pytest.raises(Conflict, match="expired at"):
        ap.start_execution(approved, approved.digest, T0 + TTL)


def test_void_and_finish() -> None:
    """void closes unstarted requests only; finish records the outcome of an executing one only."""
    assert ap.void(_request(), "superseded").state is RequestState.VOID
    executing = ap.start_execution(_request(emergency=True), _request().digest, T0)
    with pytest.raises(Conflict):
        ap.void(executing, "late")
    assert ap.finish(executing, Outcome.PARTIAL).state is RequestState.PARTIAL
    with pytest.raises(Conflict):
        ap.finish(_request(), Outcome.SUCCEEDED)


# --- stateful property

USERS = tuple(f"U0{i}USER" for i in range(6))
ROLES = {"approver": ["approve", "reject"], "lead": ["approve"], "operator": ["rollback"], "viewer": ["list"]}
CLOSED_NEVER_RUN = frozenset({RequestState.REJECTED, RequestState.EXPIRED, RequestState.VOID})


REQUEST_PARAMS = st.fixed_dictionaries(
    {
        "requester": st.sampled_from(USERS),
        "required_approvals": st.integers(0, 3),
        "approver_roles": st.frozensets(st.sampled_from(["approver", "lead", "viewer"]), min_size=1),
        "emergency": st.booleans(),
    }
)


class ApprovalMachine(RuleBasedStateMachine):
    """Random users with random roles (some bots) approve, reject, expire, execute and void requests;
    a new request opens whenever the current one is closed."""

    @initialize(
        roles=st.lists(st.frozensets(st.sampled_from(sorted(ROLES))), min_size=len(USERS), max_size=len(USERS)),
        bots=st.frozensets(st.sampled_from(USERS), max_size=2),
        params=REQUEST_PARAMS,
    )
    def setup(self, roles: list[frozenset[str]], bots: frozenset[str], params: dict[str, Any]) -> None:
        self.policy = Policy(
            roles={name: frozenset(actions) for name, actions in ROLES.items()},
            members=dict(zip(USERS, roles, strict=True)),
        )
        self.identities = {u: Identity(u, is_bot=u in bots) for u in USERS}
        self.now = T0
        self._open(params)

    def _open(self, params: dict[str, Any]) -> None:
        self.req = _request(now=self.now, **params)
        self.required = params["required_approvals"]
        self.states = [self.req.state]
        self.executions = 0

    @precondition(lambda self: self.req.state.is_final)
    @rule(params=REQUEST_PARAMS)
    def open_next(self, params: dict[str, Any]) -> None:
        self._open(params)

    def _rule(self) -> ApprovalRule:
        return ApprovalRule(self.req.required_approvals, self.req.approver_roles)

    def _eligible(self, user_id: str) -> bool:
        """Independent statement of who may approve: a human other than the requester who holds `approve`
        through some role and also holds one of the request's approver roles."""
        roles = self.policy.members[user_id]
        return (
            not self.identities[user_id].is_bot
            and user_id != self.req.requester
            and any("approve" in self.policy.roles[r] for r in roles)
            and bool(roles & self.req.approver_roles)
        )

    def _apply(self, transition: Any, *args: Any) -> None:
        before = self.req
        try:
            self.req = transition(self.req, *args)
        except ModelbotError:
            assert self.req is before  # a refused transition changes nothing
        if self.req.state is RequestState.EXECUTING and before.state is not RequestState.EXECUTING:
            self.executions += 1
            self._check_may_execute(before, args)
        self.states.append(self.req.state)

    def _check_may_execute(self, before: ChangeRequest, args: tuple[Any, ...]) -> None:
        assert before.state is RequestState.APPROVED
        assert self.now < before.expires_at
        assert args[0] == before.digest
        approvers = [a.user_id for a in self.req.approvals]
        assert len(set(approvers)) == len(approvers)
        assert all(self._eligible(u) for u in approvers)
        assert len(approvers) >= self.req.required_approvals
        assert self.req.required_approvals == (0 if self.req.emergency else self.required)

    @rule(user=st.sampled_from(USERS))
    def approve(self, user: str) -> None:
        identity = self.identities[user]
        self._apply(ap.approve, identity, self.policy.can_approve(identity, self._rule()), self.now)

    @rule(data=st.data())
    def approve_with_forged_allow(self, data: st.DataObject) -> None:
        """Even an allowing decision cannot make the requester, a bot or a repeat approver count."""
        ineligible = [self.req.requester, *(u for u, i in self.identities.items() if i.is_bot)]
        ineligible += [a.user_id for a in self.req.approvals]
        user = data.draw(st.sampled_from(ineligible))
        before = self.req
        with pytest.raises(ModelbotError):
            ap.approve(self.req, self.identities[user], ALLOW, self.now)
        assert self.req is before

    # Closing rules act one time in four, so that enough runs get as far as executing and beyond.
    @rule(user=st.sampled_from(USERS), reason=st.sampled_from(["", "no"]), act=st.integers(0, 3))
    def reject(self, user: str, reason: str, act: int) -> None:
        if act:
            return
        identity = self.identities[user]
        may = self.policy.decide(identity, "reject").allowed
        self._apply(ap.reject, identity, may, self.now, reason)

    @rule(seconds=st.sampled_from([0, 1, 60, 29 * 60 + 59, 30 * 60]))
    def tick(self, seconds: int) -> None:
        """Time moves by amounts that land on both sides of the 30-minute TTL boundary."""
        self.now += timedelta(seconds=seconds)

    @rule()
    def expire(self) -> None:
        self._apply(ap.expire_if_due, self.now)

    @rule(stale=st.integers(0, 3))
    def start(self, stale: int) -> None:
        """The live desired state has moved one time in four."""
        live = change_digest("fraud_detector", 3, 2, "stable", LABELS, 99) if stale == 0 else self.req.digest
        self._apply(ap.start_execution, live, self.now)

    @rule(act=st.integers(0, 3))
    def void(self, act: int) -> None:
        if not act:
            self._apply(ap.void, "superseded")

    @precondition(lambda self: self.req.state is RequestState.EXECUTING)
    @rule(outcome=st.sampled_from(list(Outcome)))
    def finish(self, outcome: Outcome) -> None:
        self._apply(ap.finish, outcome)

    @invariant()
    def closed_requests_stay_closed_and_never_ran(self) -> None:
        for i, state in enumerate(self.states):
            if state in CLOSED_NEVER_RUN:
                assert RequestState.EXECUTING not in self.states[: i + 1]
                assert set(self.states[i:]) == {state}

    @invariant()
    def executes_at_most_once(self) -> None:
        assert self.executions <= 1

    @invariant()
    def approvals_are_distinct_eligible_people(self) -> None:
        approvers = [a.user_id for a in self.req.approvals]
        assert len(set(approvers)) == len(approvers)
        assert all(self._eligible(u) for u in approvers)
        if self.req.state is RequestState.APPROVED:
            assert len(approvers) >= self.req.required_approvals


TestApprovalMachine = ApprovalMachine.TestCase
TestApprovalMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
