"""The App Home tab: on `app_home_opened`, views.publish the user's Home (bot/usecases/home.py) in Block Kit.

Open requests carry Approve / Reject (the card's own action ids, so the card's handlers run them, as the clicking
user, through the service) where the viewer may decide them; emergencies waiting for a retro-review carry
Acknowledge. A click on the Home tab re-publishes it. Slack allows 100 blocks in a Home view: each list stops at
its share and says how many more there are. The event is acked at once; the work runs on the worker pool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.core.change_request import ChangeRequest
from bot.frontends.slack.blocks import decide_buttons
from bot.frontends.slack.identity import UserRefused
from bot.frontends.slack.mrkdwn import clip, date, escape, member
from bot.frontends.slack.review_blocks import acknowledge_actions
from bot.frontends.slack.runtime import SlackRuntime
from bot.texts import routing as words
from bot.usecases.home import HomeView

log = logging.getLogger(__name__)
EVENT = "app_home_opened"
MAX_BLOCKS = 100  # Slack's limit for a Home view
MAX_REQUESTS = 20  # at most two blocks each
MAX_REVIEWS = 10  # at most two blocks each
MAX_LINES = 15  # lines of the problems and recent-changes sections
SECTION_CHARS = 3000
HEADER = "modelbot"


def register(app: App, runtime: SlackRuntime) -> None:
    @app.event(EVENT)
    def on_home_opened(event: dict[str, Any], client: WebClient) -> None:
        user_id = str(event.get("user") or "")
        if event.get("tab", "home") != "home" or not user_id:
            return  # the Messages tab, or nobody to show it to
        if not runtime.workers.submit(publish, runtime, client, user_id):
            log.info("Home tab not published: the worker pool is full")


def publish(runtime: SlackRuntime, client: WebClient, user_id: str) -> None:
    """Render the user's Home from the database and publish it; failures are logged, never raised."""
    try:
        try:
            view = render_home(runtime.service.home(runtime.directory.identity(user_id)))
        except UserRefused:
            view = _notice(words.HOME_CANNOT_VERIFY)
        client.views_publish(user_id=user_id, view=view)
    except Exception as exc:
        log.warning("Home tab of %s not published: %s", user_id, type(exc).__name__)


def home_refresher(
    runtime: SlackRuntime, client: WebClient, user_id: str, body: Mapping[str, Any]
) -> Callable[[], None]:
    """What to run after a click: re-publish the Home tab when the click was on it, else nothing."""
    container = body.get("container") or {}
    view = body.get("view") or {}
    if container.get("type") != "view" or view.get("type", "home") != "home":
        return lambda: None
    return lambda: publish(runtime, client, user_id)


def render_home(home: HomeView) -> dict[str, Any]:
    """The Home view (a dict for views.publish), within Slack's limits."""
    if not home.allowed:
        return _notice(words.HOME_NOT_ALLOWED)
    blocks: list[Block] = [HeaderBlock(text=HEADER)]
    blocks += _heading(words.HOME_OPEN_REQUESTS)
    blocks += _requests(home)
    blocks += _heading(words.HOME_RETRO_REVIEWS)
    blocks += _reviews(home)
    blocks += _heading(words.HOME_PROBLEMS)
    blocks.append(_lines(_problem_lines(home)))
    blocks += _heading(words.HOME_RECENT)
    recent = [words.home_recent_line(_shown(r), member(r.requester)) for r in home.recent]
    blocks.append(_lines(recent))
    view = View(type="home", blocks=blocks[:MAX_BLOCKS])
    return view.to_dict()


def _requests(home: HomeView) -> list[Block]:
    if not home.open_requests:
        return [_section(words.HOME_NONE)]
    out: list[Block] = []
    for req, may_decide in home.open_requests[:MAX_REQUESTS]:
        out.append(_section(words.home_request_line(_shown(req), member(req.requester), date(req.expires_at))))
        if may_decide:
            out.append(decide_buttons(req, block_prefix="home-decide"))
    return out + _more(len(home.open_requests) - MAX_REQUESTS)


def _reviews(home: HomeView) -> list[Block]:
    if not home.reviews:
        return [_section(words.HOME_NONE)]
    out: list[Block] = []
    for req, may_acknowledge in home.reviews[:MAX_REVIEWS]:
        review = req.retro_review
        due, overdue = (date(review.due), review.overdue(home.now)) if review else ("", False)
        out.append(_section(words.home_review_line(_shown(req), member(req.requester), due, overdue)))
        if may_acknowledge:
            out.append(acknowledge_actions(req))
    return out + _more(len(home.reviews) - MAX_REVIEWS)


def _problem_lines(home: HomeView) -> list[str]:
    drift = [words.home_drift_line(escape(e.model), date(e.since), len(e.replicas)) for e in home.drifted]
    frozen = [words.home_frozen_line(escape(f.model), escape(f.reason)) for f in home.frozen]
    return drift + frozen


def _heading(title: str) -> list[Block]:
    return [DividerBlock(), _section(f"*{title}*")]


def _lines(lines: Sequence[str]) -> SectionBlock:
    shown = list(lines[:MAX_LINES])
    if len(lines) > MAX_LINES:
        shown.append(words.home_more(len(lines) - MAX_LINES))
    return _section("\n".join(shown) or words.HOME_NONE)


def _more(count: int) -> list[Block]:
    return [ContextBlock(elements=[MarkdownTextObject(text=words.home_more(count))])] if count > 0 else []


def _section(markdown: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(markdown, SECTION_CHARS)))


def _notice(text: str) -> dict[str, Any]:
    return View(type="home", blocks=[HeaderBlock(text=HEADER), _section(text)]).to_dict()


def _shown(req: ChangeRequest) -> ChangeRequest:
    return replace(req, model=escape(req.model))
