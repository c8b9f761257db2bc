"""One request's story: `/model explain R7` (short) and `modelbot audit export --request R7` (whole)."""

from __future__ import annotations

from bot.core import commands as c
from bot.core.errors import NotFound
from bot.core.policy import Identity, Policy
from bot.store.audit_export import RequestStory, request_story
from bot.store.database import Database
from bot.texts import postmortem
from bot.texts import replies as texts
from bot.usecases.context import Context, Deps, Reply


def load_story(db: Database, request_id: int, policy: Policy | None) -> RequestStory:
    """The story of the request, with everyone's roles from `policy` (direct and listed groups); NotFound when
    there is no such request."""
    roles_of = (lambda user: policy.roles_of(Identity(user))) if policy is not None else None
    story = request_story(db, request_id, roles_of)
    if story is None:
        raise NotFound(texts.unknown_request(request_id))
    return story


def explain(deps: Deps, ctx: Context, cmd: c.Explain) -> Reply:
    return Reply(postmortem.explain(load_story(deps.db, cmd.request_id, deps.policy)))
