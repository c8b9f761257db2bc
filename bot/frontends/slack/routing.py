"""Approvals that reach the approvers: where a card's first post lands, and the messages that follow it.

- First post: the outbox message's channel (the approval channel), then, if Slack refuses it there
  (not_in_channel, channel_not_found, is_archived), the channel the request was typed in. Posted nowhere: the
  requester is told at once, privately, why and what to do (Notices), the audit records it, and the message is
  given up (never retried in silence).
- Follow-ups, queued in the outbox in the transaction that records the first post: a link-back where the request
  was typed ("card_link"; if the bot is not in that channel the requester is told privately instead), and with
  `notify_approvers: dm` one DM per approver who is a person ("approver_dm"; a DM that fails is logged and audited,
  never retried for ever and never blocking the rest).
- Card thread ("thread"): the rollout's phases (queued from the live progress, ThreadProgress) and its final
  per-replica result (queued when the card's final update is delivered), as replies under the card, in order with
  the card's own updates (same outbox channel).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.change_request import ChangeRequest
from bot.core.fleet import ProgressEvent
from bot.core.outbox import OutboxMessage
from bot.frontends.slack.mrkdwn import channel_link, clip, escape, mention
from bot.frontends.slack.notices import Notices
from bot.frontends.slack.ratelimit import RateGate
from bot.service import Service
from bot.texts import routing as words
from bot.texts import slack as texts
from bot.usecases.cards import CardView
from bot.usecases.outbox import THREAD_KIND, FollowUp

log = logging.getLogger(__name__)
CANNOT_POST = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
POST_CHARS = 3900
RESULT_LINES = 25
LINK_KIND, DM_KIND = "card_link", "approver_dm"
KINDS = frozenset({LINK_KIND, DM_KIND, THREAD_KIND})


@dataclass(frozen=True)
class Posted:
    """Where a first post landed (channel, ts), or why it landed nowhere (`undeliverable`), plus what follows."""

    response: dict[str, Any]
    location: tuple[str, str] | None
    follow_ups: tuple[FollowUp, ...] = ()
    undeliverable: str | None = None


@dataclass
class Router:
    client: WebClient
    service: Service
    gate: RateGate
    notices: Notices = field(default_factory=Notices)

    # --- the card's first post

    def first_post(self, message: OutboxMessage, text: str, blocks: list[dict[str, Any]], card: CardView) -> Posted:
        """Post the card in the message's channel, else where it was typed; follow-ups for where it landed."""
        typed = _text(message.payload.get("typed_channel"))
        tried: list[tuple[str, str]] = []
        for channel in dict.fromkeys([message.channel, *([typed] if typed else [])]):
            try:
                with self.gate.guard("chat.postMessage", channel):
                    response = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "")
                if error not in CANNOT_POST:
                    raise
                log.warning("card of R%d cannot be posted in %s: %s", card.request.id, channel, error)
                tried.append((channel, error))
                continue
            where, ts = str(response["channel"]), str(response["ts"])
            follow_ups = self._after_first_post(card.request, where, ts, typed)
            return Posted({"channel": where, "ts": ts}, (where, ts), follow_ups)
        return self._undeliverable(card.request, typed, tried)

    def _after_first_post(self, req: ChangeRequest, where: str, ts: str, typed: str | None) -> tuple[FollowUp, ...]:
        base = {"request_id": req.id, "card_channel": where, "card_ts": ts}
        follow: list[FollowUp] = []
        if typed and typed != where:
            follow.append(FollowUp(LINK_KIND, typed, {**base, "typed_channel": typed}, key=f"link:{req.id}"))
        for user in self.service.approvers_to_dm(req):  # pending, and the model says `notify_approvers: dm`
            follow.append(FollowUp(DM_KIND, user, {**base, "user": user}, key=f"dm:{req.id}:{user}"))
        return tuple(follow)

    def _undeliverable(self, req: ChangeRequest, typed: str | None, tried: Sequence[tuple[str, str]]) -> Posted:
        reasons = [words.cannot_post(error, channel_link(channel)) for channel, error in tried]
        invite_in = channel_link(tried[0][0])  # the approval channel when there is one: that is where it belongs
        told = self.notices.tell(
            self.client, req.requester, typed, words.card_undeliverable(_shown(req), reasons, invite_in)
        )
        errors = ", ".join(f"{channel}: {error}" for channel, error in tried)
        self.service.card_undeliverable(req.id, tuple(c for c, _ in tried), errors)
        log.warning("card of R%d posted nowhere (%s); requester told: %s", req.id, errors, told)
        return Posted({"undeliverable": errors, "requester_told": told}, None, undeliverable=errors)

    # --- follow-ups

    def send(self, message: OutboxMessage) -> dict[str, Any]:
        """Deliver a follow-up; returns what to keep as its response. Raises what the outbox should retry."""
        if message.kind == LINK_KIND:
            return self._link_back(message)
        if message.kind == DM_KIND:
            return self._dm(message)
        return self._thread(message)

    def _link_back(self, message: OutboxMessage) -> dict[str, Any]:
        req = self._request(message)
        where = channel_link(str(message.payload["card_channel"]))
        link = self._permalink(message)
        try:
            with self.gate.guard("chat.postMessage", message.channel):
                response = self.client.chat_postMessage(
                    channel=message.channel, text=words.link_back(_shown(req), where, link), unfurl_links=False
                )
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error not in CANNOT_POST:
                raise
            typed = channel_link(message.channel)
            text = words.link_back_private(_shown(req), where, link, typed, words.cannot_post(error, typed))
            return {
                "not_posted": error,
                "requester_told": self.notices.tell(self.client, req.requester, message.channel, text),
            }
        return {"channel": response["channel"], "ts": response["ts"]}

    def _dm(self, message: OutboxMessage) -> dict[str, Any]:
        req = self._request(message)
        user = str(message.payload["user"])
        link = self._permalink(message)
        text = words.approver_dm(
            _shown(req), mention(req.requester), link, channel_link(str(message.payload["card_channel"]))
        )
        try:
            with self.gate.guard("conversations.open"):
                dm = str(self.client.conversations_open(users=user)["channel"]["id"])
            with self.gate.guard("chat.postMessage", dm):
                response = self.client.chat_postMessage(channel=dm, text=text, unfurl_links=False)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or f"http_{exc.response.status_code}")
            if exc.response.status_code == 429 or exc.response.status_code >= 500:
                raise  # passing: the outbox retries it (the DM is on its own outbox channel: it blocks nothing)
            log.warning("approver DM to %s for R%d failed: %s", user, req.id, error)
            self.service.approver_dm_failed(req.id, user, error)
            return {"failed": error}
        return {"channel": response["channel"], "ts": response["ts"]}

    def _thread(self, message: OutboxMessage) -> dict[str, Any]:
        request_id = int(message.payload["request_id"])
        location = self.service.card_location(request_id)
        if location is None:
            return {"skipped": "no card"}
        channel, ts = location
        text = self._thread_text(request_id, message.payload)
        with self.gate.guard("chat.postMessage", channel):
            response = self.client.chat_postMessage(channel=channel, thread_ts=ts, text=text, unfurl_links=False)
        return {"channel": response["channel"], "ts": response["ts"], "thread_ts": ts}

    def _thread_text(self, request_id: int, payload: dict[str, Any]) -> str:
        what = str(payload.get("what") or "")
        if what == "phase":
            return words.thread_phase(escape(str(payload.get("phase"))), int(payload["done"]), int(payload["total"]))
        card = self.service.card(request_id)
        if what == "started":
            return words.thread_started(_shown(card.request))
        return result_text(card)

    def _permalink(self, message: OutboxMessage) -> str:
        """The card's permalink; "" when Slack cannot give one now (the text then names the channel)."""
        try:
            with self.gate.guard("chat.getPermalink"):
                answer = self.client.chat_getPermalink(
                    channel=str(message.payload["card_channel"]), message_ts=str(message.payload["card_ts"])
                )
            link = str(answer.get("permalink") or "")
        except Exception as exc:  # a link is a convenience: the message still goes without it
            log.info("chat.getPermalink failed: %s", type(exc).__name__)
            return ""
        return link if link.startswith("https://") and not any(ch in link for ch in "<>|") else ""

    def _request(self, message: OutboxMessage) -> ChangeRequest:
        return self.service.card(int(message.payload["request_id"])).request


def result_follow_up(card: CardView, channel: str) -> tuple[FollowUp, ...]:
    """The card thread's result reply, once the request has finished and ran on the fleet."""
    req = card.request
    if not req.state.is_final or not card.replicas:
        return ()
    payload = {"request_id": req.id, "what": "result"}
    return (FollowUp(THREAD_KIND, channel, payload, key=f"thread:{req.id}:result"),)


def result_text(card: CardView) -> str:
    """The final per-replica result, as a thread reply."""
    lines = [
        texts.slack_result_line(escape(str(r.get("replica", ""))), bool(r.get("ok")), escape(str(r.get("detail", ""))))
        for r in card.replicas
        if r.get("replica")
    ]
    shown = lines[:RESULT_LINES] + (
        [texts.slack_more_lines(len(lines) - RESULT_LINES)] if len(lines) > RESULT_LINES else []
    )
    return clip(
        "\n".join([words.thread_result_heading(_shown(card.request), escape(card.message)), *shown]), POST_CHARS
    )


class ThreadProgress:
    """Queues a card-thread reply when a rollout starts and at each new phase (the live progress's PhaseClock
    says which events are new; the service's card_thread decides what to queue). Best effort: the outbox orders
    them behind the card; a failure is logged."""

    def __init__(self, service: Service, request_id: int | None, model: str | None) -> None:
        self._queue = service.card_thread(request_id, model)

    def __call__(self, event: ProgressEvent) -> None:
        if event.phase == "done":
            return
        try:
            self._queue(event)
        except Exception as exc:  # decoration: never let it break a rollout
            log.info("card thread progress not queued: %s", type(exc).__name__)


def _shown(req: ChangeRequest) -> ChangeRequest:
    """The request with its model name made inert for mrkdwn (names come from config, but stay inert anyway)."""
    return replace(req, model=escape(req.model))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
