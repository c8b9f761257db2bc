"""One request's story: `/model explain R7` (short) and `modelbot audit export --request R7` (whole)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bot.core import commands
from bot.core.errors import NotFound
from bot.core.policy import Identity, Policy
from bot.core.postmortem import RequestStory
from bot.texts import postmortem
from bot.texts import replies as texts
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.ports import Store


def request_story(
    db: Store, request_id: int, roles_of: Callable[[str], Iterable[str]] | None = None
) -> RequestStory | None:
    """The story of request `request_id`, read in one snapshot, or None when no such request exists.
    `roles_of(user_id)` names the roles of each person in it (the requester, approvers, deciders and every audit
    actor)."""
    with db.uow(readonly=True) as uow:
        request = uow.requests.get(request_id)
        if request is None:
            return None
        rows = tuple(uow.audit.for_request(request_id))
        operations = tuple(uow.operations.for_request(request_id))
        head = uow.audit.head()
        chain = uow.audit.verify()
    people = [request.requester, *(a.user_id for a in request.approvals), *(e.actor for e in rows)]
    if request.decided_by:
        people.append(request.decided_by)
    review = request.retro_review
    if review is not None and review.acknowledged_by:
        people.append(review.acknowledged_by)
    roles = {user: tuple(sorted(roles_of(user))) if roles_of else () for user in dict.fromkeys(people)}
    return RequestStory(request, rows, operations, roles, chain, head)


def load_story(db: Store, request_id: int, policy: Policy | None) -> RequestStory:
    """The story of the request, with everyone's roles from `policy` (direct and listed groups); NotFound when
    there is no such request."""
    roles_of = (lambda user: policy.roles_of(Identity(user))) if policy is not None else None
    story = request_story(db, request_id, roles_of)
    if story is None:
        raise NotFound(texts.unknown_request(request_id))
    return story


def explain(deps: Deps, ctx: Context, cmd: commands.Explain) -> Reply:
    return Reply(postmortem.explain(load_story(deps.db, cmd.request_id, deps.policy)))
