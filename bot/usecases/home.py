"""What a user's Home tab shows: open requests (and whether they may decide each), emergencies waiting for a
retro-review (and whether they may acknowledge each), models with problems, and recent changes.

Read from the database only (drift episodes are what the drift check last found; freezes are stored or
scheduled): the Home tab must render in well under Slack's 3 s, so the fleet is never called from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.core import approvals
from bot.core.change_request import ChangeRequest, RequestState
from bot.core.drift import Episode
from bot.core.freeze import Freeze
from bot.core.policy import Identity
from bot.usecases.context import Deps
from bot.usecases.freezes import frozen

RECENT = 10
HOME_ACTION = "requests"  # who may see the open requests may see the Home tab


@dataclass(frozen=True)
class HomeView:
    allowed: bool
    now: datetime
    open_requests: tuple[tuple[ChangeRequest, bool], ...] = ()  # (request, the viewer may approve/reject it)
    reviews: tuple[tuple[ChangeRequest, bool], ...] = ()  # (emergency, the viewer may acknowledge it)
    drifted: tuple[Episode, ...] = ()
    frozen: tuple[Freeze, ...] = field(default=())
    recent: tuple[ChangeRequest, ...] = ()


def home_view(deps: Deps, viewer: Identity) -> HomeView:
    """The Home tab of `viewer`; only the fact that they may not look when they hold no `requests` permission."""
    now = deps.clock()
    if not deps.policy.decide(viewer, HOME_ACTION).allowed:
        return HomeView(allowed=False, now=now)
    with deps.db.uow(readonly=True) as uow:
        open_requests = uow.requests.list_open()
        reviews = [r for r in uow.requests.emergencies() if r.retro_review and r.retro_review.open and r.state.is_final]
        episodes = uow.drift.open_episodes()
        recent = uow.requests.recent_executed(RECENT)
        freezes = [f for model in sorted(deps.settings.models) if (f := frozen(deps, model, uow)) is not None]
    return HomeView(
        allowed=True,
        now=now,
        open_requests=tuple((r, _may_decide(deps, viewer, r)) for r in open_requests),
        reviews=tuple((r, _may_acknowledge(deps, viewer, r)) for r in reviews),
        drifted=tuple(episodes[m] for m in sorted(episodes)),
        frozen=tuple(freezes),
        recent=tuple(recent),
    )


def _may_decide(deps: Deps, viewer: Identity, req: ChangeRequest) -> bool:
    """Buttons only where a click could count: PENDING, not their own, an approver of this change."""
    if (
        req.state is not RequestState.PENDING
        or approvals.two_person_rule_excludes(req, viewer.user_id)
        or req.approved_by(viewer.user_id)
    ):
        return False
    return deps.policy.can_approve(viewer, approvals.rule_of(req)).allowed


def _may_acknowledge(deps: Deps, viewer: Identity, req: ChangeRequest) -> bool:
    if approvals.two_person_rule_excludes(req, viewer.user_id):
        return False
    return deps.policy.can_approve(viewer, approvals.rule_of(req)).allowed
